"""NIR export of concatenations: a Concat read by Affine / Conv2d layers is written as one
weighted node per part (the weight's input slice, the bias on the first part), summed at
the next node; nested Concats expand; what cannot be split is refused naming the layer;
read back by whetstone's reader (and nir.read) with the runtime's classes; Norse refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import whetstone.runtime as rt
from whetstone.conversion import to_spiking
from whetstone.export import NIRExportError, from_nir, to_graph, to_nir
from whetstone.nn import SoftmaxDecode, SpikingBReLU, key_generator
from whetstone.sharpening.allocation import set_model_sharpness

nir = pytest.importorskip("nir", reason="the 'nir' package (extra 'nir') is not installed")


class CatNet(nn.Module):
    """``h = act(fc(x))``; branches ``a = act(fa(h))``, ``b = act(fb(h))``;
    ``c = cat([cat([a, b]), h])`` (nested, with a skip of ``h``); ``decode(act(fo(c)))``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.act = nn.Linear(12, 16), SpikingBReLU()
        self.fa, self.act_a = nn.Linear(16, 10), SpikingBReLU()
        self.fb, self.act_b = nn.Linear(16, 6), SpikingBReLU()
        self.fo, self.act_o = nn.Linear(32, 12), SpikingBReLU()
        self.decode = SoftmaxDecode(key_generator(4, 12, overlapping=False, seed=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc(x))
        ab = torch.cat([self.act_a(self.fa(h)), self.act_b(self.fb(h))], dim=1)
        return self.decode(self.act_o(self.fo(torch.cat([ab, h], dim=1))))


def _centred(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Sharpness 1, and every Linear's bias shifted so its outputs' median on ``x`` is the
    threshold 0.5 (layer by layer, so every neuron fires for about half the inputs)."""
    set_model_sharpness(model, 1.0)
    model.eval()
    for layer in [m for m in model.modules() if isinstance(m, nn.Linear)]:
        seen: list[torch.Tensor] = []
        handle = layer.register_forward_hook(lambda _m, _i, out, seen=seen: seen.append(out))
        with torch.no_grad():
            model(x)
            handle.remove()
            layer.bias += 0.5 - seen[0].median(0).values
    return model


def _converted() -> tuple[rt.SpikingNetwork, np.ndarray]:
    """The converted CatNet (float64) and a batch on which it equals torch exactly."""
    torch.manual_seed(0)
    x = torch.rand(256, 12, dtype=torch.float64) * 2
    model = _centred(CatNet().double(), x[:128])  # centred on one half (ties at 0.5 there),
    x = x[128:]  # evaluated on the other
    net = to_spiking(model, x[:4])
    with torch.no_grad():
        np.testing.assert_array_equal(rt.run(net, x.numpy(), dtype=np.float64),
                                      model(x).numpy())
    assert len(np.unique(rt.predict(net, x.numpy()))) >= 3
    return net, x.numpy()


def test_a_converted_concatenation_exports_as_split_weights_and_reads_back(tmp_path: Path
                                                                           ) -> None:
    net, x = _converted()
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("Concat") == 2
    reader = kinds.index("Affine", max(i for i, k in enumerate(kinds) if k == "Concat"))
    graph = to_graph(net, neuron="threshold")
    parts = sorted(n for n in graph.nodes if n.startswith(f"{reader}_affine_"))
    assert parts == [f"{reader}_affine_{m}" for m in range(3)]  # a, b, h: nested expanded
    assert not any("concat" in n for n in graph.nodes)
    weight = net.layers[reader].weight
    np.testing.assert_array_equal(np.hstack([graph.nodes[p].weight for p in parts]), weight)
    np.testing.assert_array_equal(graph.nodes[parts[0]].bias, net.layers[reader].bias)
    assert not graph.nodes[parts[1]].bias.any() and not graph.nodes[parts[2]].bias.any()
    into = sorted(a for a, b in graph.edges if b == f"{reader + 1}_threshold")
    assert into == parts  # NIR sums the parts at the next neuron

    want = rt.run(net, x)
    for neuron in ("threshold", "if"):
        path = tmp_path / f"cat_{neuron}.nir"
        to_nir(net, path, neuron=neuron)
        back = from_nir(path)
        assert "Concat" not in [layer.kind for layer in back.layers]
        np.testing.assert_array_equal(rt.predict(back, x), want.argmax(1))
        np.testing.assert_allclose(rt.run(back, x), want, rtol=0, atol=1e-9)
        read = nir.read(str(path))  # nir's own reader takes the file as written
        assert set(read.nodes) == set(to_graph(net, neuron=neuron).nodes)


def test_a_concatenation_read_by_a_convolution_splits_its_input_channels(tmp_path: Path
                                                                         ) -> None:
    rng = np.random.default_rng(0)

    def conv(cout: int, cin: int) -> rt.Conv2d:
        return rt.Conv2d(rng.normal(size=(cout, cin, 3, 3)) / 3, rng.normal(size=cout) * 0.2,
                         padding=(1, 1, 1, 1))

    net = rt.SpikingNetwork(
        [conv(3, 2), rt.Threshold(0.3), conv(2, 2), rt.Threshold(0.3), rt.Concat(),
         conv(4, 5), rt.Threshold(0.3), rt.Flatten(),
         rt.Affine(rng.normal(size=(5, 4 * 6 * 6)), np.zeros(5))],
        {"input_shape": [2, 6, 6]},
        [(-1,), (0,), (-1,), (2,), (1, 3), (4,), (5,), (6,), (7,)])
    x = rng.random((64, 2, 6, 6))
    graph = to_graph(net, neuron="threshold")
    assert [graph.nodes[f"5_conv2d_{m}"].weight.shape[1] for m in range(2)] == [3, 2]
    path = tmp_path / "conv_cat.nir"
    to_nir(net, path, neuron="threshold")
    back = from_nir(path)
    np.testing.assert_array_equal(rt.predict(back, x), rt.predict(net, x))
    np.testing.assert_allclose(rt.run(back, x), rt.run(net, x), rtol=0, atol=1e-9)


def test_concatenations_that_cannot_be_split_are_refused_naming_the_layer() -> None:
    t = rt.Threshold(0.5)
    shape = {"input_shape": [3]}
    cases = {
        r"layer 1 \(Concat of layers \[0, -1\]\).*but layer 2 \(Threshold\) reads it":
            ([t, rt.Concat(), rt.Threshold(1.0)], [(-1,), (0, -1), (1,)]),
        r"layer 1 \(Concat of layers \[0, -1\]\).*but layer 2 \(Decode\) reads it":
            ([t, rt.Concat(), rt.Decode(np.eye(2, 6))], [(-1,), (0, -1), (1,)]),
        r"layer 1 \(Concat of layers \[0, -1\]\).*network's output":
            ([t, rt.Concat()], [(-1,), (0, -1)]),
        r"layer 1 \(Concat of layers \[0, -1\]\).*readout":
            ([t, rt.Concat(), rt.Affine(np.ones((2, 6)), np.zeros(2))],
             [(-1,), (0, -1), (1,)]),
    }
    for message, (layers, inputs) in cases.items():
        with pytest.raises(NIRExportError, match=message):
            to_graph(rt.SpikingNetwork(layers, shape, inputs), neuron="threshold")


def test_norse_target_refuses_a_concatenation() -> None:
    """Norse 1.1.0 evaluates the split parts' sum wrong (measured: the imported module
    returns the wrong output), so its target refuses every Concat."""
    net, _ = _converted()
    with pytest.raises(NIRExportError, match=r"Concat of layers.*Norse.*use target 'generic'"):
        to_graph(net, target="norse")
