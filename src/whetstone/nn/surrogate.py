"""Surrogate gradients for the fully sharpened step (strategy objects).

At sharpness 1 the forward pass is the exact step ``1[x >= theta]`` and its true gradient
is zero, so the original Whetstone stopped learning below a fully sharpened layer. A
surrogate keeps the forward exactly binary and only replaces the backward pass; it is
optional (``surrogate=None`` keeps the true, zero gradient).

A surrogate may provide a *carrier*: a differentiable function of ``x`` made of native autograd
nodes whose derivative is the surrogate. :func:`spike` overwrites the carrier's values with the
exact step, unrecorded, so the backward pass runs no Python. The boxcar
(:class:`StraightThrough`) does (the training hot path); a surrogate with only a ``grad``
method (:class:`ArcTan`: an ``atan`` carrier costs more than evaluating its derivative once)
goes through an autograd function that evaluates its derivative in the forward pass.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .functional import heaviside


@dataclass(frozen=True)
class StraightThrough:
    """Boxcar straight-through estimator.

    ``d spike / d x ~= 1[|x - theta| <= width / 2] / width``: the gradient of a bounded ReLU
    of slope ``1 / width`` centred on the threshold (``width = 1`` is the sharpness-0 bReLU).
    Both window edges get the gradient; ``|x - theta| <= width / 2`` is evaluated in the dtype
    of ``x`` (see :func:`boxcar_window` for what that means at the edges).
    """

    width: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.width) and self.width > 0.0):
            raise ValueError(f"StraightThrough width must be finite and positive, got {self.width}")

    def grad(self, centred: Tensor) -> Tensor:
        """Surrogate derivative at ``centred = x - theta`` (any shape, same dtype).

        The reference formula; the training path :func:`boxcar_spike` gives the same values
        from :meth:`window`'s edges without evaluating it.
        """
        inside = (centred.abs() <= 0.5 * self.width).to(centred.dtype)
        return inside if self.width == 1.0 else inside.mul_(1.0 / self.width)

    def window(self, threshold: float, dtype: torch.dtype) -> tuple[float, float, float]:
        """``(lo, hi, scale)`` with ``grad(x - threshold) == scale * 1[lo < x < hi]`` for every
        non-NaN ``x`` of ``dtype`` (:func:`boxcar_window`)."""
        return boxcar_window(threshold, self.width, dtype)

    def carrier(self, x: Tensor, threshold: float) -> Tensor:
        """``scale * hardtanh(x, lo, hi)`` of :meth:`window`: its gradient is :meth:`grad`
        bit for bit (see :func:`boxcar_window`)."""
        return boxcar_carrier(x, *self.window(threshold, x.dtype))


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

_BITS: dict[torch.dtype, torch.dtype] = {
    torch.float16: torch.int16, torch.bfloat16: torch.int16,
    torch.float32: torch.int32, torch.float64: torch.int64}
"""The floating dtypes :func:`boxcar_window` handles, with the integer dtype of their bits."""


def _to_key(value: Tensor) -> int:
    """Order-preserving integer of a one-element float tensor (its IEEE bits, sign-magnitude
    turned into two's complement; ``-0.0`` and ``0.0`` share the key 0)."""
    int_dtype = _BITS[value.dtype]
    bits = int(value.view(int_dtype).item())
    return bits if bits >= 0 else -(bits + (1 << (torch.iinfo(int_dtype).bits - 1)))


def _from_key(key: int, dtype: torch.dtype) -> Tensor:
    """Inverse of :func:`_to_key`: the one-element tensor of ``dtype`` with that key."""
    int_dtype = _BITS[dtype]
    bits = key if key >= 0 else -key - (1 << (torch.iinfo(int_dtype).bits - 1))
    return torch.tensor([bits], dtype=int_dtype).view(dtype)


@functools.lru_cache(maxsize=64)
def boxcar_window(threshold: float, width: float, dtype: torch.dtype) -> tuple[float, float, float]:
    """Open edges and height of the boxcar gradient, exact in ``dtype``.

    Returns ``(lo, hi, scale)`` such that, for every non-NaN ``x`` of ``dtype``,

        1[|x - theta| <= width / 2] / width  ==  scale * 1[lo < x < hi]

    where the left side is evaluated in ``dtype`` exactly as :meth:`StraightThrough.grad`
    does (``x - theta`` rounded to ``dtype``, then ``abs``, compared with ``width / 2``;
    ``scale`` is ``1 / width`` rounded the same way). ``lo`` is the largest value of ``dtype``
    outside the window below ``theta`` and ``hi`` the smallest above, both found by bisection
    over the representable numbers, so the strict test ``lo < x < hi`` (that of
    ``hardtanh``'s native backward) reproduces the inclusive test bit for bit, rounding
    included. For ``theta = 0.5``, ``width = 1`` in float32 the window is
    ``-2^-25 <= x <= 1`` (``x - 0.5`` rounds to ``-0.5`` down to ``x = -2^-25``), i.e.
    ``lo = -(2^-25 + 2^-48)`` and ``hi = 1 + 2^-23``.
    """
    if dtype not in _BITS:
        raise TypeError(f"boxcar_window: unsupported dtype {dtype}")
    if not (math.isfinite(width) and width > 0.0):
        raise ValueError(f"boxcar_window: width must be finite and positive, got {width}")
    half = 0.5 * width

    def inside(key: int) -> bool:
        return bool((_from_key(key, dtype) - threshold).abs() <= half)

    centre = _to_key(torch.tensor([threshold], dtype=dtype))
    if not inside(centre):  # a NaN or infinite threshold
        raise ValueError(f"boxcar_window: threshold {threshold} is not a finite number of {dtype}")
    inf = _to_key(torch.tensor([math.inf], dtype=dtype))

    def edge(outside: int, good: int) -> float:
        # invariant: outside the window at `outside`, inside at `good`; bisect to neighbours
        while abs(good - outside) > 1:
            mid = (good + outside) // 2
            if inside(mid):
                good = mid
            else:
                outside = mid
        return float(_from_key(outside, dtype).item())

    scale = float(torch.ones(1, dtype=dtype).mul_(1.0 / width).item())
    return edge(-inf, centre), edge(inf, centre), scale


def step_over(carrier: Tensor, x: Tensor, threshold: float) -> Tensor:
    """``carrier`` with its values replaced by the exact step ``1[x >= threshold]``.

    The step goes into the carrier's memory through a detached alias: autograd does not
    record the write, so the result's gradient is the carrier's (a chain of native nodes, no
    Python in the backward pass) while its values are exactly
    :func:`~whetstone.nn.functional.heaviside`. The carrier's last node must not have saved
    its own output (the shared version counter would flag it); the carriers here end in
    ``hardtanh`` (saves its input), ``mul`` by a number or ``mul_`` (save nothing).
    """
    torch.ge(x, threshold, out=carrier.detach())
    return carrier


def boxcar_spike(x: Tensor, threshold: float, lo: float, hi: float, scale: float = 1.0) -> Tensor:
    """Exact spike ``1[x >= threshold]`` whose gradient is ``scale * 1[lo < x < hi]``.

    Built from native autograd nodes only, so the backward pass runs no Python:
    ``hardtanh(x, lo, hi)`` (times ``scale`` unless 1) records the boxcar gradient (its
    backward keeps the incoming gradient where ``lo < x < hi``, exactly, and saves only
    ``x``), then :func:`step_over` overwrites its values with the step. The forward is
    thus exactly :func:`~whetstone.nn.functional.heaviside`, and the gradient the boxcar.
    Outside the window the gradient is ``+0`` (the saved-slope product ``grad * 0`` gave
    ``-0`` for a negative incoming gradient, and NaN for an infinite one), and a NaN ``x``,
    whose spike is 0, passes the incoming gradient (the inclusive ``abs`` test gave 0).
    """
    return step_over(boxcar_carrier(x, lo, hi, scale), x, threshold)


def boxcar_carrier(x: Tensor, lo: float, hi: float, scale: float = 1.0) -> Tensor:
    """``scale * hardtanh(x, lo, hi)``: gradient ``scale * 1[lo < x < hi]`` (native backward,
    which saves only ``x``)."""
    carrier = torch.nn.functional.hardtanh(x, lo, hi)
    return carrier if scale == 1.0 else carrier * scale


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
    """Exact binary spike ``1[x >= threshold]``, with ``surrogate``'s gradient if given.

    A surrogate with a ``carrier(x, threshold)`` method (:class:`StraightThrough`) runs through
    :func:`step_over` (native backward) in the floating dtypes of :func:`boxcar_window`; any
    other surrogate (only ``grad(centred)``) or dtype, through the generic autograd function.
    """
    if surrogate is None or not (x.requires_grad and torch.is_grad_enabled()):
        return heaviside(x, threshold)
    carrier = getattr(surrogate, "carrier", None)
    if carrier is not None and x.dtype in _BITS:
        return step_over(carrier(x, threshold), x, threshold)
    return _SpikeFunction.apply(x, threshold, surrogate)


def make_surrogate(name: str | None, **kwargs: float) -> Surrogate | None:
    """Build a surrogate from its name (``None`` or ``"none"`` for the true zero gradient)."""
    if name is None or name == "none":
        return None
    try:
        return SURROGATES[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown surrogate {name!r}; choose from {sorted(SURROGATES)}") from None
