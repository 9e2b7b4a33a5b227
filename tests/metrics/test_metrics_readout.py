"""SynOps and stats of networks that end with a readout or upsample spikes, by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whetstone.metrics import network_stats, synaptic_ops
from whetstone.metrics.synops import conv_fanout
from whetstone.runtime import (
    Affine,
    Conv2d,
    Flatten,
    SpikingNetwork,
    SumPool2d,
    Threshold,
    Unflatten,
    Upsample2d,
    run,
)


def policy_like() -> SpikingNetwork:
    """3 -> 4 (identity-like), Threshold, 4 -> 2 real-valued readout."""
    w1 = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    return SpikingNetwork([Affine(w1, np.zeros(4)), Threshold(0.5),
                           Affine(np.arange(8.0).reshape(2, 4), np.array([0.5, -0.5]))])


def test_affine_readout_counted_like_a_synaptic_layer() -> None:
    net = policy_like()
    x = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    # hidden spikes: [1,0,0,1], [0,0,0,0], [1,1,1,1] -> 2 + 0 + 4 = 6 spikes
    ops = synaptic_ops(net, x)
    json.dumps(ops)
    assert ops["readout"] == {"kind": "affine", "index": 2}
    first, readout = ops["layers"]
    assert (first["readout"], readout["readout"]) == (False, True)
    # first layer: nonzero real inputs 1 + 0 + 3 = 4, fan-out 4 -> 16 / 3 MACs per sample
    assert first["input"] == "real" and first["mac"] == pytest.approx(16 / 3)
    # readout: 6 spikes, fan-out 2 -> 12 / 3 ACs per sample, over binary inputs
    assert readout["input"] == "binary"
    assert (readout["ac"], readout["mac"]) == (pytest.approx(4.0), 0.0)
    assert readout["input_density"] == pytest.approx(6 / 12)
    assert readout["dense_mac"] == 8
    # the readout's outputs are not neurons: only the hidden Threshold's 4 are updated
    assert ops["neuron_updates"] == 4


def test_network_stats_marks_the_readout_and_has_no_density_for_it() -> None:
    net = policy_like()
    x = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    stats = network_stats(net, x, y=np.array([1, 1]))
    json.dumps(stats)
    assert stats["readout"] == {"kind": "affine", "index": 2}
    entries = stats["layers"]
    assert [e["readout"] for e in entries] == [False, False, True]
    assert entries[2]["density"] is None and entries[2]["synops"] is not None
    q = run(net, x)
    assert stats["accuracy"] == float((q.argmax(1) == 1).mean())


def test_upsampled_spikes_stay_binary_and_the_next_conv_counts_the_copies() -> None:
    """Threshold -> Upsample2d(2) -> 1x1 Conv2d readout: the conv's inputs are spikes (AC),
    and each of the sh*sw copies of a spike is one input that costs its fan-out."""
    conv = Conv2d(np.ones((3, 2, 1, 1)), np.zeros(3))
    net = SpikingNetwork([Threshold(0.5), Upsample2d(2), conv])
    x = np.zeros((2, 2, 3, 3))
    x[0, 0, 1, 1] = 1.0
    x[0, 1, 0, 2] = 1.0
    x[1, 1, 2, 0] = 1.0  # 3 spikes -> 12 copies, each read by 3 output channels
    ops = synaptic_ops(net, x)
    (entry,) = ops["layers"]
    assert entry["input"] == "binary" and entry["readout"]
    assert entry["ac"] == pytest.approx(12 * 3 / 2) and entry["mac"] == 0.0
    assert entry["input_shape"] == [2, 6, 6] and entry["output_shape"] == [3, 6, 6]
    assert ops["readout"] == {"kind": "conv2d", "index": 2}
    # a 3x3 conv after the upsample: fan-out by position, as on any (2, 6, 6) spike map
    conv3 = Conv2d(np.ones((1, 2, 3, 3)), np.zeros(1), padding=1)
    ops3 = synaptic_ops(SpikingNetwork([Threshold(0.5), Upsample2d(2), conv3]), x)
    up = run(SpikingNetwork([Threshold(0.5), Upsample2d(2)]), x) != 0
    expected = (up.sum(axis=(0, 1)) * conv_fanout(conv3, (6, 6))).sum() / 2
    assert ops3["layers"][0]["ac"] == pytest.approx(expected)


def test_per_pixel_accuracy_of_a_segmentation_readout() -> None:
    conv = Conv2d(np.array([[[[1.0]]], [[[-1.0]]]]), np.array([0.0, 0.5]))  # 2 classes
    net = SpikingNetwork([Threshold(0.5), Upsample2d(2), conv])
    x = np.zeros((1, 1, 2, 2))
    x[0, 0, 0, 0] = 1.0  # top-left block -> class 0 (1 > -0.5), elsewhere class 1 (0 < 0.5)
    y = np.ones((1, 4, 4), dtype=np.int64)
    y[0, :2, :2] = 0
    y[0, 3, 3] = 0  # one wrong pixel of 16
    stats = network_stats(net, x, y=y)
    assert stats["accuracy"] == pytest.approx(15 / 16)
    assert stats["readout"]["kind"] == "conv2d"
    with pytest.raises(ValueError, match=r"y must have shape \(1, 4, 4\)"):
        network_stats(net, x, y=np.zeros(1))


def test_unflatten_and_pool_readouts() -> None:
    net = SpikingNetwork([Flatten(), Affine(np.eye(4), np.zeros(4)), Threshold(0.5),
                          Affine(np.ones((4, 4)), np.zeros(4)), Unflatten((1, 2, 2))])
    ops = synaptic_ops(net, np.eye(4).reshape(4, 1, 2, 2))
    assert ops["readout"] == {"kind": "affine", "index": 3}
    assert ops["layers"][-1]["readout"] and ops["layers"][-1]["output_shape"] == [4]
    pool = SpikingNetwork([Threshold(0.5), SumPool2d(2, 2, scale=0.25)])
    assert synaptic_ops(pool, np.ones((1, 1, 2, 2)))["readout"] == {"kind": "pool", "index": 1}


def test_no_accuracy_for_a_spiking_output() -> None:
    net = SpikingNetwork([Affine(np.eye(3), np.zeros(3)), Threshold(0.5)])
    stats = network_stats(net, np.eye(3), y=np.arange(3))
    assert stats["accuracy"] is None and stats["readout"] == {"kind": "spikes", "index": 1}
