"""whetstone: train deep networks to single-step binary spikes (Severa et al., 2019).

The pipeline reads like the method, one subpackage per stage:

- :mod:`whetstone.data`: MNIST, Fashion-MNIST and CIFAR loaders (offline-capable).
- :mod:`whetstone.nn`: sharpenable activations (bounded ReLU, sigmoid) and the
  N-hot output population with its softmax decode.
- :mod:`whetstone.sharpening`: bottom-up allocation of sharpness and the schedules;
  :func:`whetstone.sharpen` turns a trained ReLU network into a calibrated sharpenable one.
- :mod:`whetstone.training`: a plain PyTorch training loop with sharpening hooks.
- :mod:`whetstone.presets`: the original's examples as named configurations.
- :mod:`whetstone.cli`: the ``whetstone`` command.

Subpackages are imported lazily, so ``import whetstone`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_SUBMODULES = (
    "data", "nn", "sharpening", "training", "presets", "runs", "plotting", "cli", "conversion",
    "runtime", "metrics", "quantization", "export",
)

if TYPE_CHECKING:  # pragma: no cover
    from . import data, nn, plotting, presets, runs, sharpening, training  # noqa: F401


_FUNCTIONS = {"sharpen": "sharpening"}
"""Functions offered at the top level (``ws.sharpen``), imported lazily from their module."""


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(f".{_FUNCTIONS[name]}", __name__), name)
    raise AttributeError(f"module 'whetstone' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES, *_FUNCTIONS])
