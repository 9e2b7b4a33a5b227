"""Our NIR files in other simulators: Norse (``neuron="if"``) and snnTorch (``neuron="lif"``).

Each importer runs the graph for ONE time step from zero state and must predict the classes
the runtime predicts, on real MNIST (a quickly trained mnist-dense) and on a small converted
conv network, and must fire on a tie (input exactly on the threshold).

The importers map ``nir.Flatten(start_dim=0)`` literally to ``torch.nn.Flatten(0)``, which
would also flatten a batch dimension, so samples are fed one at a time, batch-free, as NIR
shapes are. A package that cannot be imported skips its tests with the import error.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import whetstone.runtime as rt
from whetstone.conversion import to_spiking

nir = pytest.importorskip("nir", reason="the 'nir' package (extra 'nir') is not installed")

from whetstone.export import to_nir  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]


def _try_import(name: str) -> tuple[Any, str]:
    try:
        return importlib.import_module(name), ""
    except Exception as exc:  # noqa: BLE001 - any import failure is the skip reason
        return None, f"{name} cannot be imported: {type(exc).__name__}: {exc}"


norse_torch, NORSE_ERROR = _try_import("norse.torch")
snn_import, SNNTORCH_ERROR = _try_import("snntorch.import_nir")


def _norse_module(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    if norse_torch is None:
        pytest.skip(NORSE_ERROR)
    module = norse_torch.from_nir(nir.read(path))

    def step(x: torch.Tensor) -> torch.Tensor:
        out = module(x)  # fresh zero state on every call (state=None)
        return out[0] if isinstance(out, tuple) else out
    return step


def _snntorch_module(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    if snn_import is None:
        pytest.skip(SNNTORCH_ERROR)
    import snntorch

    module = snn_import.import_from_nir(nir.read(path))
    neurons = [m for m in module.modules() if isinstance(m, snntorch.SpikingNeuron)]

    def step(x: torch.Tensor) -> torch.Tensor:
        for neuron in neurons:  # init_hidden=True keeps membranes between calls
            neuron.reset_mem()
        out = module(x)
        return out[0] if isinstance(out, tuple) else out
    return step


IMPORTERS = {"norse": ("if", _norse_module), "snntorch": ("lif", _snntorch_module)}


def _run_one_by_one(step: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray) -> np.ndarray:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.stack([step(torch.from_numpy(np.ascontiguousarray(xi))).numpy() for xi in x])


@pytest.fixture(scope="module")
def mnist_net(tiny_dense_run) -> tuple[rt.SpikingNetwork, np.ndarray]:
    """The tiny mnist-dense run (tests/conftest.py), converted, and 256 test images."""
    from whetstone.data import load, to_float
    from whetstone.runs import load_run

    net = to_spiking(load_run(tiny_dense_run).model)
    images, _ = load("mnist", "test")
    return net, to_float(images[:256]).numpy()


@pytest.mark.parametrize("importer", sorted(IMPORTERS))
def test_mnist_dense_predictions_match(importer: str, mnist_net: Any, tmp_path: Path) -> None:
    net, x = mnist_net
    neuron, load = IMPORTERS[importer]
    path = tmp_path / f"mnist_{neuron}.nir"
    to_nir(net, path, neuron=neuron, input_shape=(1, 28, 28), target=importer)
    logits = _run_one_by_one(load(path), x)
    ours = rt.run(net, x)
    assert logits.shape == ours.shape == (256, 10)
    np.testing.assert_array_equal(logits.argmax(1), ours.argmax(1))
    # logits are integers (W - 2 hamming): equal unless a float32 rounding flips a spike
    assert np.mean(np.all(logits == ours, axis=1)) >= 0.99
    assert len(np.unique(ours.argmax(1))) >= 5  # a real, non-constant classifier


def _conv_net() -> rt.SpikingNetwork:
    from torch import nn

    from whetstone.nn import SoftmaxDecode, SpikingBReLU, key_generator
    from whetstone.sharpening.allocation import set_model_sharpness

    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), SpikingBReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), SpikingBReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(6 * 2 * 2, 20), SpikingBReLU(),
        SoftmaxDecode(key_generator(4, 20, seed=0)))
    for m in model:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            m.weight.data.mul_(3.0)
    set_model_sharpness(model, 1.0)
    return to_spiking(model.eval())


@pytest.mark.parametrize("importer", sorted(IMPORTERS))
def test_conv_predictions_match(importer: str, tmp_path: Path) -> None:
    """Conv2d, OR-pool (SumPool2d + neuron) and Flatten(start_dim=0) through the importer."""
    net = _conv_net()
    neuron, load = IMPORTERS[importer]
    path = tmp_path / f"conv_{neuron}.nir"
    to_nir(net, path, neuron=neuron, input_shape=(1, 8, 8), target=importer)
    x = np.random.default_rng(0).random((64, 1, 8, 8)).astype(np.float32)
    logits = _run_one_by_one(load(path), x)
    ours = rt.run(net, x)
    assert len(np.unique(ours.argmax(1))) > 1
    np.testing.assert_array_equal(logits.argmax(1), ours.argmax(1))
    np.testing.assert_array_equal(logits, ours)


@pytest.mark.parametrize("theta", [0.5, 0.0])
@pytest.mark.parametrize("importer", sorted(IMPORTERS))
def test_tie_fires_in_importer(importer: str, theta: float, tmp_path: Path) -> None:
    """Input exactly on the threshold fires (whetstone's ``>=``); one float32 ulp below does
    not; one above does."""
    net = rt.SpikingNetwork([rt.Affine(np.eye(3, dtype=np.float32), np.zeros(3, np.float32)),
                             rt.Threshold(theta)])
    neuron, load = IMPORTERS[importer]
    path = tmp_path / f"tie_{neuron}.nir"
    to_nir(net, path, neuron=neuron, target=importer)
    t = np.float32(theta)
    x = np.array([[t, np.nextafter(t, np.float32(-1)), np.nextafter(t, np.float32(1))]],
                 dtype=np.float32)
    spikes = _run_one_by_one(load(path), x)
    np.testing.assert_array_equal(spikes, [[1.0, 0.0, 1.0]])
    np.testing.assert_array_equal(rt.run(net, x), spikes)


@pytest.mark.parametrize("importer", sorted(IMPORTERS))
def test_policy_readout_matches(importer: str, tmp_path: Path) -> None:
    """A real-valued affine readout (Q-values of a policy) through the importer: the same
    values up to float32 rounding and the same greedy actions."""
    from torch import nn

    from whetstone.nn import SpikingBReLU
    from whetstone.sharpening.allocation import set_model_sharpness

    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 32), SpikingBReLU(), nn.Linear(32, 32), SpikingBReLU(),
                          nn.Linear(32, 2))
    model[0].weight.data.mul_(2.0)
    set_model_sharpness(model, 1.0)
    net = to_spiking(model.eval())
    assert net.readout == "affine"
    neuron, load = IMPORTERS[importer]
    path = tmp_path / f"policy_{neuron}.nir"
    to_nir(net, path, neuron=neuron, target=importer)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    q = _run_one_by_one(load(path), x)
    ours = rt.run(net, x)
    assert q.shape == ours.shape == (64, 2)
    np.testing.assert_allclose(q, ours, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(q.argmax(1), ours.argmax(1))
    assert 0 < ours.argmax(1).mean() < 1
