"""Quantization of networks with a real-valued readout (scaled back or kept) and with
nearest upsampling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whetstone.quantization import (
    READOUT_MODES,
    fake_quantize,
    quantization_sweep,
    quantize,
    quantize_weights,
)
from whetstone.runtime import (
    Affine,
    Conv2d,
    SpikingNetwork,
    Threshold,
    Unflatten,
    Upsample2d,
    run,
)


def policy_like(seed: int = 0) -> SpikingNetwork:
    """4 -> 16, Threshold, 16 -> 16, Threshold, 16 -> 3 real-valued readout (Q-values)."""
    rng = np.random.default_rng(seed)
    return SpikingNetwork([
        Affine(rng.normal(size=(16, 4)), rng.normal(size=16) * 0.3 + 0.5), Threshold(0.5),
        Affine(rng.normal(size=(16, 16)), rng.normal(size=16) * 0.3 + 0.5), Threshold(0.5),
        Affine(rng.normal(size=(3, 16)), rng.normal(size=3)),
    ])


def segmenter_like(seed: int = 0) -> SpikingNetwork:
    """Conv, Threshold, Upsample2d(2), Conv, Threshold, 1x1 Conv readout (5 classes)."""
    rng = np.random.default_rng(seed)
    return SpikingNetwork([
        Conv2d(rng.normal(size=(4, 1, 3, 3)), rng.normal(size=4) * 0.2 + 0.3, padding=1),
        Threshold(0.5), Upsample2d(2),
        Conv2d(rng.normal(size=(6, 4, 3, 3)), rng.normal(size=6) * 0.2 + 0.5, padding=1),
        Threshold(0.5),
        Conv2d(rng.normal(size=(5, 6, 1, 1)), rng.normal(size=5)),
    ])


@pytest.mark.parametrize("bits", [3, 6, 12])
def test_readout_output_is_scaled_back(bits: int) -> None:
    """``y = s (W_q z) + b``: integer accumulation over the quantized network's own last
    spikes, one multiply by ``s`` and a bias add; equal to the dequantized reference."""
    net = policy_like()
    x = np.random.default_rng(1).normal(size=(300, 4))
    q = quantize(net, bits, integer_inputs=False)
    out, spikes = run(q, x, record=True)
    readout = net.layers[-1]
    w_q, s = quantize_weights(readout.weight, bits)
    acc = spikes[-1].astype(np.int64) @ w_q.astype(np.int64).T  # exact integers
    np.testing.assert_allclose(out, s * acc + readout.bias, rtol=0, atol=1e-12)
    entry = q.metadata["quantization"]["layers"][-1]
    assert entry["readout"] and entry["mode"].startswith("readout: integer weights")
    assert entry["scale"] == s
    assert q.metadata["quantization"]["readout"] == "affine"
    # on integer inputs the whole network is exact: equal to the fake-quantized network
    xi = (x > 0).astype(np.float64)
    np.testing.assert_allclose(run(quantize(net, bits, integer_inputs=True), xi),
                               run(fake_quantize(net, bits), xi), rtol=0, atol=1e-12)
    assert 0.1 < np.mean(spikes[-1]) < 0.9


def test_readout_kept() -> None:
    net = policy_like()
    q = quantize(net, 4, readout="keep")
    assert q.layers[-1].weight is net.layers[-1].weight  # untouched
    assert q.metadata["quantization"]["layers"][-1]["mode"].startswith("readout kept")
    assert q.metadata["quantization"]["readout_mode"] == "keep"
    # hidden layers are quantized exactly as without "keep"
    full = quantize(net, 4)
    for a, b in zip(q.layers[:-1], full.layers[:-1], strict=True):
        for name, arr in a.arrays().items():
            np.testing.assert_array_equal(arr, b.arrays()[name])
    x = np.random.default_rng(2).normal(size=(50, 4))
    _, spikes = run(q, x, record=True)
    expected = spikes[-1] @ net.layers[-1].weight.T + net.layers[-1].bias
    np.testing.assert_allclose(run(q, x), expected, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="readout must be one of"):
        quantize(net, 4, readout="float")  # type: ignore[arg-type]
    assert READOUT_MODES == ("quantize", "keep")


def test_segmenter_with_upsampling_quantizes_exactly_on_spikes() -> None:
    """Upsample2d copies integers: with integer inputs the quantized segmenter equals its
    fake-quantized reference (scores to 1e-12, same per-pixel classes)."""
    net = segmenter_like()
    x = (np.random.default_rng(3).random((6, 1, 5, 5)) > 0.5).astype(np.float64)
    for bits in (4, 8):
        q = quantize(net, bits, integer_inputs=True)
        assert [layer.kind for layer in q.layers] == [layer.kind for layer in net.layers]
        assert q.readout == "conv2d"
        ref = run(fake_quantize(net, bits), x)
        out = run(q, x)
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(out.argmax(1), ref.argmax(1))
        json.dumps(q.metadata)


def test_spiking_readout_unchanged_by_readout_mode() -> None:
    """A network ending with spikes (and a trailing Unflatten) has no real-valued readout:
    its last layer folds into the threshold as before, whatever ``readout`` says."""
    rng = np.random.default_rng(4)
    net = SpikingNetwork([Affine(rng.normal(size=(8, 3)), rng.normal(size=8)), Threshold(0.5),
                          Unflatten((2, 4))])
    a, b = quantize(net, 4), quantize(net, 4, readout="keep")
    x = rng.normal(size=(40, 3))
    np.testing.assert_array_equal(run(a, x), run(b, x))
    assert a.metadata["quantization"]["layers"][0]["mode"].startswith("integer")
    assert run(a, x).shape == (40, 2, 4)


def test_sweep_on_a_policy_and_a_spiking_output() -> None:
    net = policy_like()
    x = np.random.default_rng(5).normal(size=(400, 4))
    rows = quantization_sweep(net, x, bits=[2, 16])
    assert [r["accuracy"] for r in rows] == [None, None]  # no labels
    assert rows[1]["agreement"] > 0.97 and rows[1]["output_max_abs_diff"] < 0.05
    assert rows[0]["output_max_abs_diff"] > rows[1]["output_max_abs_diff"]
    actions = run(net, x).argmax(1)
    rows = quantization_sweep(net, x, actions, bits=[16])
    assert rows[0]["reference_accuracy"] == 1.0
    spiking = SpikingNetwork(net.layers[:2])
    (row,) = quantization_sweep(spiking, x, bits=[3])
    assert row["accuracy"] is None and row["agreement"] is None
    assert row["output_max_abs_diff"] in (0.0, 1.0)
