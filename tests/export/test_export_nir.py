"""NIR export: round trips, the ``>=`` vs ``>`` tie, batch-free shapes, keyword-built nodes.

A small reference evaluator of NIR semantics (float32, ``z = 1[v > v_threshold]``, one step
from ``v = 0``) stands in for an importer, so the tie behaviour is checked independently of
our own reader.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import whetstone.runtime as rt
from whetstone.conversion import to_spiking
from whetstone.nn import SoftmaxDecode, SpikingBReLU, SpikingSigmoid, key_generator
from whetstone.sharpening.allocation import set_model_sharpness

nir = pytest.importorskip("nir", reason="the 'nir' package (extra 'nir') is not installed")

from whetstone.export import (  # noqa: E402
    NEURON_FORMS,
    exported_threshold,
    from_graph,
    from_nir,
    nir_graph,
    to_graph,
    to_nir,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DENSE_IN = (1, 4, 4)
CONV_IN = (1, 8, 8)


def _sharp(model: nn.Sequential) -> nn.Sequential:
    set_model_sharpness(model, 1.0)
    return model.eval()


def dense_net() -> rt.SpikingNetwork:
    """Flatten -> 16x24 -> BReLU -> 24x12 -> sigmoid (theta 0) -> decode (3 classes)."""
    torch.manual_seed(1)
    model = _sharp(nn.Sequential(
        nn.Flatten(), nn.Linear(16, 24), SpikingBReLU(), nn.Linear(24, 12), SpikingSigmoid(),
        SoftmaxDecode(key_generator(3, 12, seed=0)),
    ))
    for m in model:
        if isinstance(m, nn.Linear):
            m.weight.data.mul_(3.0)
    return to_spiking(model)


def conv_net() -> rt.SpikingNetwork:
    """Conv -> BReLU -> MaxPool (OR) -> Conv -> BReLU -> AvgPool -> Flatten -> Linear -> BReLU
    -> decode (4 classes); input (1, 8, 8)."""
    torch.manual_seed(3)
    model = _sharp(nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), SpikingBReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1, groups=2), SpikingBReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(6 * 2 * 2, 20), SpikingBReLU(),
        SoftmaxDecode(key_generator(4, 20, seed=0)),
    ))
    for m in model:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            m.weight.data.mul_(3.0)
    return to_spiking(model)


NETS = {"dense": (dense_net, DENSE_IN), "conv": (conv_net, CONV_IN)}


def _inputs(shape: tuple[int, ...], n: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


def reference_run(graph: nir.NIRGraph, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Evaluate a chain NIR graph in float32 with NIR's own semantics (one step, v = 0,
    ``z = 1[v > v_threshold]``); batch dimension added here, shapes in the graph are
    batch-free. Returns the output and the spikes of every neuron node."""
    order = nir_graph._chain(graph)
    h = torch.from_numpy(np.asarray(x, dtype=np.float32))
    spikes = []
    for name in order:
        node = graph.nodes[name]
        kind = type(node).__name__
        if kind == "Affine":
            h = F.linear(h, torch.from_numpy(np.asarray(node.weight, np.float32)),
                         torch.from_numpy(np.asarray(node.bias, np.float32)))
        elif kind == "Conv2d":
            h = F.conv2d(h, torch.from_numpy(np.asarray(node.weight, np.float32)),
                         torch.from_numpy(np.asarray(node.bias, np.float32)),
                         stride=tuple(int(s) for s in node.stride),
                         padding=tuple(int(p) for p in node.padding),
                         dilation=tuple(int(d) for d in node.dilation), groups=int(node.groups))
        elif kind in ("SumPool2d", "AvgPool2d"):
            k = tuple(int(v) for v in node.kernel_size)
            h = F.avg_pool2d(h, k, tuple(int(v) for v in node.stride),
                             tuple(int(v) for v in node.padding))
            if kind == "SumPool2d":
                h = h * (k[0] * k[1])
        elif kind == "Flatten":
            # batch-free: flatten the whole sample (start_dim -ndim), never our batch
            assert node.start_dim == -len(node.input_type["input"]) and node.end_dim == -1
            h = h.reshape(len(h), -1)
        elif kind in ("IF", "LIF", "Threshold"):
            thr = node.threshold if kind == "Threshold" else node.v_threshold
            v = h if kind == "Threshold" else torch.from_numpy(np.asarray(node.r, np.float32)) * h
            h = (v > torch.tensor(np.asarray(thr, np.float32))).to(torch.float32)
            spikes.append(h.numpy().astype(bool))
    return h.numpy(), spikes


