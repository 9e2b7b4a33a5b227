"""Surrogate gradients for the fully sharpened step (strategy objects).

At sharpness 1 the forward pass is the exact step ``1[x >= theta]`` and its true gradient
is zero, so the original Whetstone stopped learning below a fully sharpened layer. A
surrogate keeps the forward exactly binary and only replaces the backward pass; it is
optional (``surrogate=None`` keeps the true, zero gradient).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class StraightThrough:
    """Boxcar straight-through estimator.

    ``d spike / d x ~= 1[|x - theta| <= width / 2] / width``: the gradient of a bounded ReLU
    of slope ``1 / width`` centred on the threshold (``width = 1`` is the sharpness-0 bReLU).
    """

    width: float = 1.0

    def grad(self, centred: Tensor) -> Tensor:
        """Surrogate derivative at ``centred = x - theta`` (any shape, same dtype)."""
        inside = (centred.abs() <= 0.5 * self.width).to(centred.dtype)
        return inside if self.width == 1.0 else inside.mul_(1.0 / self.width)


@dataclass(frozen=True)
class ArcTan:
    """Arctangent surrogate (the derivative of a scaled arctan step, snnTorch's default shape).

    ``d spike / d x ~= (alpha / 2) / (1 + (pi / 2 * alpha * (x - theta))^2)``: peak
    ``alpha / 2`` at the threshold, integral 1, heavy tails, so every neuron gets some gradient
    (the boxcar gives none outside its window). ``alpha = 2`` peaks at 1 like the width-1 boxcar.
    """

    alpha: float = 2.0

    def grad(self, centred: Tensor) -> Tensor:
        """Surrogate derivative at ``centred = x - theta`` (any shape, same dtype)."""
        scaled = centred * (0.5 * math.pi * self.alpha)
        return scaled.square_().add_(1.0).reciprocal_().mul_(0.5 * self.alpha)


Surrogate = StraightThrough | ArcTan
"""The surrogate strategies a sharpenable activation accepts."""

SURROGATES: dict[str, type[StraightThrough] | type[ArcTan]] = {
    "straight-through": StraightThrough, "arctan": ArcTan}


class _SpikeFunction(torch.autograd.Function):
    """Exact step forward; the surrogate's derivative, evaluated once in forward, backward."""

    @staticmethod
    def forward(ctx, x: Tensor, threshold: float, surrogate: Surrogate) -> Tensor:  # type: ignore[override]
        centred = x - threshold
        out = (centred >= 0).to(x.dtype)
        ctx.save_for_backward(surrogate.grad(centred))
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (slope,) = ctx.saved_tensors
        return grad * slope, None, None


def spike(x: Tensor, threshold: float, surrogate: Surrogate | None) -> Tensor:
    """Exact binary spike ``1[x >= threshold]``, with ``surrogate``'s gradient if given."""
    if surrogate is None or not torch.is_grad_enabled() or not x.requires_grad:
        return (x >= threshold).to(x.dtype)
    return _SpikeFunction.apply(x, threshold, surrogate)


def make_surrogate(name: str | None, **kwargs: float) -> Surrogate | None:
    """Build a surrogate from its name (``None`` or ``"none"`` for the true zero gradient)."""
    if name is None or name == "none":
        return None
    try:
        return SURROGATES[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown surrogate {name!r}; choose from {sorted(SURROGATES)}") from None
