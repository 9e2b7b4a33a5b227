"""NIR export of readouts: autoencoder-like and policy-like networks export and read back with
equal outputs and the same readout; nearest upsampling and a mid-network reshape are refused
with an error naming the layer (NIR 1.0 has no node for them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import whetstone.runtime as rt
from whetstone.conversion import to_spiking
from whetstone.nn import SpikingBReLU
from whetstone.sharpening.allocation import set_model_sharpness

nir = pytest.importorskip("nir", reason="the 'nir' package (extra 'nir') is not installed")

from whetstone.export import (  # noqa: E402
    NEURON_FORMS,
    NIRExportError,
    from_graph,
    from_nir,
    nir_graph,
    to_graph,
    to_nir,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _sharp(model: nn.Sequential) -> nn.Sequential:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            gen = torch.Generator().manual_seed(0)
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.2)
    set_model_sharpness(model, 1.0)
    return model.eval()


def autoencoder_net(binary_output: bool = False, unflatten: bool = True) -> rt.SpikingNetwork:
    """Flatten, 64 -> 32, BReLU, 32 -> 8 + BN, BReLU (code), 8 -> 32, BReLU, 32 -> 64
    readout (or spikes), Unflatten(1, (1, 8, 8)); input (1, 8, 8)."""
    torch.manual_seed(0)
    layers: list[nn.Module] = [
        nn.Flatten(), nn.Linear(64, 32), SpikingBReLU(), nn.Linear(32, 8), nn.BatchNorm1d(8),
        SpikingBReLU(), nn.Linear(8, 32), SpikingBReLU(), nn.Linear(32, 64)]
    if binary_output:
        layers.append(SpikingBReLU())
    if unflatten:
        layers.append(nn.Unflatten(1, (1, 8, 8)))
    model = nn.Sequential(*layers)
    for m in model:
        if isinstance(m, nn.Linear):
            m.weight.data.mul_(3.0)
    return to_spiking(_sharp(model))


def policy_net() -> rt.SpikingNetwork:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 64), SpikingBReLU(), nn.Linear(64, 64), SpikingBReLU(),
                          nn.Linear(64, 2))
    model[0].weight.data.mul_(2.0)
    return to_spiking(_sharp(model))


def segmenter_net() -> rt.SpikingNetwork:
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), SpikingBReLU(), nn.MaxPool2d(2),
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(4, 4, 3, padding=1),
        SpikingBReLU(), nn.Conv2d(4, 11, 1))
    return to_spiking(_sharp(model))


NETS = {
    "autoencoder": (autoencoder_net, (1, 8, 8), "affine"),
    "autoencoder-flat": (lambda: autoencoder_net(unflatten=False), (1, 8, 8), "affine"),
    "autoencoder-binary": (lambda: autoencoder_net(binary_output=True), (1, 8, 8), "spikes"),
    "policy": (policy_net, (4,), "affine"),
}


def _inputs(name: str, shape: tuple[int, ...], n: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.random((n, *shape)) if name.startswith("auto") else rng.normal(size=(n, *shape))
    return x.astype(np.float32)


@pytest.mark.parametrize("neuron", NEURON_FORMS)
@pytest.mark.parametrize("which", sorted(NETS))
def test_readout_networks_round_trip(which: str, neuron: str, tmp_path: Path) -> None:
    build, shape, readout = NETS[which]
    net = build()
    assert net.readout == readout
    path = tmp_path / f"{which}_{neuron}.nir"
    graph = to_nir(net, path, neuron=neuron,
                   input_shape=shape if which.startswith("auto") else None)
    assert graph.metadata["readout"] == readout
    back = from_nir(path)
    assert [layer.kind for layer in back.layers] == [layer.kind for layer in net.layers]
    assert back.readout == readout and back.metadata == net.metadata
    x = _inputs(which, shape)
    out, spikes = rt.run(net, x, record=True)
    out2, spikes2 = rt.run(back, x, record=True)
    np.testing.assert_array_equal(out2, out)
    for a, b in zip(spikes, spikes2, strict=True):
        np.testing.assert_array_equal(a, b)
    assert 0.05 < np.mean(np.concatenate([s.reshape(-1) for s in spikes])) < 0.95
    if readout == "affine":
        np.testing.assert_array_equal(rt.predict(back, x), rt.predict(net, x))


def test_readout_node_is_marked_and_feeds_the_output() -> None:
    net = autoencoder_net()
    graph = to_graph(net, input_shape=(1, 8, 8))
    order = nir_graph._chain(graph)
    last = graph.nodes[order[-2]]
    assert order[-2] == f"{net.readout_index}_affine"
    assert type(last).__name__ == "Affine" and last.metadata["whetstone_readout"] == "affine"
    assert sum("whetstone_readout" in (graph.nodes[n].metadata or {}) for n in order) == 1
    # the trailing Unflatten has no node: the graph's output is the flat readout ...
    np.testing.assert_array_equal(graph.nodes["output"].output_type["output"], [64])
    assert json.loads(graph.metadata["whetstone_unflatten"]) == [[1, 8, 8]]
    # ... and from_graph restores it
    back = from_graph(graph)
    assert isinstance(back.layers[-1], rt.Unflatten) and back.layers[-1].sizes == (1, 8, 8)


def _nir_eval(graph: object, x: np.ndarray) -> np.ndarray:
    """A minimal float32 NIR evaluator (Affine, IF with r = 1, Flatten), one step from v = 0,
    ``z = 1[v > v_threshold]``: an importer's view of the graph."""
    h = torch.from_numpy(x.astype(np.float32))
    for name in nir_graph._chain(graph):
        node = graph.nodes[name]  # type: ignore[attr-defined]
        kind = type(node).__name__
        if kind == "Affine":
            h = F.linear(h, torch.from_numpy(np.asarray(node.weight, np.float32)),
                         torch.from_numpy(np.asarray(node.bias, np.float32)))
        elif kind == "IF":
            h = (h > torch.from_numpy(np.asarray(node.v_threshold, np.float32))).float()
        elif kind == "Flatten":
            h = h.reshape(len(h), -1)
    return h.numpy()


