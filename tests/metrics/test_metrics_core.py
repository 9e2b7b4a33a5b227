"""whetstone.metrics against hand counts: density, Gini, SynOps (dense and conv), energy."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from whetstone.metrics import (
    ENERGY_PRESETS,
    conv_reads,
    estimate_energy,
    firing_rates,
    gini,
    network_stats,
    plot_stats,
    spike_density,
    synaptic_ops,
)
from whetstone.runtime import (
    Affine,
    Conv2d,
    Decode,
    Flatten,
    SpikingNetwork,
    SumPool2d,
    Threshold,
    run,
)

# --- density and Gini -------------------------------------------------------------------


def test_spike_density_by_hand() -> None:
    a = np.array([[1, 0, 0, 0], [1, 1, 0, 0]], dtype=bool)  # 1/4, 2/4 -> 3/8
    b = np.array([[1, 1], [0, 0]], dtype=bool)  # 1, 0 -> 1/2
    d = spike_density([a, b])
    np.testing.assert_allclose(d["per_sample"][0], [0.25, 0.5])
    np.testing.assert_allclose(d["per_sample"][1], [1.0, 0.0])
    assert d["per_layer"] == pytest.approx([3 / 8, 1 / 2])
    assert d["mean"] == pytest.approx((3 / 8 + 1 / 2) / 2)
    assert d["overall"] == pytest.approx(5 / 12)  # 5 spikes in 2 x 6 neuron evaluations
    single = spike_density(np.zeros((3, 2, 2), dtype=bool))
    assert single["per_layer"] == [0.0] and single["mean"] == 0.0
    with pytest.raises(ValueError):
        spike_density([a, b[:1]])
    with pytest.raises(ValueError):
        spike_density([])


def test_firing_rates() -> None:
    z = np.array([[[1, 0], [0, 0]], [[1, 1], [0, 0]]], dtype=bool)
    np.testing.assert_allclose(firing_rates(z), [1.0, 0.5, 0.0, 0.0])


def test_gini_by_hand() -> None:
    assert gini([1, 1, 1, 1]) == 0.0
    assert gini([0, 0, 0, 1]) == pytest.approx(0.75)  # (n - 1) / n
    # [1, 2, 3]: sum |xi - xj| = 2 (1 + 2 + 1) = 8; 8 / (2 * 9 * 2) = 2/9
    assert gini([3, 1, 2]) == pytest.approx(2 / 9)
    assert gini([0, 0, 0]) == 0.0  # mean 0 guarded
    assert gini(np.array([[0.0, 5.0]])) == pytest.approx(0.5)


def test_gini_matches_quadratic_formula() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 50):
        x = rng.exponential(size=n) * (rng.random(n) < 0.6)
        if x.sum() == 0:
            x[0] = 1.0
        pairwise = np.abs(x[:, None] - x[None, :]).sum() / (2 * n * n * x.mean())
        assert gini(x) == pytest.approx(pairwise, abs=1e-12)


@pytest.mark.parametrize("bad", [[], [1.0, -1.0], [np.nan, 1.0]])
def test_gini_rejects(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        gini(bad)


# --- SynOps -----------------------------------------------------------------------------


def tiny_dense() -> SpikingNetwork:
    """3 inputs -> Affine(4) -> Threshold -> Affine(2) -> Threshold -> Decode(2 classes)."""
    w1 = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]])
    w2 = np.array([[1.0, 0, 0, 0], [0, 0, 0, 1]])
    return SpikingNetwork([Affine(w1, np.zeros(4)), Threshold(0.5), Affine(w2, np.zeros(2)),
                           Threshold(0.5), Decode(np.array([[1, 0], [0, 1]]))])


def test_synops_dense_by_hand() -> None:
    net = tiny_dense()
    x = np.array([[0.7, 0.0, 0.0],    # nonzero inputs 1 -> hidden spikes [1,0,0,1]
                  [0.0, 0.0, 0.0]])   # nothing        -> hidden spikes [0,0,0,0]
    _, spikes = run(net, x, record=True)
    np.testing.assert_array_equal(spikes[0], [[1, 0, 0, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(spikes[1], [[1, 1], [0, 0]])
    ops = synaptic_ops(net, x)
    assert ops["samples"] == 2
    layer1, layer2, decode = ops["layers"]
    # layer 1: real inputs; sample 0 has 1 nonzero input x fan-out 4, sample 1 none.
    assert layer1["input"] == "real" and layer1["mac"] == 4 / 2 and layer1["ac"] == 0
    # layer 2: binary inputs; sample 0: 2 spikes x fan-out 2 = 4, sample 1: 0 -> 2 per sample
    assert layer2["input"] == "binary" and layer2["ac"] == 4 / 2 and layer2["mac"] == 0
    # decode: 2 spikes x 2 classes in sample 0 -> 2 per sample
    assert decode["ac"] == 4 / 2
    assert [e["dense_mac"] for e in ops["layers"]] == [12, 8, 4]
    assert ops["total"] == {"ac": 4.0, "mac": 2.0, "synops": 6.0, "dense_mac": 24}
    assert ops["neuron_updates"] == 6
    json.dumps(ops)


def test_bool_input_counts_as_ac() -> None:
    ops = synaptic_ops(tiny_dense(), np.array([[True, True, False]]))
    assert ops["layers"][0]["input"] == "binary"
    assert ops["layers"][0]["ac"] == 8 and ops["total"]["mac"] == 0


def brute_force_conv_ops(x: np.ndarray, layer: Conv2d) -> int:
    """Count, summed over the batch, every (output, tap, input channel) read of a nonzero
    input: the synaptic events of the convolution, by enumeration."""
    top, bottom, left, right = layer.padding
    n, cin, h, w = x.shape
    cout, cg, kh, kw = layer.weight.shape
    (sh, sw), (dh, dw) = layer.stride, layer.dilation
    ho = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    wo = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    per_group = cout // layer.groups
    count = 0
    for o, i, j, c, u, v in itertools.product(range(cout), range(ho), range(wo), range(cg),
                                              range(kh), range(kw)):
        r, s = i * sh + u * dh - top, j * sw + v * dw - left
        if 0 <= r < h and 0 <= s < w:
            count += int(np.count_nonzero(x[:, (o // per_group) * cg + c, r, s]))
    return count


@pytest.mark.parametrize("stride,padding,dilation,groups", [
    ((1, 1), (0, 0, 0, 0), (1, 1), 1),
    ((1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((2, 1), (1, 2, 0, 1), (1, 1), 2),
    ((2, 2), (2, 2, 2, 2), (2, 1), 1),
])
def test_synops_conv_against_brute_force(stride, padding, dilation, groups) -> None:
    rng = np.random.default_rng(1)
    cin, cout, k = 2, 4, 3
    conv = Conv2d(rng.normal(size=(cout, cin // groups, k, 2)), np.zeros(cout), stride=stride,
                  padding=padding, dilation=dilation, groups=groups)
    net = SpikingNetwork([Threshold(0.5), conv, Threshold(0.0)])
    x = rng.random((3, cin, 6, 5))
    ops = synaptic_ops(net, x)
    spikes = x >= 0.5
    (entry,) = ops["layers"]
    assert entry["input"] == "binary"
    assert entry["ac"] == pytest.approx(brute_force_conv_ops(spikes, conv) / 3)
    out_shape = entry["output_shape"]
    assert entry["dense_mac"] == np.prod(out_shape) * (cin // groups) * k * 2
    # all inputs active: the count is the dense count minus the taps over zero padding
    full = synaptic_ops(net, np.ones((1, cin, 6, 5)))["layers"][0]
    assert full["ac"] == brute_force_conv_ops(np.ones((1, cin, 6, 5)), conv)
    assert full["ac"] <= full["dense_mac"]
    if not any(padding):
        assert full["ac"] == full["dense_mac"]


def test_conv_reads_by_hand() -> None:
    # size 4, kernel 3, stride 1, no padding: outputs 0,1 read [0..2], [1..3]
    np.testing.assert_array_equal(conv_reads(4, 3, 1, 1, 0, 0), [1, 2, 2, 1])
    # padding 1 each side: 4 outputs, each pixel read by 3 windows except the borders (2)
    np.testing.assert_array_equal(conv_reads(4, 3, 1, 1, 1, 1), [2, 3, 3, 2])
    # stride 2, kernel 2: disjoint windows
    np.testing.assert_array_equal(conv_reads(4, 2, 2, 1, 0, 0), [1, 1, 1, 1])


def test_real_first_conv_counts_mac_and_pool_is_free() -> None:
    conv = Conv2d(np.ones((2, 1, 2, 2)), np.zeros(2))
    net = SpikingNetwork([conv, Threshold(0.5), SumPool2d(2, 2), Threshold(0.5), Flatten(),
                          Affine(np.ones((3, 4)), np.zeros(3)), Threshold(0.5)])
    x = np.zeros((1, 1, 3, 5))
    x[0, 0, 1, 1] = 0.9  # centre pixel: read by 4 windows x 2 channels = 8 MACs
    ops = synaptic_ops(net, x)
    first, dense = ops["layers"]
    assert first["input"] == "real" and first["mac"] == 8 and first["ac"] == 0
    assert dense["input"] == "binary"
    assert [e["index"] for e in ops["layers"]] == [0, 5]  # SumPool2d not counted


# --- energy -----------------------------------------------------------------------------


def test_energy_arithmetic() -> None:
    e = estimate_energy(ac=100, mac=10, neuron_updates=5, dense_mac=1000, preset="45nm-fp32")
    assert e["spiking_pj"] == pytest.approx(0.9 * 100 + 4.6 * 10)  # 136 pJ
    assert e["dense_ann_pj"] == pytest.approx(4.6 * 1000)
    assert e["ratio"] == pytest.approx(4600 / 136)
    assert e["estimate"] is True and "estimate" in e["note"]
    loihi = estimate_energy(ac=100, mac=10, neuron_updates=5, dense_mac=1000,
                            preset="loihi-like")
    assert loihi["spiking_pj"] == pytest.approx(27 * 110 + 81 * 5)
    assert loihi["dense_ann_pj"] is None and loihi["ratio"] is None
    assert set(ENERGY_PRESETS) == {"45nm-fp32", "loihi-like"}
    with pytest.raises(KeyError, match="45nm-fp32"):
        estimate_energy(1, 1, preset="nope")
    with pytest.raises(ValueError):
        estimate_energy(-1, 0)


# --- network_stats and plot -------------------------------------------------------------


def test_network_stats_tiny(tmp_path) -> None:
    net = tiny_dense()
    x = np.array([[0.7, 0.0, 0.0], [0.0, 0.0, 0.0]])
    stats = network_stats(net, x, y=np.array([0, 1]))
    json.dumps(stats)
    thresholds = [e for e in stats["layers"] if e["kind"] == "Threshold"]
    assert [e["density"] for e in thresholds] == [pytest.approx(2 / 8), pytest.approx(2 / 4)]
    # hidden rates [0.5, 0, 0, 0.5] -> Gini 0.5; output rates [0.5, 0.5] -> 0
    assert thresholds[0]["gini"] == pytest.approx(0.5)
    assert thresholds[1]["gini"] == 0.0
    total = stats["total"]
    assert total["density_mean"] == pytest.approx((0.25 + 0.5) / 2)
    assert total["density_overall"] == pytest.approx(4 / 12)
    assert (total["ac"], total["mac"], total["dense_mac"]) == (4.0, 2.0, 24)
    assert stats["energy"]["45nm-fp32"]["spiking_pj"] == pytest.approx(0.9 * 4 + 4.6 * 2)
    assert stats["energy"]["45nm-fp32"]["dense_ann_pj"] == pytest.approx(4.6 * 24)
    assert stats["energy"]["loihi-like"]["spiking_pj"] == pytest.approx(27 * 6 + 81 * 6)
    # logits: sample 0 spikes [1, 1] -> tie, argmax 0; sample 1 [0, 0] -> tie, 0
    assert stats["accuracy"] == 0.5
    pytest.importorskip("matplotlib")
    out = plot_stats(stats, tmp_path / "stats.png", title="tiny")
    assert out.is_file() and out.stat().st_size > 0


def test_metrics_import_without_torch() -> None:
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from whetstone.metrics import network_stats
        from whetstone.runtime import Affine, SpikingNetwork, Threshold
        net = SpikingNetwork([Affine(np.eye(2), np.zeros(2)), Threshold(0.5)])
        network_stats(net, np.eye(2))
        assert "torch" not in sys.modules, "torch imported"
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
