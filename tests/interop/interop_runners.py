"""Run a NIR file written by :func:`whetstone.export.to_nir` in an importer, as the target
table (:data:`whetstone.export.TARGETS`) says: one time step from zero state, a whole batch
``(B, *input_shape)`` per call. Each runner returns a function ``x (numpy) -> output
(numpy)``; a package that cannot be imported raises :class:`ImporterMissing` with the
import error (the tests skip with it)."""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

Runner = Callable[[np.ndarray], np.ndarray]


INSTALL_ERROR = Path(sys.prefix) / ".importers-install-error.txt"
"""Where the Makefile's install of the importers leaves pip's output when it fails."""


class ImporterMissing(RuntimeError):
    """The importer's package cannot be imported; the message is the import error and, when
    the Makefile's install of the importers failed, pip's output."""


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the skip reason
        message = f"{name} cannot be imported: {type(exc).__name__}: {exc}"
        if INSTALL_ERROR.is_file():
            tail = "\n".join(INSTALL_ERROR.read_text().rstrip().splitlines()[-30:])
            message += f"\nthe importers' install failed ({INSTALL_ERROR}):\n{tail}"
        raise ImporterMissing(message) from exc


def _output(result: tuple[torch.Tensor, Any]) -> torch.Tensor:
    """``out`` of the ``out, state = module(x)`` every imported module returns."""
    out, _state = result
    return out


def _numpy_call(call: Callable[[torch.Tensor], torch.Tensor]) -> Runner:
    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return call(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
    return run


def norse_runner(path: Path) -> Runner:
    """``norse.torch.from_nir(nir.read(path))``; ``out, _ = module(x)`` (``state=None``)."""
    nir = _import("nir")
    norse_torch = _import("norse.torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = norse_torch.from_nir(nir.read(path))
    return _numpy_call(lambda x: _output(module(x)))


def snntorch_runner(path: Path) -> Runner:
    """``snntorch.import_nir.import_from_nir(nir.read(path))``; every neuron's membrane reset
    before each call; ``out, _ = module(x)``."""
    nir = _import("nir")
    snntorch = _import("snntorch")
    importer = _import("snntorch.import_nir")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = importer.import_from_nir(nir.read(path))
    neurons = [m for m in module.modules() if isinstance(m, snntorch.SpikingNeuron)]

    def call(x: torch.Tensor) -> torch.Tensor:
        for neuron in neurons:  # init_hidden=True keeps membranes between calls
            neuron.reset_mem()
        return _output(module(x))
    return _numpy_call(call)


def spikingjelly_runner(path: Path) -> Runner:
    """``spikingjelly.activation_based.nir_exchange.import_from_nir(nir.read(path))`` with its
    default ``dt``; ``out, _ = module(x)`` (``state=None``)."""
    nir = _import("nir")
    exchange = _import("spikingjelly.activation_based.nir_exchange")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = exchange.import_from_nir(nir.read(path))
    return _numpy_call(lambda x: _output(module(x)))


RUNNERS: dict[str, Callable[[Path], Runner]] = {
    "norse": norse_runner, "snntorch": snntorch_runner, "spikingjelly": spikingjelly_runner}
"""Target name -> runner, for the importers installed in the project's environment (Sinabs
runs in its own, see ``sinabs_env.py``)."""
