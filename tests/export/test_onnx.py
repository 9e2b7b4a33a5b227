"""ONNX export (whetstone.export.onnx) run in onnxruntime against the numpy reference.

float64 models give the reference's spikes and decode logits exactly (real readouts up to
the summation order of a matrix product); float32 models differ only where float32 rounding
decides (counted, and every flip traced to a pre-activation within float32 rounding of its
threshold or to an earlier flip in the same sample); integer networks give bit-identical
integers and spikes.
"""

from __future__ import annotations

import gc
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import whetstone.runtime as rt
from whetstone.conversion import to_spiking
from whetstone.nn import SoftmaxDecode, SpikingBReLU, SpikingSigmoid, key_generator
from whetstone.sharpening.allocation import set_model_sharpness

onnx = pytest.importorskip("onnx", reason="the 'onnx' package (extra 'onnx') is not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime (extra 'onnx') is not installed")

from whetstone.export.onnx import (  # noqa: E402
    ONNX_WRITERS,
    ONNXExportError,
    build_model,
    register_onnx_writer,
    run_onnx,
    session,
    to_onnx,
)
from whetstone.quantization import to_integer  # noqa: E402

# ------------------------------------------------------------------------------- networks

def dense_net(rng: np.random.Generator) -> rt.SpikingNetwork:
    """(16,) -> Affine 24 -> Threshold (per neuron) -> Affine 12 -> Threshold -> Decode 3."""
    return rt.SpikingNetwork([
        rt.Affine(rng.normal(size=(24, 16)), rng.normal(size=24) * 0.3),
        rt.Threshold(rng.uniform(0.2, 0.8, size=24)),
        rt.Affine(rng.normal(size=(12, 24)), rng.normal(size=12) * 0.3), rt.Threshold(0.5),
        rt.Decode((rng.random((3, 12)) < 0.5).astype(float))], {"input_shape": [16]})


def conv_net(rng: np.random.Generator) -> rt.SpikingNetwork:
    """Every shape primitive: a strided, dilated convolution with asymmetric padding, a
    grouped one, OR pooling, an average pooling (divisor 6, overlapping windows, padding),
    a pooling by 0.3, nearest upsampling, Flatten / Unflatten, Affine, Decode.
    Input (3, 12, 11)."""
    return rt.SpikingNetwork([
        rt.Conv2d(rng.normal(size=(6, 3, 3, 3)), rng.normal(size=6) * 0.3, stride=(2, 1),
                  padding=(1, 0, 2, 1), dilation=(1, 2)), rt.Threshold(0.3),
        rt.Conv2d(rng.normal(size=(6, 2, 2, 2)), rng.normal(size=6) * 0.3, groups=3,
                  padding=1), rt.Threshold(0.5),
        rt.SumPool2d(2, 2), rt.Threshold(0.5),
        rt.SumPool2d((3, 2), (1, 2), padding=(1, 1, 0, 0), scale=1 / 6),
        rt.Upsample2d((2, 3)),
        rt.SumPool2d(2, 2, scale=0.3),
        rt.Flatten(), rt.Affine(rng.normal(size=(20, 54)), rng.normal(size=20) * 0.3),
        rt.Threshold(0.5), rt.Unflatten((4, 5)), rt.Flatten(),
        rt.Decode((rng.random((3, 20)) < 0.5).astype(float))], {"input_shape": [3, 12, 11]})


def integer_ready_net(rng: np.random.Generator) -> rt.SpikingNetwork:
    """A chain that has an integer form (no average pooling): strided and grouped
    convolutions, OR pooling, upsampling, Affine, Decode. Input (2, 8, 8) pixels / 255."""
    return rt.SpikingNetwork([
        rt.Conv2d(rng.normal(size=(6, 2, 3, 3)), rng.normal(size=6) * 0.3, padding=(1, 1, 0, 2),
                  stride=(1, 2)), rt.Threshold(0.5),
        rt.Conv2d(rng.normal(size=(6, 3, 3, 3)), rng.normal(size=6) * 0.3, groups=2,
                  padding=1, dilation=(1, 2)), rt.Threshold(0.5),
        rt.SumPool2d(2, 2), rt.Threshold(0.5), rt.Upsample2d(2),
        rt.Flatten(), rt.Affine(rng.normal(size=(16, 96)), rng.normal(size=16) * 0.3),
        rt.Threshold(0.5), rt.Decode((rng.random((4, 16)) < 0.5).astype(float))],
        {"input_shape": [2, 8, 8]})


