"""NIR export of graph networks: edges instead of a chain, an Add as several edges into its
readers, Concat refused, and from_graph reading fan-in back as an Add."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import whetstone.runtime as rt
from whetstone.export import NIRExportError, from_graph, from_nir, to_graph, to_nir

nir = pytest.importorskip("nir", reason="the 'nir' package (extra 'nir') is not installed")


def residual(rng: np.random.Generator, out_add: bool = False) -> rt.SpikingNetwork:
    """x (8,) -> A0 -> T1 -> A2 -> Add(A2, T1) -> T4 -> A5 -> Add(A5, T4, T1) [-> T7 -> D8]."""
    layers: list[rt.Primitive] = [
        rt.Affine(rng.normal(size=(6, 8)), rng.normal(size=6) * 0.3), rt.Threshold(0.5),
        rt.Affine(rng.normal(size=(6, 6)), rng.normal(size=6) * 0.3), rt.Add(),
        rt.Threshold(0.5), rt.Affine(rng.normal(size=(6, 6)), np.zeros(6)), rt.Add()]
    inputs = [(-1,), (0,), (1,), (2, 1), (3,), (4,), (5, 4, 1)]
    if not out_add:
        layers += [rt.Threshold(1.5), rt.Decode((rng.random((3, 6)) < 0.5).astype(float))]
        inputs += [(6,), (7,)]
    return rt.SpikingNetwork(layers, {"input_shape": [8]}, inputs)


def _x(n: int = 200, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, 8)) * 2).astype(np.float32)


def test_add_is_several_edges_into_its_reader() -> None:
    graph = to_graph(residual(np.random.default_rng(0)), neuron="threshold")
    assert sorted(graph.nodes) == ["0_affine", "1_threshold", "2_affine", "4_threshold",
                                   "5_affine", "7_threshold", "8_decode", "input", "output"]
    into = {b: sorted(a for a, c in graph.edges if c == b) for b in graph.nodes}
    assert into["4_threshold"] == ["1_threshold", "2_affine"]
    assert into["7_threshold"] == ["1_threshold", "4_threshold", "5_affine"]
    assert into["2_affine"] == ["1_threshold"] and into["5_affine"] == ["4_threshold"]
    assert into["output"] == ["8_decode"]
    assert len(graph.edges) == 11


@pytest.mark.parametrize("neuron", ["threshold", "if", "lif"])
def test_residual_round_trip_is_exact(neuron: str, tmp_path: Path) -> None:
    net = residual(np.random.default_rng(1))
    x = _x()
    to_nir(net, tmp_path / "r.nir", neuron=neuron, target="norse" if neuron == "lif" else
           "generic")
    back = from_nir(tmp_path / "r.nir")
    assert [layer.kind for layer in back.layers] == [layer.kind for layer in net.layers]
    assert back.inputs == net.inputs and back.metadata == net.metadata
    out, spikes = rt.run(back, x, record=True)
    want, want_spikes = rt.run(net, x, record=True)
    np.testing.assert_array_equal(out, want)
    for a, b in zip(spikes, want_spikes, strict=True):
        np.testing.assert_array_equal(a, b)
    assert 0 < spikes[2].mean() < 1  # the three-term sum decides something


def test_a_sum_as_the_output(tmp_path: Path) -> None:
    net = residual(np.random.default_rng(2), out_add=True)
    assert net.readout == "add"
    graph = to_graph(net, neuron="if")
    assert sorted(a for a, b in graph.edges if b == "output") == \
        ["1_if", "4_if", "5_affine"]
    back = from_graph(graph)
    assert back.readout == "add" and back.inputs == net.inputs
    np.testing.assert_array_equal(rt.run(back, _x()), rt.run(net, _x()))


def test_graph_for_a_pool_as_conv_target_and_a_trailing_unflatten() -> None:
    """SpikingJelly's target writes sum pooling as a Conv2d; it refuses graphs (not verified
    in SpikingJelly), so the residual form goes to 'generic' and the chain to SpikingJelly's
    target, each read back exactly."""
    rng = np.random.default_rng(3)
    layers = [rt.Conv2d(rng.normal(size=(2, 1, 3, 3)), np.zeros(2), padding=1),
              rt.Threshold(0.5), rt.Conv2d(rng.normal(size=(2, 2, 1, 1)), np.zeros(2)),
              rt.Add(), rt.Threshold(0.5), rt.SumPool2d(2, 2), rt.Threshold(0.5),
              rt.Flatten(), rt.Affine(rng.normal(size=(4, 8)), np.zeros(4)),
              rt.Unflatten((1, 2, 2))]
    inputs = [(-1,), (0,), (1,), (2, 1), (3,), (4,), (5,), (6,), (7,), (8,)]
    net = rt.SpikingNetwork(layers, {"input_shape": [1, 4, 4]}, inputs)
    with pytest.raises(NIRExportError, match="target 'spikingjelly': graph networks"):
        to_graph(net, target="spikingjelly")
    chain = rt.SpikingNetwork(layers[:2] + layers[4:], {"input_shape": [1, 4, 4]})
    x = np.random.default_rng(4).random((30, 1, 4, 4)).astype(np.float32) * 2
    for network, target in ((net, "generic"), (chain, "spikingjelly")):
        graph = to_graph(network, target=target)
        back = from_graph(graph)
        assert back.inputs == network.inputs and isinstance(back.layers[-1], rt.Unflatten)
        np.testing.assert_array_equal(rt.run(back, x), rt.run(network, x))
    assert type(to_graph(chain, target="spikingjelly").nodes["3_sumpool2d"]).__name__ == \
        "Conv2d"


def test_refused_graphs_name_the_layer() -> None:
    twice = rt.SpikingNetwork([rt.Threshold(0.5), rt.Add(), rt.Threshold(1.5)],
                              {"input_shape": [3]}, [(-1,), (0, 0), (1,)])
    with pytest.raises(NIRExportError, match=r"layer 2 \(Threshold\): reads the sum of "
                                             r"\['0_if', '0_if'\]"):
        to_graph(twice)
    cat = rt.SpikingNetwork([rt.Threshold(0.5), rt.Concat(), rt.Flatten()],
                            {"input_shape": [3]}, [(-1,), (0, -1), (1,)])
    with pytest.raises(NIRExportError, match=r"layer 1 \(Concat of layers \[0, -1\]\): NIR "
                                             "1.0 has no concatenation node"):
        to_graph(cat)


def _node(kind: str) -> object:
    two = np.array([2])
    return {"in": nir.Input(input_type={"input": two}),
            "out": nir.Output(output_type={"output": two}),
            "id": nir.Affine(weight=np.eye(2, dtype=np.float32), bias=np.zeros(2, np.float32)),
            "z": nir.Threshold(threshold=np.full(2, 0.5, np.float32))}[kind]


def test_foreign_fan_in_reads_as_a_sum() -> None:
    """A graph not written by whetstone: a node with two incoming edges reads their sum."""
    graph = nir.NIRGraph(
        nodes={"in": _node("in"), "a": _node("id"), "b": _node("id"), "z": _node("z"),
               "out": _node("out")},
        edges=[("in", "a"), ("in", "b"), ("a", "z"), ("b", "z"), ("z", "out")])
    net = from_graph(graph)
    assert [layer.kind for layer in net.layers] == ["Affine", "Affine", "Add", "Threshold"]
    x = np.array([[0.25, 0.2], [0.3, 0.0]])  # 2x > 0.5 strictly (NIR's rule for foreign files)
    np.testing.assert_array_equal(rt.run(net, x), [[0.0, 0.0], [1.0, 0.0]])


@pytest.mark.parametrize(("nodes", "edges", "match"), [
    (("in", "id", "out"), [("in", "id"), ("id", "out"), ("id", "id")], "cycle"),
    (("in", "id", "out"), [("in", "id"), ("id", "out"), ("in", "nope")],
     "names a node the graph does not have"),
    (("in", "id", "out"), [("in", "out")], r"node 'id' \(Affine\): no incoming edge"),
    (("in", "id", "out"), [("in", "id"), ("in", "id"), ("id", "out")], "appears twice"),
])
def test_malformed_graphs_are_refused(nodes, edges, match) -> None:
    graph = nir.NIRGraph(nodes={k: _node(k) for k in nodes}, edges=edges,
                         type_check=False)
    with pytest.raises(ValueError, match=match):
        from_graph(graph)