@pytest.mark.parametrize("neuron", NEURON_FORMS)
@pytest.mark.parametrize("which", sorted(NETS))
def test_round_trip_identical(which: str, neuron: str, tmp_path: Path) -> None:
    build, shape = NETS[which]
    net = build()
    path = tmp_path / f"{which}_{neuron}.nir"
    to_nir(net, path, neuron=neuron, input_shape=shape)
    back = from_nir(path)

    assert [layer.kind for layer in back.layers] == [layer.kind for layer in net.layers]
    assert back.metadata == net.metadata
    x = _inputs(shape)
    logits, spikes = rt.run(net, x, record=True)
    logits2, spikes2 = rt.run(back, x, record=True)
    np.testing.assert_array_equal(logits2, logits)
    np.testing.assert_array_equal(rt.predict(back, x), rt.predict(net, x))
    assert len(spikes2) == len(spikes)
    for a, b in zip(spikes, spikes2, strict=True):
        np.testing.assert_array_equal(a, b)
    # the test is not vacuous: neurons fire and stay silent, predictions differ
    assert 0.05 < np.mean(np.concatenate([s.reshape(-1) for s in spikes])) < 0.95
    assert len(np.unique(rt.predict(net, x))) > 1
    for old, new in zip(net.layers, back.layers, strict=True):
        for name, arr in old.arrays().items():
            np.testing.assert_array_equal(new.arrays()[name], arr)
        assert new.params() == old.params()


@pytest.mark.parametrize("neuron", NEURON_FORMS)
@pytest.mark.parametrize("which", sorted(NETS))
def test_nir_semantics_match_ours(which: str, neuron: str) -> None:
    """A float32 evaluator with NIR's ``>`` fires exactly where the runtime (float32) does."""
    build, shape = NETS[which]
    net = build()
    graph = to_graph(net, neuron=neuron, input_shape=shape)
    x = _inputs(shape, seed=3)
    logits, spikes = rt.run(net, x, record=True, dtype=np.float32)
    ref_logits, ref_spikes = reference_run(graph, x)
    for a, b in zip(spikes, ref_spikes, strict=True):
        assert np.mean(a != b.reshape(a.shape)) == 0.0
    np.testing.assert_array_equal(ref_logits.argmax(1), logits.argmax(1))


def test_graph_structure_batch_free(tmp_path: Path) -> None:
    net = conv_net()
    to_nir(net, tmp_path / "g.nir", neuron="if", input_shape=CONV_IN)
    graph = nir.read(tmp_path / "g.nir")
    order = nir_graph._chain(graph)
    kinds = [type(graph.nodes[n]).__name__ for n in order]
    assert kinds == ["Input", "Conv2d", "IF", "SumPool2d", "IF", "Conv2d", "IF", "AvgPool2d",
                     "Flatten", "Affine", "IF", "Affine", "Output"]
    assert list(graph.nodes["input"].input_type["input"]) == list(CONV_IN)
    assert list(graph.nodes["output"].output_type["output"]) == [4]
    flatten = graph.nodes[order[8]]
    assert flatten.start_dim == -3 and flatten.end_dim == -1  # batch-safe in torch
    assert list(flatten.input_type["input"]) == [6, 2, 2]
    neurons = [graph.nodes[n] for n, k in zip(order, kinds, strict=True) if k == "IF"]
    assert [n.v_threshold.shape for n in neurons] == [(4, 8, 8), (4, 4, 4), (6, 4, 4), (20,)]
    for node in neurons:
        assert node.v_threshold.dtype == np.float32
        assert np.all(node.v_threshold == np.nextafter(np.float32(0.5), np.float32(0)))
        assert np.all(node.r == 1) and np.all(node.v_reset == 0)
    decode = graph.nodes[order[11]]
    key = net.layers[-1].key
    np.testing.assert_array_equal(decode.weight, 4 * key - 2)
    np.testing.assert_array_equal(decode.bias, -(2 * key - 1).sum(1))
    meta = graph.metadata
    assert meta["format"] == "whetstone-nir" and int(meta["time_steps"]) == 1
    assert meta["neuron"] == "if" and ">=" in meta["threshold_convention"]
    np.testing.assert_array_equal(meta["class_key"], key)


@pytest.mark.parametrize("target", ["generic", "snntorch", "norse"])
def test_lif_form_has_zero_leak_and_unit_input_scale(target: str) -> None:
    graph = to_graph(dense_net(), neuron="lif", target=target)
    dt = graph.metadata["dt"]
    assert dt == {"generic": 1.0, "snntorch": 1e-4, "norse": 1e-3}[target]
    lifs = [n for n in graph.nodes.values() if isinstance(n, nir.LIF)]
    assert len(lifs) == 2
    for node in lifs:
        # one Euler step of dt from v = 0: beta = 1 - dt / tau = 0, input scale r dt / tau = 1
        assert np.all(1 - dt / node.tau.astype(np.float64) < 1e-7)
        assert np.all(np.abs(node.r * dt / node.tau.astype(np.float64) - 1) < 1e-7)
        assert np.all(node.v_leak == 0)


