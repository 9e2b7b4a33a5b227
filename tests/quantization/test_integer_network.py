"""The integer network (whetstone.quantization.to_integer): hand-computed values, exact
integer semantics checked against an independent int64 evaluation, files, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from whetstone.quantization import fake_quantize, integer_inputs, to_integer
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


def _hand_net() -> SpikingNetwork:
    return SpikingNetwork([
        Affine(np.array([[0.5, -0.25], [1.0, 0.0]]), np.array([0.1, -0.2])),
        Threshold(np.array([0.5, 0.5])),
        Affine(np.array([[1.0, 1.0]]), np.array([0.0])),
        Threshold(np.array([1.5])),
    ])


def test_hand_computed_small_network() -> None:
    # bits 3: Q = 3. Layer 0: s = 1/3, W_q = rint(3 W) = [[2, -1], [3, 0]] (1.5 -> 2, -0.75
    # -> -1); theta' = min k with k/3 + b >= 0.5: neuron 0 k >= 1.2 -> 2, neuron 1 k >= 2.1
    # -> 3. Layer 2: s = 1/3, W_q = [[3, 3]], theta' = min k with k/3 >= 1.5 -> 5 (k = 4.5
    # is not an integer). Bounds with inputs up to 3: max(2 + 1, 3) * 3 = 9 and (3 + 3) * 1.
    inet = to_integer(_hand_net(), 3, input_scale=1.0, input_max=3)
    assert inet.is_integer
    w0, t0, w2, t2 = inet.layers
    assert w0.weight.dtype == np.int8 and w0.weight.tolist() == [[2, -1], [3, 0]]
    assert w0.bias.tolist() == [0, 0] and t0.theta.tolist() == [2, 3]
    assert w2.weight.tolist() == [[3, 3]] and t2.theta.tolist() == [5]
    assert np.issubdtype(t0.theta.dtype, np.integer)
    layers = inet.metadata["integer"]["layers"]
    assert [(e["index"], e["accumulator_bound"], e["accumulator"]) for e in layers] == [
        (0, 9, "int32"), (2, 6, "int32")]
    # by hand: accumulations [2, 3], [-1, 0], [1, 3], [3, 6] -> spikes [1, 1], [0, 0],
    # [0, 1], [1, 1] -> 3 (z0 + z1) = 6, 0, 3, 6 >= 5
    x = np.array([[1, 0], [0, 1], [1, 1], [2, 1]], dtype=np.uint8)
    out, spikes = run(inet, x, record=True)
    assert out.dtype == np.int64 and out[:, 0].tolist() == [1, 0, 0, 1]
    assert spikes[0].astype(int).tolist() == [[1, 1], [0, 0], [0, 1], [1, 1]]


def _int64_reference(net: SpikingNetwork, x: np.ndarray, rng: np.random.Generator
                     ) -> np.ndarray:
    """An independent evaluation of an integer chain of Flatten / Affine / Threshold /
    Decode in int64, summing the inputs in a random order."""
    v = x.astype(np.int64).reshape(len(x), -1)
    for layer in net.layers:
        if isinstance(layer, Flatten):
            continue
        if isinstance(layer, Threshold):
            v = (v >= layer.theta.astype(np.int64)).astype(np.int64)
            continue
        w = np.asarray(layer.weight).astype(np.int64)
        b = np.asarray(layer.bias).astype(np.int64)
        order = rng.permutation(w.shape[1])
        acc = np.zeros((len(v), w.shape[0]), np.int64)
        for i in order:
            acc += np.outer(v[:, i], w[:, i])
        v = acc + b
    return v


@pytest.fixture(scope="module")
def trained(tiny_dense_run):
    import whetstone
    from whetstone.conversion import to_spiking

    net = to_spiking(whetstone.runs.load_run(tiny_dense_run).model)
    test = whetstone.runs.load_split("mnist", "test", limit=300)
    return net, test.x.numpy(), test.y.numpy()


@pytest.mark.slow
@pytest.mark.parametrize("bits", [4, 8, 16])
def test_trained_integer_network_exact(trained, bits, tmp_path) -> None:
    net, x, y = trained
    inet = to_integer(net, bits)
    p = integer_inputs(x)
    assert p.dtype == np.uint8 and np.array_equal(p.astype(np.float32) / np.float32(255), x)
    out = run(inet, p)
    # exact integer semantics: an int64 evaluation in another summation order agrees bit
    # for bit, spikes and logits
    assert np.array_equal(out, _int64_reference(inet, p, np.random.default_rng(bits)))
    # the integer network computes the dequantized network (weights on the grid, real
    # biases and thresholds) on the pixels: the same classes
    assert np.array_equal(out.argmax(1), run(fake_quantize(net, bits), x).argmax(1))
    wdtype = np.int8 if bits <= 8 else np.int16
    assert all(layer.weight.dtype == wdtype for layer in inet.layers
               if isinstance(layer, Affine))
    path = tmp_path / f"spiking-int{bits}.npz"
    inet.save(path)
    back = SpikingNetwork.load(path)
    assert back.is_integer and back.metadata["integer"]["bits"] == bits
    assert np.array_equal(run(back, p), out)


def test_conv_pool_network_matches_dequantized() -> None:
    rng = np.random.default_rng(0)
    net = SpikingNetwork([
        Conv2d(rng.normal(0, 0.3, (4, 1, 3, 3)), rng.normal(0, 0.1, 4), stride=1,
               padding=(1, 1, 1, 1)),
        Threshold(np.full((4, 1, 1), 0.5)),
        SumPool2d((2, 2), (2, 2), (0, 0, 0, 0), 1.0),
        Threshold(np.array(0.5)),
        Flatten(),
        Affine(rng.normal(0, 0.3, (20, 64)), rng.normal(0, 0.1, 20)),
        Threshold(np.full(20, 0.5)),
        Decode((rng.random((4, 20)) < 0.3).astype(float)),
    ])
    p = rng.integers(0, 256, (64, 1, 8, 8)).astype(np.uint8)
    for bits in (4, 8, 12):
        inet = to_integer(net, bits)
        assert inet.is_integer
        out = run(inet, p)
        ref = run(fake_quantize(net, bits), p / 255.0)
        assert np.array_equal(out, ref.astype(np.int64))  # decode logits are integers


def test_refusals() -> None:
    net = _hand_net()
    with pytest.raises(ValueError, match="2 to 16"):
        to_integer(net, 17)
    with pytest.raises(ValueError, match="input_scale"):
        to_integer(net, 8, input_scale=0.0)
    readout = SpikingNetwork([Affine(np.eye(2), np.zeros(2)), Threshold(np.full(2, 0.5)),
                              Affine(np.eye(2), np.zeros(2))])
    with pytest.raises(ValueError, match="real-valued affine readout"):
        to_integer(readout, 8)
    avg = SpikingNetwork([
        Conv2d(np.ones((1, 1, 1, 1)), np.zeros(1)),
        SumPool2d((2, 2), (2, 2), (0, 0, 0, 0), 0.25),
        Threshold(np.array(0.5)),
    ])
    with pytest.raises(ValueError, match="layer 0 \\(Conv2d\\) has no exact integer form"):
        to_integer(avg, 8)
    inet = to_integer(net, 8, input_scale=1.0, input_max=3)
    with pytest.raises(ValueError, match="integer inputs"):
        run(inet, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="float64"):
        run(inet, np.zeros((1, 2), np.uint8), dtype=np.float32)
    with pytest.raises(ValueError, match="not multiples"):
        integer_inputs(np.array([[0.5 / 255]]))
    with pytest.raises(ValueError, match="outside uint8"):
        integer_inputs(np.array([[2.0]]))


def test_threshold_clamped_to_bound() -> None:
    # a neuron that can never fire (theta far above any sum) keeps that behaviour with a
    # threshold clamped just above the accumulator bound
    net = SpikingNetwork([Affine(np.array([[1.0, 1.0]]), np.array([0.0])),
                          Threshold(np.array([1e9]))])
    inet = to_integer(net, 8, input_scale=1.0, input_max=1)
    bound = inet.metadata["integer"]["layers"][0]["accumulator_bound"]
    assert int(inet.layers[1].theta[0]) == bound + 1 and inet.layers[1].theta.dtype == np.int32
    assert not run(inet, np.ones((1, 2), np.uint8)).any()


@pytest.mark.slow
def test_sweep_scores_the_integer_networks(trained) -> None:
    from whetstone.quantization import quantization_sweep

    net, x, y = trained
    rows = quantization_sweep(net, x, y, bits=[4, 8, 17], integer_input_scale=1 / 255)
    by_bits = {r["bits"]: r for r in rows}
    for bits in (4, 8):
        pred = run(to_integer(net, bits), integer_inputs(x)).argmax(1)
        assert by_bits[bits]["integer_accuracy"] == pytest.approx(float((pred == y).mean()))
        # the sweep's network rounds its first-layer thresholds (real inputs), the integer
        # network's are exact: close, not equal, at few bits
        assert by_bits[bits]["integer_agreement"] >= (0.9 if bits == 4 else 0.98)
    assert "at most 16" in by_bits[17]["integer_reason"]
    noisy = quantization_sweep(net, x + 1e-4, y, bits=[8], integer_input_scale=1 / 255)
    assert "not multiples" in noisy[0]["integer_reason"]