def graph_net(rng: np.random.Generator) -> rt.SpikingNetwork:
    """A residual graph: conv -> T -> conv -> T, Add of the two spike maps -> T, Concat of
    that with the second map, OR pool, Affine, Decode. Input (2, 6, 6)."""
    layers: list[rt.Primitive] = [
        rt.Conv2d(rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4) * 0.3, padding=1),
        rt.Threshold(0.5),
        rt.Conv2d(rng.normal(size=(4, 4, 3, 3)), rng.normal(size=4) * 0.3, padding=1),
        rt.Threshold(0.5), rt.Add(), rt.Threshold(1.5), rt.Concat(), rt.SumPool2d(2, 2),
        rt.Threshold(0.5), rt.Flatten(), rt.Affine(rng.normal(size=(12, 72)),
                                                   rng.normal(size=12) * 0.3),
        rt.Threshold(0.5), rt.Decode((rng.random((3, 12)) < 0.5).astype(float))]
    inputs = [(-1,), (0,), (1,), (2,), (3, 1), (4,), (5, 3), (6,), (7,), (8,), (9,), (10,),
              (11,)]
    return rt.SpikingNetwork(layers, {"input_shape": [2, 6, 6]}, inputs)


def real_graph_net(rng: np.random.Generator) -> rt.SpikingNetwork:
    """A graph over real values: an Add of a convolution and the input, a Concat of real and
    spike maps, ending with a real-valued 1x1 convolution readout. Input (2, 5, 5)."""
    layers: list[rt.Primitive] = [
        rt.Conv2d(rng.normal(size=(2, 2, 3, 3)), rng.normal(size=2) * 0.3, padding=1),
        rt.Add(), rt.Threshold(0.7), rt.Concat(),
        rt.Conv2d(rng.normal(size=(3, 4, 1, 1)), rng.normal(size=3))]
    inputs = [(-1,), (0, -1), (1,), (2, 1), (3,)]
    return rt.SpikingNetwork(layers, {"input_shape": [2, 5, 5]}, inputs)


def readout_nets(rng: np.random.Generator) -> dict[str, rt.SpikingNetwork]:
    """One network per readout kind other than decode."""
    hidden = [rt.Affine(rng.normal(size=(10, 8)), rng.normal(size=10) * 0.3), rt.Threshold(0.5)]
    meta = {"input_shape": [8]}
    return {
        "affine": rt.SpikingNetwork([*hidden, rt.Affine(rng.normal(size=(4, 10)),
                                                        rng.normal(size=4))], meta),
        "spikes": rt.SpikingNetwork(hidden, meta),
        "identity": rt.SpikingNetwork([rt.Unflatten((2, 4)), rt.Flatten()], meta),
        "conv2d": real_graph_net(rng),
    }


NETS = {"dense": dense_net, "conv": conv_net, "graph": graph_net,
        "integer_ready": integer_ready_net, "real_graph": real_graph_net}