@pytest.mark.parametrize("neuron", NEURON_FORMS)
@pytest.mark.parametrize("theta", [0.5, 0.0, 0.1, -0.25])
def test_tie_at_threshold_fires(theta: float, neuron: str, tmp_path: Path) -> None:
    """A neuron sitting exactly on its threshold fires (ours: ``>=``) in the runtime, under
    NIR's ``>`` with the exported threshold, and after the round trip; one ulp below does
    not."""
    net = rt.SpikingNetwork([rt.Affine(np.eye(1), np.zeros(1)), rt.Threshold(theta)])
    t32 = np.float32(theta)
    x = np.array([[t32], [np.nextafter(t32, np.float32(-np.inf))],
                  [np.nextafter(t32, np.float32(np.inf))]], dtype=np.float32)
    want = np.array([[True], [False], [True]])
    if float(t32) == theta:  # representable: the runtime sees the tie too
        np.testing.assert_array_equal(rt.run(net, x, record=True)[1][0], want)

    thr = exported_threshold(theta)
    assert thr.dtype == np.float32 and thr < t32
    np.testing.assert_array_equal(x > thr, want)  # NIR's ">" on the exported threshold

    path = tmp_path / "tie.nir"
    graph = to_nir(net, path, neuron=neuron, input_shape=(1,))
    np.testing.assert_array_equal(reference_run(graph, x)[1][0], want)
    back = from_nir(path)
    assert back.layers[1].theta.dtype == net.layers[1].theta.dtype
    assert float(back.layers[1].theta) == theta  # exact, even for 0.1
    np.testing.assert_array_equal(rt.run(back, x, record=True)[1][0],
                                  rt.run(net, x, record=True)[1][0])


def test_threshold_restored_without_node_metadata() -> None:
    """Without the exact theta in the node metadata the threshold is
    ``nextafter(theta', +inf)``: ties still fire."""
    graph = to_graph(rt.SpikingNetwork([rt.Threshold(0.5)]), neuron="threshold",
                     input_shape=(3,))
    for node in graph.nodes.values():
        node.metadata = {}
    back = from_graph(graph)
    assert float(back.layers[0].theta) == 0.5
    x = np.array([[0.5, np.nextafter(np.float32(0.5), np.float32(0)), 1.0]], np.float32)
    np.testing.assert_array_equal(rt.run(back, x), [[1.0, 0.0, 1.0]])


def test_foreign_graph_uses_strict_greater() -> None:
    """A graph not written by whetstone keeps NIR's ``v > v_threshold``: a tie is silent."""
    graph = nir.NIRGraph(
        nodes={"in": nir.Input(input_type={"input": np.array([2])}),
               "w": nir.Affine(weight=np.eye(2, dtype=np.float32),
                               bias=np.zeros(2, dtype=np.float32)),
               "z": nir.IF(r=np.ones(2, np.float32), v_threshold=np.full(2, 0.5, np.float32),
                           v_reset=np.zeros(2, np.float32)),
               "out": nir.Output(output_type={"output": np.array([2])})},
        edges=[("in", "w"), ("w", "z"), ("z", "out")])
    net = from_graph(graph)
    np.testing.assert_array_equal(rt.run(net, np.array([[0.5, 0.6]])), [[0.0, 1.0]])


def test_input_shape_inferred_for_dense_and_required_for_conv() -> None:
    graph = to_graph(dense_net())
    assert list(graph.nodes["input"].input_type["input"]) == [16]
    with pytest.raises(ValueError, match="input_shape"):
        to_graph(conv_net())


def test_bad_neuron_and_asymmetric_padding_rejected() -> None:
    with pytest.raises(ValueError, match="neuron must be one of"):
        to_graph(dense_net(), neuron="lava")  # type: ignore[arg-type]
    net = rt.SpikingNetwork([rt.Conv2d(np.ones((1, 1, 2, 2)), np.zeros(1),
                                       padding=(0, 1, 0, 1)), rt.Threshold(0.5)])
    with pytest.raises(ValueError, match="asymmetric"):
        to_graph(net, input_shape=(1, 4, 4))


def test_nodes_built_with_keyword_arguments() -> None:
    """Every ``nir.X(...)`` / ``builder.nir.X(...)`` call of the exporter passes keyword
    arguments only."""
    from whetstone.export import writers

    def is_nir(value: ast.expr) -> bool:
        return (isinstance(value, ast.Name) and value.id == "nir") or (
            isinstance(value, ast.Attribute) and value.attr == "nir")

    calls = [node for module in (nir_graph, writers)
             for node in ast.walk(ast.parse(inspect.getsource(module)))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and is_nir(node.func.value) and node.func.attr[:1].isupper()]
    assert len(calls) >= 10
    for call in calls:
        assert not call.args, f"nir.{call.func.attr} built with positional arguments"