@pytest.mark.parametrize("which", ["autoencoder", "policy"])
def test_an_importer_computes_the_readout(which: str) -> None:
    """Evaluated with NIR's semantics in float32, the graph's output is the readout's real
    values (flat for the autoencoder) and the policy picks the same actions."""
    build, shape, _ = NETS[which]
    net = build()
    graph = to_graph(net, input_shape=shape)
    x = _inputs(which, shape, n=128)
    got = _nir_eval(graph, x)
    ours = rt.run(net, x)
    np.testing.assert_allclose(got, ours.reshape(len(x), -1), rtol=0, atol=1e-4)
    if which == "policy":
        np.testing.assert_array_equal(got.argmax(1), ours.argmax(1))


def test_upsampling_refused_naming_the_layer(tmp_path: Path) -> None:
    net = segmenter_net()
    assert net.readout == "conv2d"
    index = [layer.kind for layer in net.layers].index("Upsample2d")
    with pytest.raises(NIRExportError, match=f"layer {index} \\(Upsample2d, scale \\(2, 2\\)\\)"
                                             ": NIR 1.0 has no node for nearest-neighbour "
                                             "upsampling"):
        to_nir(net, tmp_path / "seg.nir", input_shape=(1, 8, 8))
    assert not (tmp_path / "seg.nir").exists()
    assert issubclass(NIRExportError, ValueError)


def test_unflatten_before_more_layers_refused() -> None:
    net = rt.SpikingNetwork([rt.Affine(np.ones((4, 2)), np.zeros(4)), rt.Threshold(0.5),
                             rt.Unflatten((1, 2, 2)), rt.Conv2d(np.ones((1, 1, 1, 1)),
                                                                 np.zeros(1))])
    with pytest.raises(NIRExportError, match=r"layer 2 \(Unflatten\(1, 2, 2\)\): NIR 1.0 has "
                                             r"no reshape node"):
        to_graph(net)


def test_conv_readout_without_upsampling_exports(tmp_path: Path) -> None:
    """A per-pixel 1x1-convolution readout is NIR's Conv2d: it round-trips."""
    rng = np.random.default_rng(4)
    net = rt.SpikingNetwork([
        rt.Conv2d(rng.normal(size=(3, 1, 3, 3)).astype(np.float32),
                  np.full(3, 0.3, np.float32), padding=1),
        rt.Threshold(0.5), rt.Conv2d(rng.normal(size=(5, 3, 1, 1)).astype(np.float32),
                                     np.zeros(5, np.float32))])
    graph = to_nir(net, tmp_path / "c.nir", input_shape=(1, 6, 6))
    assert graph.metadata["readout"] == "conv2d"
    back = from_nir(tmp_path / "c.nir")
    assert back.readout == "conv2d"
    x = rng.random((8, 1, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(rt.run(back, x), rt.run(net, x))
    np.testing.assert_array_equal(rt.predict(back, x), rt.predict(net, x))


def test_a_graph_whose_nodes_contradict_its_readout_is_refused() -> None:
    graph = to_graph(policy_net())
    graph.metadata["readout"] = "decode"
    with pytest.raises(ValueError, match="records readout 'decode' but its nodes end with "
                                         "readout 'affine'"):
        from_graph(graph)
