"""The residual preset (issue 14): ``arch = "resnet"`` is an ``nn.Module`` with residual sums,
not a chain; it converts through ``torch.fx`` to a graph network that computes exactly what
the model computes on real images, and its NIR export runs in Norse with the same classes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import whetstone.runtime as rt
from whetstone.conversion import to_spiking
from whetstone.nn import key_generator
from whetstone.presets import ConfigError, get_preset, recipes
from whetstone.presets.architectures import BasicBlock, ResNet, resnet
from whetstone.presets.build import build_model
from whetstone.sharpening import sharpenable_layers
from whetstone.sharpening.allocation import set_model_sharpness

IMAGES = 64


def test_preset_and_recipe_build_a_residual_graph() -> None:
    model = build_model(get_preset("cifar10-resnet"))
    assert isinstance(model, ResNet) and not isinstance(model, nn.Sequential)
    assert len(sharpenable_layers(model)) == 8  # stem, two per block, the output population
    assert [m.conv1.out_channels for m in model.modules() if isinstance(m, BasicBlock)] == [
        64, 128, 256]
    cpu = recipes.load("cifar10-resnet-cpu")
    assert cpu.model["widths"] == [16, 32, 64] and cpu.dataset == "cifar10"
    small = build_model(cpu)
    assert sum(p.numel() for p in small.parameters()) < 100_000
    assert small(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    deeper = get_preset("cifar10-resnet").merged({"model": {"arch": "resnet", "widths": [8, 16],
                                                            "blocks": [2, 3]}})
    blocks = [m for m in build_model(deeper).modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 5


@pytest.mark.parametrize(("model", "field", "message"), [
    ({"arch": "resnet", "widths": [8, 16], "blocks": [1, 1, 1]}, "model.blocks",
     "one block count per stage"),
    ({"arch": "resnet", "shortcut": "zero-pad"}, "model.shortcut", "unknown value"),
    ({"arch": "resnet", "widths": [8, 0, 8]}, "model.widths[1]", "integer >= 1"),
    ({"arch": "resnet", "width": [8]}, "model.width", "did you mean 'widths'"),
])
def test_schema_refuses_bad_resnet_settings(model: dict, field: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        get_preset("cifar10-resnet").merged({"model": model})
    assert exc.value.field == field


def _images(dataset: str) -> torch.Tensor:
    from whetstone.data import DatasetError
    from whetstone.runs import load_split

    try:
        return load_split(dataset, "test", limit=IMAGES).x
    except DatasetError as exc:
        pytest.skip(f"{dataset} is not available here: {exc}")


def calibrated(model: nn.Module, x: torch.Tensor, seed: int) -> nn.Module:
    """Random weights; BatchNorm statistics of ``x`` (one pass in training mode, cumulative
    average) with shifts around the threshold, so that every layer fires for some inputs and
    not for others; sharpness 1, eval mode."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None
            m.bias.data.uniform_(0.2, 0.8)
    set_model_sharpness(model, 1.0)
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


@pytest.mark.parametrize("dataset", ["cifar10", "mnist"])
@pytest.mark.parametrize("shortcut", ["identity", "projection"])
def test_resnet_converts_exactly_on_real_images(dataset: str, shortcut: str,
                                                request: pytest.FixtureRequest) -> None:
    if dataset == "mnist":
        request.getfixturevalue("mnist_ready")
    x = _images(dataset)
    torch.manual_seed(0)
    model = resnet(key_generator(10, 40, overlapping=False, seed=0), in_channels=x.shape[1],
                   image_size=x.shape[2], widths=(4, 8, 16), shortcut=shortcut)
    model = calibrated(model, x, seed=1)
    net = to_spiking(model, x[:1])
    kinds = [layer.kind for layer in net.layers]
    assert not net.is_chain and kinds.count("Add") == 3 and net.readout == "decode"
    assert kinds.count("Threshold") == 8
    assert kinds.count("Conv2d") == 7 + (2 if shortcut == "projection" else 0)
    ours = rt.run(net, x.numpy().astype(np.float64))
    with torch.no_grad():
        theirs = model.double()(x.double()).numpy()
    np.testing.assert_array_equal(ours, theirs)  # every decode logit, float64
    assert len(np.unique(ours.argmax(1))) >= 3, "not a classifier of these images"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_resnet_export_runs_in_norse_with_whetstones_classes(tmp_path: Path) -> None:
    """The identity-shortcut ResNet (the preset's) exported with ``target="norse"`` and read
    by ``norse.torch.from_nir``: the same class as whetstone's runtime on every real CIFAR-10
    test image (global sum pooling is a ``SumPool2d``, which Norse maps)."""
    nir = pytest.importorskip("nir", reason="the 'nir' package (extra 'nir') is not installed")
    norse_torch = pytest.importorskip("norse.torch", reason="norse is not installed")
    from whetstone.export import to_nir

    x = _images("cifar10")
    torch.manual_seed(0)
    model = calibrated(resnet(key_generator(10, 40, overlapping=False, seed=0),
                              widths=(4, 8, 16)), x, seed=1)
    net = to_spiking(model, x[:1])
    to_nir(net, tmp_path / "resnet.nir", target="norse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = norse_torch.from_nir(nir.read(tmp_path / "resnet.nir"))
        with torch.no_grad():
            out, _state = module(x.float())
    out = out.numpy()
    ours = rt.run(net, x.numpy(), dtype=np.float32)
    assert out.shape == ours.shape == (IMAGES, 10)
    np.testing.assert_array_equal(out.argmax(1), rt.predict(net, x.numpy()))
    # logits equal except where a float32 pre-activation rounds across a threshold
    assert (np.abs(out - ours).max(1) == 0).mean() >= 0.95
    assert len(np.unique(ours.argmax(1))) >= 3