def _x(net: rt.SpikingNetwork, n: int = 200, seed: int = 0) -> np.ndarray:
    """Pixel-like inputs (multiples of 1/255) in [0, 1], float32, plus a few in [-1, 0)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-40, 256, size=(n, *net.input_shape)) / 255).astype(np.float32)


def _spike_flips_explained(net: rt.SpikingNetwork, x: np.ndarray, got: list[np.ndarray],
                           rtol: float = 1e-5) -> tuple[int, int]:
    """``(flips, unexplained)``: spikes of ``got`` that differ from the float64 reference,
    and those neither within ``rtol`` (relative to the pre-activation's scale) of the
    threshold nor in a sample where an earlier layer already flipped."""
    flips = unexplained = 0
    earlier = np.zeros(len(x), dtype=bool)
    k = 0
    for i, inputs, out in rt.walk(net, x, rt.Context(np.dtype(np.float64))):
        layer = net.layers[i]
        if not isinstance(layer, rt.Threshold):
            continue
        diff = got[k] != out
        k += 1
        if not diff.any():
            continue
        pre = np.asarray(inputs[0], np.float64)
        theta = np.broadcast_to(np.asarray(layer.theta, np.float64), pre.shape[1:])
        near = np.abs(pre - theta) <= rtol * (1.0 + np.abs(pre))
        per_sample = diff.reshape(len(x), -1)
        bad = (diff & ~near).reshape(len(x), -1).any(axis=1) & ~earlier
        flips += int(diff.sum())
        unexplained += int(bad.sum())
        earlier |= per_sample.any(axis=1)
    return flips, unexplained


# ----------------------------------------------------------------------- float networks

@pytest.mark.parametrize("name", sorted(NETS))
def test_float64_model_gives_the_reference_spikes_and_outputs(name: str) -> None:
    net = NETS[name](np.random.default_rng(1))
    x = _x(net)
    want, want_spikes = rt.run(net, x, record=True, dtype=np.float64)
    got, spikes = run_onnx(net, x, record=True, dtype=np.float64)
    assert got.dtype == np.float64 and got.shape == want.shape
    for a, b in zip(spikes, want_spikes, strict=True):
        assert a.dtype == np.bool_
        np.testing.assert_array_equal(a, b)
    if net.readout == "decode":
        np.testing.assert_array_equal(got, want)
    else:  # real readout: the same sums in another order
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    assert any(0.05 < s.mean() < 0.95 for s in want_spikes)  # the thresholds decide something


@pytest.mark.parametrize("name", sorted(NETS))
def test_float32_model_differs_only_where_float32_rounding_decides(name: str) -> None:
    net = NETS[name](np.random.default_rng(2))
    x = _x(net, n=400, seed=3)
    want = rt.run(net, x, dtype=np.float64)
    got, spikes = run_onnx(net, x, record=True, dtype=np.float32)
    assert got.dtype == np.float32
    flips, unexplained = _spike_flips_explained(net, x, spikes)
    total = sum(s.size for s in spikes)
    print(f"{name}: float32 ONNX vs float64 reference: {flips} of {total} spikes differ")
    assert unexplained == 0 and flips <= 1e-3 * total
    if flips == 0:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_float32_flip_is_counted_and_traced_to_rounding() -> None:
    """0.1 + 0.2 is just below theta = nextafter(0.1 + 0.2, 1) in float64 (no spike) but
    equal to float32(theta) in float32 (a spike): the flip is counted and explained."""
    theta = np.nextafter(0.1 + 0.2, 1.0)
    net = rt.SpikingNetwork([rt.Affine(np.array([[0.1, 0.2]]), np.zeros(1)),
                             rt.Threshold(theta)], {"input_shape": [2]})
    x = np.ones((3, 2), np.float32)
    _, (spikes64,) = run_onnx(net, x, record=True, dtype=np.float64)
    _, (spikes32,) = run_onnx(net, x, record=True, dtype=np.float32)
    assert not spikes64.any() and spikes32.all()
    assert _spike_flips_explained(net, x, [spikes32]) == (3, 0)
    assert _spike_flips_explained(net, x, [np.ones_like(spikes64)], rtol=0.0) == (3, 3)


@pytest.mark.parametrize("kind", ["affine", "spikes", "identity", "conv2d"])
def test_every_readout_is_the_output(kind: str) -> None:
    net = readout_nets(np.random.default_rng(4))[kind]
    assert net.readout == kind
    x = _x(net, n=64)
    want = rt.run(net, x, dtype=np.float64)
    got = run_onnx(net, x, dtype=np.float64)
    assert got.shape == want.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(run_onnx(net, x, dtype=np.float32), want, rtol=1e-5, atol=1e-5)


def _sharp(model: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.2)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.5 + 0.5)
    set_model_sharpness(model, 1.0)
    return model.eval()


def torch_cnn() -> nn.Module:
    """Conv + BatchNorm ('same', groups, dilation), OR and average pooling, Linear + BN,
    decode; input (1, 12, 12)."""
    torch.manual_seed(5)
    return _sharp(nn.Sequential(
        nn.Conv2d(1, 8, 3, padding="same"), nn.BatchNorm2d(8), SpikingBReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2), nn.BatchNorm2d(8), SpikingSigmoid(),
        nn.AvgPool2d(2), nn.Conv2d(8, 6, 1), SpikingBReLU(), nn.Flatten(),
        nn.Linear(6 * 3 * 3, 30), nn.BatchNorm1d(30), SpikingBReLU(),
        SoftmaxDecode(key_generator(5, 30, seed=0))))


def test_converted_torch_model_runs_in_onnxruntime() -> None:
    model = torch_cnn()
    net = to_spiking(model, torch.zeros(1, 1, 12, 12))
    x = _x(net, n=300, seed=6)
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x)).numpy()
    want, want_spikes = rt.run(net, x, record=True)
    got, spikes = run_onnx(net, x, record=True, dtype=np.float64)
    np.testing.assert_array_equal(got, want)
    for a, b in zip(spikes, want_spikes, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (got.argmax(1) == torch_logits.argmax(1)).mean() > 0.99
    got32, spikes32 = run_onnx(net, x, record=True, dtype=np.float32)
    flips, unexplained = _spike_flips_explained(net, x, spikes32)
    print(f"torch CNN: float32 ONNX vs float64 reference: {flips} spikes differ")
    assert unexplained == 0


def test_converted_residual_network_runs_in_onnxruntime() -> None:
    from whetstone.presets.architectures import resnet

    torch.manual_seed(7)
    model = _sharp(resnet(key_generator(4, 16, seed=0), in_channels=2, image_size=8,
                          widths=(4, 8), shortcut="projection"))
    x = (np.random.default_rng(8).integers(0, 256, (100, 2, 8, 8)) / 255).astype(np.float32)
    net = to_spiking(model, torch.from_numpy(x[:1]))
    assert not net.is_chain and any(isinstance(layer, rt.Add) for layer in net.layers)
    want, want_spikes = rt.run(net, x, record=True)
    got, spikes = run_onnx(net, x, record=True, dtype=np.float64)
    np.testing.assert_array_equal(got, want)
    for a, b in zip(spikes, want_spikes, strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------- integer networks

@pytest.mark.parametrize("bits", [3, 8, 12, 16])
@pytest.mark.parametrize("name", ["dense", "integer_ready", "graph"])
def test_integer_network_is_bit_identical(name: str, bits: int) -> None:
    net = to_integer(NETS[name](np.random.default_rng(9)), bits)
    assert net.is_integer
    pixels = np.random.default_rng(10).integers(0, 256, size=(300, *net.input_shape),
                                                dtype=np.uint8)
    want, want_spikes = rt.run(net, pixels, record=True)
    got, spikes = run_onnx(net, pixels, record=True)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)
    for a, b in zip(spikes, want_spikes, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(0.05 < s.mean() < 0.95 for s in want_spikes)
    model = build_model(net)
    nodes = model.graph.node
    ops = {node.op_type for node in nodes}
    assert not ops & {"Div", "Mul"}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert "MatMulInteger" in ops  # spikes into the decode (int8 weights 4K - 2)
    readers = {i: n for n in nodes for i in n.input}
    for conv in (n for n in nodes if n.op_type == "Conv"):  # only the exact float32 route
        assert conv.name.endswith("_float32") and readers[conv.output[0]].op_type == "Cast"
    if bits <= 8 and name != "dense":
        assert "Conv" in ops and "ConvInteger" not in ops  # 8-bit sums stay within 2^24
    if bits == 16 and name != "dense":  # 16-bit weights on pixels: beyond 2^24, im2col
        assert "Slice" in ops and "MatMul" in ops


def test_hand_computed_integer_network() -> None:
    """x = (3, 250) uint8; W = [[1, -2], [100, 1]] int8; theta = [-400, 400];
    W x = [3 - 500, 300 + 250] = [-497, 550]: fires [0, 1]; decode key [[0, 1], [1, 1]]:
    logits = 2 - 2 hamming = [2, 0]."""
    net = rt.SpikingNetwork([
        rt.Affine(np.array([[1, -2], [100, 1]], np.int8), np.zeros(2, np.int32)),
        rt.Threshold(np.array([-400, 400], np.int32)),
        rt.Decode(np.array([[0.0, 1.0], [1.0, 1.0]]))], {"input_shape": [2]})
    assert net.is_integer
    out, (spikes,) = run_onnx(net, np.array([[3, 250]], np.uint8), record=True)
    np.testing.assert_array_equal(spikes, [[False, True]])
    np.testing.assert_array_equal(out, [[2, 0]])
    assert out.dtype == np.int64


def test_products_that_would_saturate_int16_are_exact() -> None:
    """Pixels of 255 against weights of +-127: onnxruntime's uint8 x int8 kernel on AVX2 adds
    pairs of products in saturating int16 (255 * 127 * 2 > 32767) and gets these sums wrong;
    the export takes the unsigned route (W + 128, zero point 128) there, and the signed one
    over spikes. The convolution sums 576 such products (beyond 2^24, so not the float32
    route)."""
    rng = np.random.default_rng(23)
    conv_w = rng.choice(np.array([-128, -127, 127, 126], np.int8), size=(4, 64, 3, 3))
    dense_w = rng.choice(np.array([-127, 127, 100], np.int8), size=(6, 4 * 4 * 4))
    net = rt.SpikingNetwork([
        rt.Conv2d(conv_w, np.zeros(4, np.int32), padding=1), rt.Threshold(np.int32(0)),
        rt.Flatten(), rt.Affine(dense_w, np.zeros(6, np.int32)), rt.Threshold(np.int32(0)),
        rt.Affine(rng.choice(np.array([-127, 127], np.int8), size=(3, 6)),
                  np.zeros(3, np.int32))], {"input_shape": [64, 4, 4]})
    pixels = rng.choice(np.array([0, 200, 255, 255], np.uint8), size=(200, 64, 4, 4))
    want, want_spikes = rt.run(net, pixels, record=True)
    got, spikes = run_onnx(net, pixels, record=True)
    np.testing.assert_array_equal(got, want)
    for a, b in zip(spikes, want_spikes, strict=True):
        np.testing.assert_array_equal(a, b)
    assert 0.05 < want_spikes[0].mean() < 0.95
    model = build_model(net)
    conv = next(n for n in model.graph.node if n.op_type == "ConvInteger")
    dense = [n for n in model.graph.node if n.op_type == "MatMulInteger"]
    assert len(conv.input) == 4  # the unsigned route, with zero points
    assert [len(n.input) for n in dense] == [2, 2]  # spikes: signed int8 weights


def test_integer_convolution_in_float32_is_exact_up_to_2_to_the_24() -> None:
    """Sums of magnitude up to 2^24 are exact in float32 in any order: weights of 127 over
    518 pixels of 255 (bound 16,775,430 <= 2^24) take the float32 Conv and still equal the
    reference at its extremes (channel 0 fires on ties at +16,775,430, channel 1 only above
    -16,775,430); one more input channel leaves that route."""
    for cin, route in ((518, "Conv"), (519, "ConvInteger")):
        weight = np.full((2, cin, 1, 1), 127, np.int8)
        weight[1] = -127
        net = rt.SpikingNetwork([
            rt.Conv2d(weight, np.zeros(2, np.int32)),
            rt.Threshold(np.array([16_775_430, -16_775_429], np.int32).reshape(2, 1, 1))],
            {"input_shape": [cin, 1, 2]})
        pixels = np.full((3, cin, 1, 2), 255, np.uint8)
        pixels[1, 0, 0, 1] = 254  # one below the largest sum
        ops = {n.op_type for n in build_model(net).graph.node}
        assert route in ops
        _, (spikes,) = run_onnx(net, pixels, record=True)
        np.testing.assert_array_equal(spikes, rt.run(net, pixels, record=True)[1][0])
        if cin == 518:  # ties fire; 127 below the largest sum does not
            np.testing.assert_array_equal(spikes[0], [[[True, True]], [[False, False]]])
            np.testing.assert_array_equal(spikes[1], [[[True, False]], [[False, True]]])


def test_wide_sums_use_int64() -> None:
    """16-bit weights over 600 pixels: a sum can exceed 2^31, so the layer accumulates in
    int64 (and still equals the reference)."""
    rng = np.random.default_rng(11)
    float_net = rt.SpikingNetwork([
        rt.Affine(rng.normal(size=(8, 600)) + 3.0, rng.normal(size=8)), rt.Threshold(0.5),
        rt.Decode((rng.random((2, 8)) < 0.5).astype(float))], {"input_shape": [600]})
    net = to_integer(float_net, 16)
    assert net.metadata["integer"]["layers"][0]["accumulator"] == "int64"
    model = build_model(net)
    matmul = next(n for n in model.graph.node if n.op_type == "MatMul")
    weight = next(t for t in model.graph.initializer if t.name == matmul.input[1])
    assert weight.data_type == onnx.TensorProto.INT64
    pixels = rng.integers(0, 256, size=(100, 600), dtype=np.uint8)
    np.testing.assert_array_equal(run_onnx(net, pixels), rt.run(net, pixels))


def test_integer_network_refuses_real_or_out_of_range_inputs() -> None:
    net = to_integer(dense_net(np.random.default_rng(12)), 8)
    with pytest.raises(ValueError, match="integer inputs"):
        run_onnx(net, np.zeros((2, 16), np.float32))
    with pytest.raises(ValueError, match="at most 255"):
        run_onnx(net, np.full((2, 16), 300, np.int32))
    with pytest.raises(ValueError, match="float64"):
        run_onnx(net, np.zeros((2, 16), np.uint8), dtype=np.float32)


# ------------------------------------------------------------------- the model and file

@pytest.mark.parametrize("name", sorted(NETS))
def test_model_passes_the_checker_with_shapes(name: str) -> None:
    net = NETS[name](np.random.default_rng(13))
    for candidate in (net, to_integer(net, 8) if name != "conv" and name != "real_graph"
                      else net):
        model = build_model(candidate, record=True)
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        out = inferred.graph.output[0].type.tensor_type.shape.dim
        assert out[0].dim_param == "N"
        assert [d.dim_value for d in out[1:]] == list(net.shapes(net.input_shape)[-1])


def test_to_onnx_writes_a_file_onnxruntime_runs(tmp_path: Path) -> None:
    net = conv_net(np.random.default_rng(14))
    path = tmp_path / "net.onnx"
    to_onnx(net, path, dtype="float64", batch=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx"]  # no temporary file left
    model = onnx.load(path)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 5
    props = {p.key: p.value for p in model.metadata_props}
    assert props["whetstone_readout"] == "decode"
    x = _x(net, n=5)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"input": x.astype(np.float64)})
    np.testing.assert_array_equal(out, rt.run(net, x))
    to_onnx(net, path)  # replaces the file; float32 by default
    assert onnx.load(path).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_a_primitive_without_writer_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    net = conv_net(np.random.default_rng(15))
    monkeypatch.delitem(ONNX_WRITERS, rt.Upsample2d)
    with pytest.raises(ONNXExportError, match=r"layer 7 \(Upsample2d\): no ONNX writer for "
                                              r"primitive Upsample2d"):
        build_model(net)
    with pytest.raises(TypeError, match="Primitive subclasses"):
        register_onnx_writer(int)  # type: ignore[arg-type]


def test_registered_writer_replaces_the_table_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    from whetstone.export.onnx import Value

    monkeypatch.setitem(ONNX_WRITERS, rt.Decode, ONNX_WRITERS[rt.Decode])

    @register_onnx_writer(rt.Decode)
    def spikes_only(builder, spec):  # the decode's input, unchanged
        x = builder.cast(spec.inputs[0], builder.real)
        return Value(builder.node("Identity", [x.name], "same"), x.dtype, spec.inputs[0].shape)

    net = dense_net(np.random.default_rng(16))
    x = _x(net, n=10)
    _, spikes = rt.run(net, x, record=True)
    np.testing.assert_array_equal(run_onnx(net, x, dtype=np.float64), spikes[-1])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"dtype": "int8"}, "dtype must be 'float32' or 'float64'"),
    ({"opset": 11}, "opset must be an int >= 13"),
    ({"batch": 0}, "batch must be 'dynamic' or a positive int"),
    ({"input_shape": (15,)}, r"input shape \(15,\): layer 0 \(Affine\)"),
])
def test_bad_options_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ONNXExportError, match=message):
        build_model(dense_net(np.random.default_rng(17)), **kwargs)


def test_unknown_input_shape_is_refused() -> None:
    net = rt.SpikingNetwork([rt.Affine(np.ones((2, 3)), np.zeros(2)), rt.Threshold(0.5)])
    with pytest.raises(ONNXExportError, match="pass input_shape"):
        build_model(net)
    assert build_model(net, input_shape=(3,)) is not None


# ------------------------------------------------------------------------------ engine

def test_sessions_are_cached_per_network_and_rebuilt_when_it_changes() -> None:
    net = dense_net(np.random.default_rng(18))
    first = session(net, (16,), dtype=np.float32)
    assert session(net, (16,), dtype=np.float32) is first
    assert session(net, (16,), dtype=np.float64) is not first
    x = _x(net, n=20)
    before = run_onnx(net, x, dtype=np.float64)
    net.layers[-1] = rt.Decode(1.0 - net.layers[-1].key)  # a new layer: a new model
    assert session(net, (16,), dtype=np.float32) is not first
    np.testing.assert_array_equal(run_onnx(net, x, dtype=np.float64), -before)
    from whetstone.export.onnx import engine

    key = id(net)
    assert key in engine._ENTRIES
    del net
    gc.collect()
    assert key not in engine._ENTRIES


def test_batches_and_threads() -> None:
    net = conv_net(np.random.default_rng(19))
    x = _x(net, n=37)
    want = rt.run(net, x)
    np.testing.assert_array_equal(run_onnx(net, x, dtype=np.float64, batch_size=8, threads=1),
                                  want)
    np.testing.assert_array_equal(run_onnx(net, x[:1], dtype=np.float64), want[:1])


def test_im2col_memory_bounds_the_samples_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A float64 convolution is an im2col in the graph: the model records its bytes per
    sample and run_onnx splits a batch so that one call stays within WORKSPACE_BYTES."""
    from whetstone.export.onnx import engine

    net = conv_net(np.random.default_rng(24))
    props = {p.key: p.value for p in build_model(net, dtype="float64").metadata_props}
    per_sample = int(props["whetstone_im2col_bytes_per_sample"])
    assert per_sample == 6 * 2 * 2 * 7 * 11 * 8  # Cin kh kw Ho Wo: the grouped 2x2 conv
    assert build_model(net).metadata_props[-1].value == "0"  # float32: Conv, no im2col
    monkeypatch.setattr(engine, "WORKSPACE_BYTES", 3 * per_sample)
    calls = []
    real_run = ort.InferenceSession.run
    monkeypatch.setattr(ort.InferenceSession, "run",
                        lambda self, *a, **k: calls.append(1) or real_run(self, *a, **k))
    x = _x(net, n=10)
    np.testing.assert_array_equal(run_onnx(net, x, dtype=np.float64), rt.run(net, x))
    assert len(calls) == 4  # 3 + 3 + 3 + 1 samples


def test_registered_as_the_onnxruntime_engine() -> None:
    from whetstone.runtime import simulate

    assert "onnxruntime" in simulate.ENGINES  # imported on first use
    net = graph_net(np.random.default_rng(20))
    x = _x(net, n=30)
    want = rt.run(net, x)
    np.testing.assert_array_equal(rt.run(net, x, engine="onnxruntime", dtype=np.float64), want)
    inet = to_integer(net, 8)
    pixels = np.random.default_rng(21).integers(0, 256, (30, 2, 6, 6), dtype=np.uint8)
    np.testing.assert_array_equal(rt.run(inet, pixels, engine="onnxruntime"),
                                  rt.run(inet, pixels))


# --------------------------------------------------------------------------------- CLI

def _run_folder(tmp: Path) -> Path:
    """A run folder as ``train`` leaves it (config.json, model.safetensors), untrained, every
    layer at sharpness 1."""
    from whetstone.presets import build_model as build_torch_model
    from whetstone.presets import get_preset
    from whetstone.runs.io import save_weights

    folder = tmp / "run"
    folder.mkdir()
    config = get_preset("mnist-dense").merged({
        "model": {"arch": "dense", "hidden": [16]},
        "key": {"classes": 10, "width": 20, "overlapping": True}, "epochs": 1,
        "finetune_epochs": 0})
    config.save(folder / "config.json")
    torch.manual_seed(0)
    model = build_torch_model(config)
    set_model_sharpness(model, 1.0)
    save_weights(model, folder / "model.safetensors")
    return folder


def test_cli_exports_onnx_that_onnxruntime_runs(tmp_path: Path, capsys) -> None:
    from whetstone.cli.main import main

    run = _run_folder(tmp_path)
    out = tmp_path / "m.onnx"
    assert main(["export", str(run), "--onnx", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["onnx"] == str(out) and result["network"] == "float"
    assert result["input"]["type"] == "float32" and result["output"]["readout"] == "decode"
    net = rt.SpikingNetwork.load(run / "spiking.npz")
    x = np.random.default_rng(22).integers(0, 256, (50, 1, 28, 28)) / np.float32(255)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (logits,) = sess.run(None, {"input": x.astype(np.float32)})
    want = rt.run(net, x)
    assert (logits.argmax(1) == want.argmax(1)).mean() > 0.95

    integer = tmp_path / "int8.onnx"
    assert main(["export", str(run), "--onnx", str(integer), "--bits", "8"]) == 0
    assert "integer network, 8-bit weights" in capsys.readouterr().out
    sess = ort.InferenceSession(str(integer), providers=["CPUExecutionProvider"])
    pixels = (x * 255).round().astype(np.uint8)
    (logits,) = sess.run(None, {"input": pixels})
    np.testing.assert_array_equal(logits, rt.run(to_integer(net, 8), pixels))


@pytest.mark.parametrize(("extra", "message"), [
    ([], "one of the arguments --nir --onnx is required"),
    (["--nir", "a.nir", "--onnx", "a.onnx"], "argument --onnx: not allowed with argument --nir"),
    (["--nir", "a.nir", "--bits", "8"], "--bits is an option of --onnx"),
    (["--onnx", "a.onnx", "--target", "norse"], "--target is an option of --nir"),
    (["--onnx", "a.onnx", "--bits", "8", "--dtype", "float64"], "--dtype sets a float"),
    (["--onnx", "a.onnx", "--bits", "20"], "--bits 20: an integer network has 2 to 16"),
])
def test_cli_export_refusals_name_the_option(tmp_path: Path, capsys, extra: list[str],
                                             message: str, monkeypatch) -> None:
    from whetstone.cli.main import main

    run = _run_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["export", str(run), *extra])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err)
    assert not (tmp_path / "a.onnx").exists() and not (tmp_path / "a.nir").exists()
