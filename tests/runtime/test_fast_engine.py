"""The fast engine (whetstone.runtime.fast, numba) against the numpy reference.

- Engine table: names, errors, registration, the missing-numba message.
- Hand-built networks (dense, convolutions with stride / padding / dilation, OR pooling,
  decode, convolutional readouts, graph merges through the numpy fallback) on weights and
  inputs that are multiples of powers of two, so every sum is exact in float64 and float32:
  outputs and spikes must be identical to the reference in both dtypes.
- Random real-valued weights: float64 identical spikes; float32 differences counted (only
  where float32 rounding decides: the neuron's float64 value within float32 rounding of
  its threshold).
- Integer networks: bit-identical spikes and outputs (int32 and int64 accumulators).
- Real digits: a trained dense network and a briefly trained CNN, float and integer.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("numba")

import whetstone.runtime as rt  # noqa: E402
from whetstone.runtime import (  # noqa: E402
    Add,
    Affine,
    Concat,
    Conv2d,
    Decode,
    Flatten,
    SpikingNetwork,
    SumPool2d,
    Threshold,
    run,
)
from whetstone.runtime.fast import compile_network, is_integer_network  # noqa: E402


def _grid(rng: np.random.Generator, shape: tuple[int, ...], step: float = 1 / 16,
          span: int = 16) -> np.ndarray:
    """Random multiples of ``step`` in ``[-span step, span step]`` (exact in float32)."""
    return rng.integers(-span, span + 1, size=shape) * step


def _same(net: SpikingNetwork, x: np.ndarray, dtype: type = np.float64) -> None:
    """Outputs and every layer's spikes identical to the reference's (the output also
    without ``record``: the fused plan)."""
    ref, ref_spikes = run(net, x, record=True, dtype=dtype)
    out, spikes = run(net, x, record=True, dtype=dtype, engine="fast")
    plain = run(net, x, dtype=dtype, engine="fast")
    assert plain.dtype == ref.dtype
    np.testing.assert_array_equal(plain, ref)
    assert out.dtype == ref.dtype and out.shape == ref.shape
    np.testing.assert_array_equal(out, ref)
    assert len(spikes) == len(ref_spikes)
    for a, b in zip(spikes, ref_spikes, strict=True):
        assert a.dtype == np.bool_ and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def _dense_net(rng: np.random.Generator, sizes: tuple[int, ...] = (48, 32, 24, 20)
               ) -> SpikingNetwork:
    layers: list = [Flatten()]
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [Affine(_grid(rng, (n_out, n_in)), _grid(rng, (n_out,))),
                   Threshold(np.array(0.5))]
    key = (rng.random((4, sizes[-1])) < 0.5).astype(float)
    return SpikingNetwork([*layers, Decode(key)])


def _conv_net(rng: np.random.Generator) -> SpikingNetwork:
    """Conv (stride 2, asymmetric padding) -> OR pool -> Conv (dilation 2, 'same'-like
    padding) -> Flatten -> Affine -> Decode, on (3, 13, 11) inputs."""
    c1 = Conv2d(_grid(rng, (6, 3, 3, 3)), _grid(rng, (6,)), stride=(2, 1),
                padding=(1, 2, 0, 1))
    c2 = Conv2d(_grid(rng, (5, 6, 3, 2)), _grid(rng, (5,)), dilation=(2, 1),
                padding=(2, 2, 1, 0))
    net = SpikingNetwork([c1, Threshold(_grid(rng, (6, 1, 1), span=8) + 0.5),
                          SumPool2d((2, 2), (2, 2)), Threshold(np.array(0.5)),
                          c2, Threshold(np.array(0.25)), Flatten()])
    n = int(np.prod(net.shapes((3, 13, 11))[-1]))
    return SpikingNetwork([*net.layers, Affine(_grid(rng, (12, n)), _grid(rng, (12,))),
                           Threshold(np.array(0.5)),
                           Decode((rng.random((3, 12)) < 0.5).astype(float))],
                          {"input_shape": [3, 13, 11]})


# -- the engine table ---------------------------------------------------------------------

def test_engine_table_and_errors() -> None:
    assert {"numpy", "fast"} <= set(rt.ENGINES)
    net = _dense_net(np.random.default_rng(0))
    x = np.zeros((2, 48))
    with pytest.raises(ValueError, match="unknown engine 'nope'.*fast.*numpy"):
        run(net, x, engine="nope")
    with pytest.raises(ValueError, match="unknown engine"):
        rt.predict(net, x, engine="nope")
    with pytest.raises(ValueError, match="binary_affine is an option of the numpy engine"):
        run(net, x, engine="fast", binary_affine="gather")
    with pytest.raises(ValueError, match="float32 or float64"):
        run(net, x, engine="fast", dtype=np.float16)
    with pytest.raises(TypeError):
        rt.register_engine("", lambda *a, **k: None)

    seen = {}

    def echo(net, x, **kwargs):
        seen.update(kwargs)
        return np.full((len(x), 4), 7.0)

    rt.register_engine("echo-test", echo)
    try:
        assert run(net, x, engine="echo-test").tolist() == [[7.0] * 4] * 2
        assert rt.predict(net, x, engine="echo-test").tolist() == [0, 0]
        assert set(seen) == {"record", "dtype", "batch_size", "progress"}
    finally:
        del rt.ENGINES["echo-test"]


def test_missing_numba_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import whetstone.runtime.simulate as simulate

    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    monkeypatch.setattr(simulate, "_fast", None)  # as before the first use
    net = _dense_net(np.random.default_rng(0))
    with pytest.raises(ImportError, match=r"pip install whetstone\[fast\]"):
        run(net, np.zeros((1, 48)), engine="fast")


def test_numpy_engine_default_unchanged() -> None:
    net = _dense_net(np.random.default_rng(1))
    x = np.random.default_rng(2).random((5, 48))
    assert run(net, x).dtype == np.float64
    assert run(net, x, engine="fast").dtype == np.float32
    assert run(net, x, engine="fast", dtype=np.float64).dtype == np.float64


# -- hand-built float networks, exact sums -------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch", [1, 7])
def test_dense_exact(dtype: type, batch: int) -> None:
    rng = np.random.default_rng(3)
    net = _dense_net(rng)
    x = _grid(rng, (batch, 3, 4, 4), step=1 / 8, span=8) * (rng.random((batch, 3, 4, 4)) < 0.3)
    _same(net, x, dtype)
    plan = compile_network(net, dtype).plan(x.astype(dtype))
    assert plan.names == ["1..7 dense chain (one call)"]  # without record: one call
    assert [s[0] for s in plan.steps] == [  # with record: per layer
        "0 Flatten", "1+2 Affine+Threshold", "3+4 Affine+Threshold", "5+6 Affine+Threshold",
        "7 Decode"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch", [1, 5])
def test_conv_pool_exact(dtype: type, batch: int) -> None:
    rng = np.random.default_rng(4)
    net = _conv_net(rng)
    x = _grid(rng, (batch, 3, 13, 11), step=1 / 4, span=4) * (rng.random((batch, 3, 13, 11))
                                                               < 0.6)
    _same(net, x, dtype)
    steps = compile_network(net).steps(x)
    assert steps[:3] == ["0+1 Conv2d+Threshold", "2+3 SumPool2d+Threshold",
                         "4+5 Conv2d+Threshold"]
    assert not any("numpy" in s for s in steps)
    # ties fire: a threshold equal to a reachable sum
    fast = run(net, x, engine="fast", dtype=dtype, record=True)[1]
    assert sum(int(s.sum()) for s in fast) > 0


def test_conv_readout_and_fallbacks() -> None:
    """A convolutional readout (values, channels-last back to (N, C, H, W)), an input
    encoded by a Threshold, an average pool and a graph with Add and Concat (numpy
    fallback per layer)."""
    rng = np.random.default_rng(5)
    conv = Conv2d(_grid(rng, (4, 2, 3, 3)), _grid(rng, (4,)), padding=1)
    net = SpikingNetwork([Threshold(np.array(0.25)), conv, Threshold(np.array(0.5)),
                          Conv2d(_grid(rng, (3, 4, 1, 1)), _grid(rng, (3,)))])
    x = rng.random((3, 2, 6, 5))
    _same(net, x, np.float64)
    _same(net, x, np.float32)
    avg = SpikingNetwork([conv, Threshold(np.array(0.5)), SumPool2d((2, 2), (2, 2),
                                                                    scale=0.25)])
    _same(avg, x, np.float64)
    a = Conv2d(_grid(rng, (4, 2, 3, 3)), _grid(rng, (4,)), padding=1)
    b = Conv2d(_grid(rng, (4, 4, 3, 3)), _grid(rng, (4,)), padding=1)
    graph = SpikingNetwork(
        [a, Threshold(np.array(0.5)), b, Threshold(np.array(0.5)), Add(),
         Threshold(np.array(1.5)), Concat(), Flatten(),
         Affine(_grid(rng, (5, 8 * 30)), _grid(rng, (5,)))],
        inputs=[(-1,), (0,), (1,), (2,), (3, 1), (4,), (5, 1), (6,), (7,)])
    _same(graph, x, np.float64)
    steps = compile_network(graph).steps(x)
    assert "4 Add (numpy)" in steps and "6 Concat (numpy)" in steps


def test_grouped_conv_falls_back() -> None:
    rng = np.random.default_rng(6)
    net = SpikingNetwork([Conv2d(_grid(rng, (4, 1, 3, 3)), _grid(rng, (4,)), groups=2),
                          Threshold(np.array(0.5))])
    x = rng.random((2, 2, 5, 5))
    _same(net, x)
    assert compile_network(net).steps(x)[0] == "0 Conv2d (numpy)"


# -- random real weights: float64 identical, float32 counted --------------------------------

def test_random_weights_float64_identical_float32_counted() -> None:
    rng = np.random.default_rng(7)
    net = SpikingNetwork([
        Flatten(), Affine(rng.normal(size=(64, 100)) / 5, rng.normal(size=64) / 5),
        Threshold(np.array(0.5)), Affine(rng.normal(size=(32, 64)) / 3, rng.normal(size=32)),
        Threshold(np.array(0.5)), Decode((rng.random((5, 32)) < 0.5).astype(float))])
    x = rng.random((400, 100)).astype(np.float32) * (rng.random((400, 100)) < 0.5)
    _same(net, x, np.float64)
    ref, ref_spikes = run(net, x, record=True)
    out, spikes = run(net, x, record=True, engine="fast")  # float32
    first = ref_spikes[0] != spikes[0]
    # a first-layer spike may differ only where float32 rounding decides: the float64 value
    # within a few float32 ulps of the threshold
    values = x.astype(np.float64) @ net.layers[1].weight.T + net.layers[1].bias
    margin = np.abs(values - 0.5)
    assert np.all(margin[first] < 1e-5), margin[first]
    differing = int((ref.argmax(1) != out.argmax(1)).sum())
    assert differing <= int(first.any(axis=1).sum())


# -- integer networks ------------------------------------------------------------------------

def _integer_dense(rng: np.random.Generator, wdtype: type, scale: int) -> SpikingNetwork:
    """Inputs (2, 16, 16), int8 or int16 weights of magnitude scale / 2 to scale."""
    sign = rng.choice([-1, 1], size=(40, 512))
    w0 = (sign * rng.integers(scale // 2, scale + 1, size=(40, 512))).astype(wdtype)
    w1 = rng.integers(-127, 128, size=(24, 40)).astype(wdtype)
    t0 = rng.integers(-scale, scale, size=40) * 200
    t1 = rng.integers(-200, 200, size=24)
    return SpikingNetwork([
        Flatten(), Affine(w0, np.zeros(40, np.int32)), Threshold(t0.astype(np.int64)),
        Affine(w1, np.zeros(24, np.int32)), Threshold(t1.astype(np.int32)),
        Decode((rng.random((6, 24)) < 0.5).astype(float))])


@pytest.mark.parametrize(("wdtype", "scale", "acc"), [(np.int8, 127, "int32"),
                                                     (np.int16, 32767, "int64")])
@pytest.mark.parametrize("batch", [1, 9])
def test_integer_dense_bit_identical(wdtype: type, scale: int, acc: str, batch: int) -> None:
    rng = np.random.default_rng(8)
    net = _integer_dense(rng, wdtype, scale)
    assert is_integer_network(net)
    x = rng.integers(0, 256, size=(batch, 2, 16, 16)).astype(np.uint8)
    x[:, :, :5] = 0
    _same(net, x)
    fast = compile_network(net)
    plan = fast.plan(x)
    assert fast.integer and plan.names[1] == "1+2 Affine+Threshold"
    # int16 weights x 255 x 512 inputs exceed 2^31: int64 accumulators there
    bound = np.abs(net.layers[1].weight.astype(np.int64)).sum(axis=1).max() * 255
    assert (bound >= 2**31) == (acc == "int64")
    assert plan.accumulators == {1: acc, 3: "int32", 5: "int32"}
    with pytest.raises(ValueError, match="integer inputs"):
        run(net, x.astype(np.float32), engine="fast")


def test_integer_conv_bit_identical() -> None:
    rng = np.random.default_rng(9)
    c1 = Conv2d(rng.integers(-127, 128, size=(6, 2, 3, 3)).astype(np.int8),
                np.zeros(6, np.int32), stride=2, padding=(1, 1, 1, 1))
    c2 = Conv2d(rng.integers(-127, 128, size=(4, 6, 3, 3)).astype(np.int8),
                np.zeros(4, np.int32), padding=1)
    net = SpikingNetwork([
        c1, Threshold(rng.integers(-2000, 2000, size=(6, 1, 1)).astype(np.int32)),
        SumPool2d((2, 2), (1, 1)), Threshold(np.array(1, np.int32)),
        c2, Threshold(np.array(5, np.int32)), Flatten(),
        Affine(rng.integers(-127, 128, size=(10, 4 * 5 * 5)).astype(np.int8),
               np.zeros(10, np.int32)), Threshold(np.array(0, np.int32)),
        Decode((rng.random((3, 10)) < 0.5).astype(float))])
    assert net.is_integer
    x = rng.integers(0, 256, size=(6, 2, 12, 12)).astype(np.uint8)
    _same(net, x)
    assert not any("numpy" in s for s in compile_network(net).steps(x))


# -- real digits: trained networks ----------------------------------------------------------

DIGITS = 1000


@pytest.fixture(scope="module")
def digits(mnist_ready: str) -> tuple[np.ndarray, np.ndarray]:
    """The first 1000 MNIST test digits: float32 ``(N, 1, 28, 28)`` in [0, 1] and uint8."""
    from whetstone.data import load, to_float

    images, _ = load("mnist", "test")
    return to_float(images[:DIGITS]).numpy(), np.asarray(images[:DIGITS], np.uint8).reshape(
        DIGITS, 1, 28, 28)


@pytest.fixture(scope="module")
def dense_net(tiny_dense_run) -> SpikingNetwork:
    import torch

    from whetstone.conversion import to_spiking
    from whetstone.runs import load_run

    return to_spiking(load_run(tiny_dense_run).model.eval(), torch.zeros(1, 1, 28, 28))


@pytest.fixture(scope="module")
def cnn_net(mnist_ready: str) -> SpikingNetwork:
    """Conv 8 (stride 1, padding 2, 5x5) -> OR pool -> Conv 12 (3x3, stride 2, padding 1)
    -> Flatten -> Linear 60 -> decode, trained on 1000 MNIST digits while sharpening
    (a few seconds on one CPU)."""
    import torch
    from torch import nn

    from whetstone.conversion import to_spiking
    from whetstone.data import load, to_float
    from whetstone.nn import SoftmaxDecode, SpikingBReLU, key_generator
    from whetstone.sharpening.allocation import set_model_sharpness

    images, labels = load("mnist", "train")
    x, y = to_float(images[:1000]), labels[:1000].long()
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 5, padding=2), SpikingBReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 12, 3, stride=2, padding=1), SpikingBReLU(),
        nn.Flatten(), nn.Linear(12 * 7 * 7, 60), SpikingBReLU(),
        SoftmaxDecode(key_generator(10, 60, seed=0)))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for sharpness in (0.0, 0.5, 0.8, 0.95):
        set_model_sharpness(model, sharpness)
        for i in range(0, len(x), 50):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + 50]), y[i:i + 50]).backward()
            opt.step()
    set_model_sharpness(model, 1.0)
    return to_spiking(model.eval(), x[:1])


def _check_float32_rounding(net: SpikingNetwork, x: np.ndarray, tol: float = 1e-4) -> int:
    """Every spike of the float32 fast engine equals the float64 threshold decision on the
    same inputs (the fast engine's own spikes of the layer before), except where the float64
    value lies within ``tol`` of the threshold (where float32 rounding decides). Returns the
    number of such rounding-decided spikes that differ."""
    from whetstone.runtime.simulate import Context, kernel_for

    _, spikes = run(net, x, record=True, engine="fast")
    ctx = Context(np.dtype(np.float64))
    value, k, decided = x.astype(np.float64), 0, 0
    for layer in net.layers:
        if isinstance(layer, Threshold):
            theta = np.asarray(layer.theta, np.float64)
            fired = spikes[k]
            expect = value >= theta
            close = np.abs(value - theta) < tol
            assert np.all((fired == expect) | close)
            decided += int(((fired != expect) & close).sum())
            value, k = fired, k + 1
        else:
            value = kernel_for(layer)(layer, [value], ctx)
    return decided


@pytest.mark.slow
@pytest.mark.parametrize("which", ["dense", "cnn"])
def test_trained_float_networks(which: str, request: pytest.FixtureRequest,
                                digits: tuple[np.ndarray, np.ndarray]) -> None:
    net = request.getfixturevalue(f"{which}_net")
    x = digits[0]
    ref, ref_spikes = run(net, x, record=True)
    _same(net, x, np.float64)  # float64: identical outputs and spikes on real digits
    steps = compile_network(net).steps(x)
    assert not any("numpy" in s for s in steps), steps
    # float32: differences counted, each decided by float32 rounding
    out, spikes = run(net, x, record=True, engine="fast")
    differing_spikes = [int((a != b).sum()) for a, b in zip(spikes, ref_spikes, strict=True)]
    differing_predictions = int((out.argmax(1) != ref.argmax(1)).sum())
    rounding = _check_float32_rounding(net, x)
    print(f"{which} float32 vs float64 reference: spikes differing per layer "
          f"{differing_spikes}, predictions {differing_predictions} of {len(x)}, "
          f"rounding-decided spikes {rounding}")
    assert differing_predictions <= max(1, len(x) // 100)
    # batch 1 gives the same as batches
    for i in range(3):
        np.testing.assert_array_equal(run(net, x[i:i + 1], engine="fast"), out[i:i + 1])


@pytest.mark.slow
@pytest.mark.parametrize("which", ["dense", "cnn"])
@pytest.mark.parametrize("bits", [8, 12])
def test_trained_integer_networks(which: str, bits: int, request: pytest.FixtureRequest,
                                  digits: tuple[np.ndarray, np.ndarray]) -> None:
    from whetstone.quantization import to_integer

    net = to_integer(request.getfixturevalue(f"{which}_net"), bits)
    _same(net, digits[1])  # bit-identical logits (int64) and spikes
    fast = compile_network(net)
    assert fast.integer
    assert set(fast.plan(digits[1]).accumulators.values()) <= {"int32", "int64"}
    declared = {e["index"]: e["accumulator"] for e in net.metadata["integer"]["layers"]
                if e["kind"] in ("Affine", "Conv2d")}
    ours = fast.plan(digits[1]).accumulators
    assert {i: ours[i] for i in declared} == declared


@pytest.mark.slow
def test_cli_simulate_engine(tiny_dense_run, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from whetstone.cli.main import main

    results = {}
    for engine in ("numpy", "fast"):
        assert main(["simulate", str(tiny_dense_run), "--limit", "300", "--engine", engine,
                     "--json", "--no-progress"]) == 0
        results[engine] = json.loads(capsys.readouterr().out)
    assert results["fast"]["engine"] == "fast" and results["fast"]["dtype"] == "float32"
    assert results["numpy"]["engine"] == "numpy" and results["numpy"]["dtype"] == "float64"
    assert results["fast"]["accuracy"] == results["numpy"]["accuracy"]
    assert main(["simulate", str(tiny_dense_run), "--limit", "20", "--engine", "fast"]) == 0
    assert "fast engine, float32" in capsys.readouterr().out


def test_single_sample_rows_in_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch 1 through the row-parallel convolution kernels (forced for small layers)."""
    import whetstone.runtime.fast.engine as engine

    monkeypatch.setattr(engine, "ROW_PARALLEL_MIN_MACS", 0)
    rng = np.random.default_rng(10)
    net = _conv_net(rng)  # a new network: its plans are built with the patched bound
    x = _grid(rng, (1, 3, 13, 11), step=1 / 4, span=4)
    _same(net, x, np.float64)
    _same(net, x, np.float32)
