"""Acceptance 1 of issue 14 (graphs): a nested, non-Sequential model with a residual block
and a concatenation of two branches' spike maps, converted with an example input, computes
exactly what the torch model computes (float64, every logit and every spike) on real MNIST
test digits; its file round-trips; a residual graph (no concatenation) exports to NIR and
reads back with the same predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import whetstone.runtime as rt
from whetstone.conversion import to_spiking
from whetstone.nn import SoftmaxDecode, SpikingBReLU, key_generator
from whetstone.sharpening import sharpenable_layers
from whetstone.sharpening.allocation import set_model_sharpness

DIGITS = 96


class Residual(nn.Module):
    """``act(BN(conv(act(BN(conv(x))))) + x)``: the sum feeds the second activation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = SpikingBReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act2 = SpikingBReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(y)) + x)


class Branchy(nn.Module):
    """stem (conv, BN, act, OR-pool) -> [residual block | 1x1 side branch] concatenated ->
    pooling -> flatten -> linear -> act -> decode. Input (N, 1, 28, 28)."""

    def __init__(self, concat: bool = True, pool: str = "adaptive") -> None:
        super().__init__()
        self.concat = concat
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 5), nn.BatchNorm2d(8), SpikingBReLU(),
                                  nn.MaxPool2d(3))  # 24x24 -> 8x8 spikes
        self.block = Residual(8)
        self.side = nn.Sequential(nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4), SpikingBReLU())
        self.pool = {"adaptive": nn.AdaptiveAvgPool2d(1), "avg": nn.AvgPool2d(2),
                     "or": nn.MaxPool2d(2)}[pool]
        width = (12 if concat else 8) * (1 if pool == "adaptive" else 16)
        self.fc = nn.Linear(width, 40)
        self.act = SpikingBReLU()
        self.decode = SoftmaxDecode(key_generator(10, 40, overlapping=False, seed=3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        h = self.block(s)
        if self.concat:
            h = torch.cat([h, self.side(s)], dim=1)
        h = self.pool(h)
        h = h.view(h.size(0), -1) if self.concat else torch.flatten(h, 1)
        return self.decode(self.act(self.fc(h)))


def calibrated(model: nn.Module, x: torch.Tensor, seed: int) -> nn.Module:
    """Random weights, BatchNorm statistics of ``x`` (one pass in training mode, cumulative
    average) and shifts around the threshold, and the last Linear standardised on ``x`` (its
    outputs centred on the threshold with unit spread), so that every layer fires for some
    inputs and not for others; then sharpness 1, eval mode, float64."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None
            m.bias.data.uniform_(0.2, 0.8)
    set_model_sharpness(model, 1.0)
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    seen: list[torch.Tensor] = []
    handle = model.fc.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        model(x)
        handle.remove()
        mean, std = seen[0].mean(0), seen[0].std(0) + 1e-3
        model.fc.weight.data /= std[:, None]
        model.fc.bias.data = (model.fc.bias.data - mean) / std + 0.5
    return model.double()


@pytest.fixture(scope="module")
def digits(mnist_ready: str) -> torch.Tensor:
    from whetstone.runs import load_split

    return load_split("mnist", "test", limit=DIGITS).x.double()


def torch_spikes(model: nn.Module, net: rt.SpikingNetwork, x: torch.Tensor
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
    """The torch model's logits and, for every Threshold of ``net`` (in layer order), the
    output of the module it came from (``metadata["origin"]``)."""
    origins = [net.metadata["origin"][i] for i, layer in enumerate(net.layers)
               if isinstance(layer, rt.Threshold)]
    outputs: dict[str, np.ndarray] = {}
    handles = [module.register_forward_hook(
        lambda _m, _i, out, name=name: outputs.__setitem__(name, out.detach().numpy()))
        for name, module in model.named_modules() if name in origins]
    try:
        with torch.no_grad():
            logits = model(x).numpy()
    finally:
        for handle in handles:
            handle.remove()
    return logits, [outputs[name] for name in origins]


def test_branchy_graph_matches_torch_exactly_on_mnist(digits: torch.Tensor, tmp_path: Path
                                                      ) -> None:
    model = calibrated(Branchy(), digits.float(), seed=0)
    assert all(layer.sharpness == 1.0 for layer in sharpenable_layers(model))
    net = to_spiking(model, digits[:4])
    assert not net.is_chain and net.readout == "decode" and net.num_classes == 10
    assert net.input_shape == (1, 28, 28)
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("Add") == 1 and kinds.count("Concat") == 1
    assert kinds.count("Threshold") == net.spiking_layers == 6
    origin = net.metadata["origin"]
    add = kinds.index("Add")
    assert origin[add - 1] == "block.conv2+block.bn2"  # BN folded into the conv before it
    assert net.layers[add + 1].kind == "Threshold" and origin[add + 1] == "block.act2"

    x = digits.numpy()
    logits, spikes = rt.run(net, x, record=True, dtype=np.float64)
    t_logits, t_spikes = torch_spikes(model, net, digits)
    np.testing.assert_array_equal(logits, t_logits)
    assert len(spikes) == len(t_spikes) == 6
    for i, (ours, theirs) in enumerate(zip(spikes, t_spikes, strict=True)):
        assert ours.shape == theirs.shape, i
        np.testing.assert_array_equal(ours, theirs.astype(bool), err_msg=f"threshold {i}")
        assert 0.02 < ours.mean() < 0.98, f"threshold {i} fires {ours.mean():.3f}"
    assert len(np.unique(logits.argmax(1))) >= 3

    net.save(tmp_path / "branchy.npz")
    back = rt.SpikingNetwork.load(tmp_path / "branchy.npz")
    assert back.inputs == net.inputs and back.metadata == net.metadata
    out_back, spikes_back = rt.run(back, x, record=True)
    np.testing.assert_array_equal(out_back, logits)
    for a, b in zip(spikes_back, spikes, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(rt.predict(back, x), t_logits.argmax(1))


def test_residual_graph_exports_to_nir_and_reads_back(digits: torch.Tensor, tmp_path: Path
                                                      ) -> None:
    pytest.importorskip("nir", reason="the 'nir' package (extra 'nir') is not installed")
    from whetstone.export import NIRExportError, from_nir, to_nir

    model = calibrated(Branchy(concat=False, pool="avg"), digits.float(), seed=1)
    net = to_spiking(model, digits[:4])
    assert "Add" in [layer.kind for layer in net.layers]
    x = digits.numpy()
    want = rt.run(net, x)
    np.testing.assert_array_equal(want, model(digits).detach().numpy())
    for neuron in ("threshold", "if"):
        path = tmp_path / f"residual_{neuron}.nir"
        to_nir(net, path, neuron=neuron)
        back = from_nir(path)
        assert not back.is_chain
        np.testing.assert_array_equal(rt.predict(back, x), want.argmax(1))
        np.testing.assert_array_equal(rt.run(back, x), want)

    with_concat = to_spiking(calibrated(Branchy(), digits.float(), seed=2), digits[:4])
    concat = [layer.kind for layer in with_concat.layers].index("Concat")
    with pytest.raises(NIRExportError, match=rf"layer {concat} \(Concat of layers"):
        to_nir(with_concat, tmp_path / "concat.nir")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_residual_graph_runs_in_norse_as_in_whetstone(digits: torch.Tensor, tmp_path: Path
                                                      ) -> None:
    """Norse's NIR importer sums the edges arriving at a node too: the residual graph gives
    whetstone's float32 logits on every digit. (OR-pooling: Norse's importer maps no
    AvgPool2d, chain or graph.)"""
    pytest.importorskip("nir", reason="the 'nir' package (extra 'nir') is not installed")
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "interop"))
    try:
        from interop_runners import RUNNERS, ImporterMissing
    finally:
        sys.path.pop(0)
    from whetstone.export import to_nir

    net = to_spiking(calibrated(Branchy(concat=False, pool="or"), digits.float(), seed=1),
                     digits[:4])
    assert "Add" in [layer.kind for layer in net.layers]
    to_nir(net, tmp_path / "residual.nir", target="norse")
    try:
        run = RUNNERS["norse"](tmp_path / "residual.nir")
    except ImporterMissing as exc:
        pytest.skip(str(exc))
    x = digits.float().numpy()
    out = run(x)
    np.testing.assert_array_equal(out, rt.run(net, x, dtype=np.float32))
    np.testing.assert_array_equal(out.argmax(1), rt.predict(net, x))
