"""whetstone.quantization on synthetic networks: the integer scheme is exact over spikes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whetstone.quantization import fake_quantize, levels, quantize, quantize_weights
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


def test_quantize_weights_levels_and_error() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(40, 30))
    for bits in (2, 3, 4, 8, 16):
        w_q, s = quantize_weights(w, bits)
        q = 2 ** (bits - 1) - 1
        assert levels(bits) == q
        assert s == pytest.approx(np.abs(w).max() / q)
        assert np.all(w_q == np.rint(w_q)) and np.abs(w_q).max() == q
        magnitudes = np.unique(np.abs(w_q[w_q != 0]))
        assert len(magnitudes) <= q
        assert np.abs(w - s * w_q).max() <= s / 2 + 1e-12
    w_q, s = quantize_weights(np.zeros((2, 2)), 4)
    assert s == 1.0 and not w_q.any()
    w_q, _ = quantize_weights(np.array([0.6, -1.0, 0.2]), 2)  # Q = 1: ternary
    np.testing.assert_array_equal(w_q, [1, -1, 0])


@pytest.mark.parametrize("bits", [1, 0, 33, 2.5])
def test_bits_validated(bits) -> None:
    net = SpikingNetwork([Affine(np.eye(2), np.zeros(2)), Threshold(0.5)])
    with pytest.raises(ValueError, match="bits"):
        quantize(net, bits)


def random_dense(rng: np.random.Generator) -> SpikingNetwork:
    """Threshold first, so every weighted layer sees spikes (integer inputs)."""
    return SpikingNetwork([
        Threshold(0.5),
        Affine(rng.normal(size=(32, 20)), rng.normal(size=32)), Threshold(0.5),
        Affine(rng.normal(size=(24, 32)), rng.normal(size=24)), Threshold(0.5),
        Decode((rng.random((4, 24)) < 0.5).astype(float)),
    ], {"origin": ["in", "1", "2", "3", "4", "5"]})


def random_conv(rng: np.random.Generator) -> SpikingNetwork:
    return SpikingNetwork([
        Threshold(0.5),
        Conv2d(rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4), padding=1), Threshold(0.5),
        SumPool2d(2, 2), Threshold(0.5),  # OR pool
        Conv2d(rng.normal(size=(6, 4, 3, 3)), rng.normal(size=6), stride=2), Threshold(0.5),
        Flatten(), Affine(rng.normal(size=(8, 6)), rng.normal(size=8)), Threshold(0.5),
        Decode(np.eye(8)[:4] + np.eye(8)[4:]),
    ])


def _check_integer(qnet: SpikingNetwork) -> None:
    """Integer weights and thresholds (the leading Threshold encodes real inputs: kept)."""
    assert qnet.layers[0].theta == 0.5
    for layer in qnet.layers[1:]:
        if isinstance(layer, (Affine, Conv2d)):
            assert np.all(layer.weight == np.rint(layer.weight))
            assert not layer.bias.any()
        if isinstance(layer, Threshold):
            assert np.all(layer.theta == np.rint(layer.theta)), "threshold not integer"
        if isinstance(layer, SumPool2d):
            assert layer.scale == 1.0


@pytest.mark.parametrize("make", [random_dense, random_conv])
@pytest.mark.parametrize("bits", [2, 3, 5, 8, 16])
def test_integer_network_equals_dequantized_over_spikes(make, bits) -> None:
    rng = np.random.default_rng(bits)
    net = make(rng)
    x = rng.random((64, 20) if make is random_dense else (64, 2, 6, 6))
    qnet = quantize(net, bits)
    _check_integer(qnet)
    assert len(qnet.layers) == len(net.layers)
    assert [type(a) for a in qnet.layers] == [type(b) for b in net.layers]
    out_q, spikes_q = run(qnet, x, record=True)
    out_f, spikes_f = run(fake_quantize(net, bits), x, record=True)
    for a, b in zip(spikes_q, spikes_f, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(out_q, out_f)  # Decode unchanged, same spikes
    for layer in qnet.layers:
        if isinstance(layer, (Affine, Conv2d)):
            assert len(np.unique(np.abs(layer.weight[layer.weight != 0]))) <= levels(bits)
            assert np.abs(layer.weight).max() <= levels(bits)


def test_high_bits_reproduce_original_spikes() -> None:
    rng = np.random.default_rng(3)
    net = random_dense(rng)
    x = rng.random((200, 20))
    _, ref = run(net, x, record=True)
    _, got = run(quantize(net, 24), x, record=True)
    for a, b in zip(ref, got, strict=True):
        assert np.mean(a == b) > 0.999


def test_threshold_folds_bias_by_hand() -> None:
    # W = [[0.3, -0.6]], b = 0.1, theta = 0.5, bits 3 (Q = 3): s = 0.2, W_q = [2, -3] (round
    # half to even: 0.3/0.2 = 1.5 -> 2), theta' = ceil((0.5 - 0.1) / 0.2) = ceil(2) = 2
    net = SpikingNetwork([Threshold(0.5), Affine([[0.3, -0.6]], [0.1]), Threshold(0.5)])
    q = quantize(net, 3)
    np.testing.assert_array_equal(q.layers[1].weight, [[2, -3]])
    np.testing.assert_array_equal(q.layers[2].theta, [2])
    # real inputs (no leading Threshold): rounded threshold floor(2 + 1/2) = 2 as well
    q_real = quantize(SpikingNetwork(net.layers[1:]), 3)
    assert q_real.metadata["quantization"]["layers"][0]["mode"].startswith(
        "integer (threshold rounded")
    q_int = quantize(SpikingNetwork(net.layers[1:]), 3, integer_inputs=True)
    assert q_int.metadata["quantization"]["layers"][0]["mode"] == "integer (exact)"


def test_or_pool_threshold_becomes_one() -> None:
    net = SpikingNetwork([Threshold(0.5), SumPool2d(2, 2), Threshold(0.5)])
    q = quantize(net, 4)
    assert q.layers[2].theta == 1.0 and q.layers[1].scale == 1.0
    avg = SpikingNetwork([Threshold(0.5), SumPool2d(2, 2, scale=0.25), Threshold(0.5)])
    qa = quantize(avg, 4)  # 0.25 k >= 0.5 <=> k >= 2
    assert qa.layers[2].theta == 2.0 and qa.layers[1].scale == 1.0
    x = np.random.default_rng(0).random((10, 1, 4, 4))
    np.testing.assert_array_equal(run(qa, x), run(avg, x))


def test_layer_without_threshold_is_dequantized() -> None:
    """A hidden Conv2d before an average pool (not the readout) keeps ``(s W_q, b)``."""
    rng = np.random.default_rng(0)
    conv = Conv2d(rng.normal(size=(2, 1, 3, 3)), np.ones(2), padding=1)
    net = SpikingNetwork([conv, SumPool2d(2, 2, scale=0.25), Threshold(0.5)])
    assert net.readout == "spikes"
    q = quantize(net, 4)
    w_q, s = quantize_weights(conv.weight, 4)
    np.testing.assert_allclose(q.layers[0].weight, s * w_q)
    np.testing.assert_array_equal(q.layers[0].bias, conv.bias)
    assert q.metadata["quantization"]["layers"][0]["mode"].startswith("dequantized")


def test_metadata_and_roundtrip(tmp_path) -> None:
    net = random_dense(np.random.default_rng(5))
    q = quantize(net, 6)
    info = q.metadata["quantization"]
    assert info["bits"] == 6 and info["levels"] == 31
    assert [e["index"] for e in info["layers"]] == [1, 3]
    assert q.metadata["origin"] == net.metadata["origin"]
    assert "quantization" not in net.metadata  # the input is not modified
    json.dumps(q.metadata)
    q.save(tmp_path / "q.npz")
    back = SpikingNetwork.load(tmp_path / "q.npz")
    x = np.random.default_rng(0).random((20, 20))
    np.testing.assert_array_equal(run(back, x), run(q, x))
