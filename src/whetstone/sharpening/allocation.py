"""Spreading a model sharpness ``m`` in ``[0, 1]`` over its ``N`` sharpenable layers (§2).

Bottom-up (the default): each layer owns ``p = 1/N`` of ``m``; layers ``0 .. floor(m/p) - 1``
are at 1, the next at ``(m mod p) / p``, the rest at 0, so lower layers finish before upper
ones start. Uniform: every layer gets ``m``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..nn.activations import Sharpenable

_SNAP = 1e-9  # m * N within this of an integer counts as that integer (float accumulation)


def bottom_up(m: float, n_layers: int) -> list[float]:
    """Per-layer sharpness for model sharpness ``m`` allocated bottom-up over ``n_layers``."""
    _check_model_sharpness(m)
    if m >= 1.0:
        return [1.0] * n_layers
    t = m * n_layers
    if abs(t - round(t)) < _SNAP:
        t = float(round(t))
    full = math.floor(t)
    return [1.0 if i < full else (t - full if i == full else 0.0) for i in range(n_layers)]


def uniform(m: float, n_layers: int) -> list[float]:
    """Per-layer sharpness for model sharpness ``m`` given to every layer alike."""
    _check_model_sharpness(m)
    return [float(m)] * n_layers


def _check_model_sharpness(m: float) -> None:
    if not 0.0 <= m <= 1.0 or math.isnan(m):
        raise ValueError(f"model sharpness must lie in [0, 1], got {m}")


def sharpenable_layers(
    model: nn.Module, example_input: torch.Tensor | None = None
) -> list[Sharpenable]:
    """All sharpenable modules of ``model`` in forward order, nested modules included.

    Without ``example_input`` the order is the modules' registration order, which is the
    forward order for (nested) ``nn.Sequential`` models. With ``example_input`` one forward
    pass (no gradient) records the order in which the layers are actually called, for models
    whose ``forward`` calls submodules in another order.
    """
    layers = [m for m in model.modules() if isinstance(m, Sharpenable)]
    if example_input is None:
        return layers
    called: list[Sharpenable] = []
    hooks = [
        layer.register_forward_pre_hook(lambda mod, _inp: called.append(mod)) for layer in layers
    ]
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in hooks:
            h.remove()
    ordered: list[Sharpenable] = []
    for layer in called:
        if not any(layer is o for o in ordered):
            ordered.append(layer)
    return ordered + [lay for lay in layers if not any(lay is o for o in ordered)]


def get_layer_sharpness(model: nn.Module | Sequence[Sharpenable]) -> list[float]:
    """Sharpness of every sharpenable layer, in forward order."""
    layers = _layers(model)
    return [layer.sharpness for layer in layers]


def set_layer_sharpness(model: nn.Module | Sequence[Sharpenable], values: Sequence[float]) -> None:
    """Set each sharpenable layer's sharpness from ``values`` (one per layer, forward order)."""
    layers = _layers(model)
    if len(values) != len(layers):
        raise ValueError(f"got {len(values)} sharpness values for {len(layers)} layers")
    for layer, value in zip(layers, values, strict=True):
        layer.set_sharpness(value)  # = ``layer.sharpness = value``, without nn.Module's hook


def set_model_sharpness(
    model: nn.Module | Sequence[Sharpenable], value: float, bottom_up: bool = True
) -> list[float]:
    """Set model sharpness ``value``; returns the per-layer values it allocated."""
    layers = _layers(model)
    values = (_bottom_up if bottom_up else uniform)(value, len(layers))
    set_layer_sharpness(layers, values)
    return values


def is_fully_sharp(model: nn.Module | Sequence[Sharpenable]) -> bool:
    """True when every sharpenable layer is at sharpness 1 (the network is binary)."""
    return all(s >= 1.0 for s in get_layer_sharpness(model))


def _layers(model: nn.Module | Sequence[Sharpenable]) -> list[Sharpenable]:
    if isinstance(model, nn.Module):
        return sharpenable_layers(model)
    return list(model)


_bottom_up = bottom_up


class fully_sharpened:  # noqa: N801 - used like a function: ``with fully_sharpened(model):``
    """Context manager: every sharpenable layer at 1 inside, previous values restored after.

    Evaluates the fully binary network without copying the model.
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = sharpenable_layers(model)
        self.saved: list[float] = []

    def __enter__(self) -> list[Sharpenable]:
        self.saved = get_layer_sharpness(self.layers)
        set_layer_sharpness(self.layers, [1.0] * len(self.layers))
        return self.layers

    def __exit__(self, *exc: object) -> None:
        set_layer_sharpness(self.layers, self.saved)
