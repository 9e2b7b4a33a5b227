"""The sharpenable activations as pure functions (method.md, section 1).

Sharpness ``s`` runs from 0 (soft) to 1 (binary); ``LAM = 0.001`` keeps the slope finite.

Bounded ReLU::

    y = clip((x - 0.5) / (1 - s + LAM) + 0.5, 0, 1)    for s < 1
    y = 1[x >= 0.5]                                     for s == 1

Sigmoid::

    y = 1 / (1 + exp(-k x)),  k = 4 ln(2 + sqrt 3) / (1 - s + LAM),  k x clipped to [-40, 40]
    y = 1[x >= 0]                                       for s == 1

All functions take tensors of any shape and work elementwise.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

LAM: float = 0.001
"""Keeps the slope ``1 / (1 - s + LAM)`` finite as ``s -> 1``."""

BRELU_THRESHOLD: float = 0.5
"""The bounded ReLU's fixed firing threshold: a neuron spikes when ``x >= 0.5``."""

SIGMOID_THRESHOLD: float = 0.0
"""The sigmoid variant's threshold: a neuron spikes when ``x >= 0``."""

SIGMOID_BASE_GAIN: float = 4.0 * math.log(2.0 + math.sqrt(3.0))
"""``k`` at ``s = 0`` times ``(1 + LAM)``; ``k(0) ~= 5.263``."""


def brelu_slope(sharpness: float) -> float:
    """Slope of the bounded ReLU's linear part, ``1 / (1 - s + LAM)``."""
    return 1.0 / (1.0 - sharpness + LAM)


def sigmoid_gain(sharpness: float) -> float:
    """Gain ``k = 4 ln(2 + sqrt 3) / (1 - s + LAM)`` of the sharpenable sigmoid."""
    return SIGMOID_BASE_GAIN / (1.0 - sharpness + LAM)


def heaviside(x: Tensor, threshold: float) -> Tensor:
    """Binary spike ``1[x >= threshold]`` in the dtype of ``x`` (ties fire, NaN gives 0).

    One native comparison written straight into a tensor of ``x``'s dtype (no bool
    intermediate); never differentiable.
    """
    return torch.ge(x, threshold, out=torch.empty_like(x))


@functools.lru_cache(maxsize=16)
def _brelu_offset(slope: float, dtype: torch.dtype) -> Tensor:
    """The 0-dim CPU tensor ``0.5 - 0.5 slope`` in ``dtype`` (cached: a layer whose sharpness
    stays put reuses it; nothing writes to it)."""
    return torch.tensor(0.5 - 0.5 * slope, dtype=dtype)


def brelu(x: Tensor, sharpness: float) -> Tensor:
    """Sharpenable bounded ReLU (soft branch for ``s < 1``, exact step at ``s == 1``).

    At ``s == 1`` the true gradient is zero (the step is constant almost everywhere).
    """
    if sharpness >= 1.0:
        return heaviside(x, BRELU_THRESHOLD)
    slope = brelu_slope(sharpness)
    # clip(a (x - 0.5) + 0.5, 0, 1) = hardtanh(b + a x), b = 0.5 - 0.5 a: two native ops (one
    # add with alpha, one hardtanh) and their native backward; a 0-dim CPU tensor acts as a
    # scalar on any device and does not change the dtype of x.
    offset = _brelu_offset(slope, x.dtype)
    return torch.nn.functional.hardtanh(torch.add(offset, x, alpha=slope), 0.0, 1.0)


def sigmoid(x: Tensor, sharpness: float) -> Tensor:
    """Sharpenable sigmoid; the exponent ``k x`` is clipped to ``[-40, 40]``."""
    if sharpness >= 1.0:
        return heaviside(x, SIGMOID_THRESHOLD)
    return torch.sigmoid(torch.clamp(x * sigmoid_gain(sharpness), -40.0, 40.0))
