"""How the fast engine holds a layer's output, and the conversions to the reference layout.

A value is a batch ``(N, ...)`` described by a :class:`Meta`:

- ``kind``: ``"spikes"`` (uint8 0/1) or ``"real"`` (the accumulator's dtype: float32 or
  float64 for a float network; int32 or int64 for an integer one);
- ``layout``: ``"ref"`` (the numpy reference's layout, ``(N, C, H, W)`` or ``(N, D)``),
  ``"hwc"`` (channels last, ``(N, H, W, C)``, what the convolution and pooling kernels
  read and write) or ``"flat"`` (``(N, D)`` whose column ``j`` is the reference's column
  ``perm[j]``: a :class:`~whetstone.runtime.Flatten` of a channels-last map is a free
  reshape, and the next ``Affine`` reads its weight columns in that order instead, permuted
  once when the network is compiled);
- ``shape``: the reference's batch-free shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Meta:
    """Kind, layout and reference shape of one value (see the module doc)."""

    kind: str
    layout: str
    shape: tuple[int, ...]
    perm: np.ndarray | None = None


def flatten_perm(shape: tuple[int, ...]) -> np.ndarray:
    """For a ``(C, H, W)`` map held channels-last: ``perm[j]`` is the C-order index
    ``c H W + h W + w`` of the ``j``-th entry of the channels-last order ``(h, w, c)``."""
    c, h, w = shape
    return np.arange(c * h * w, dtype=np.int64).reshape(c, h, w).transpose(1, 2, 0).ravel()


def to_internal(arr: np.ndarray, meta: Meta) -> np.ndarray:
    """An array of the reference's batch-free shape ``meta.shape`` (or ``(N, *shape)``)
    in the layout of ``meta`` (used for per-neuron thresholds)."""
    arr = np.broadcast_to(arr, meta.shape)
    if meta.layout == "hwc":
        return np.ascontiguousarray(arr.transpose(1, 2, 0))
    if meta.layout == "flat" and meta.perm is not None:
        return np.ascontiguousarray(arr.reshape(-1)[meta.perm])
    return np.ascontiguousarray(arr)


def to_reference(value: np.ndarray, meta: Meta) -> np.ndarray:
    """The batch ``value`` in the reference's layout ``(N, *meta.shape)``; spikes as bool."""
    if meta.layout == "hwc":
        value = value.transpose(0, 3, 1, 2)
    elif meta.layout == "flat" and meta.perm is not None:
        out = np.empty_like(value)
        out[:, meta.perm] = value
        value = out
    value = value.reshape(len(value), *meta.shape)
    if meta.kind == "spikes":
        return value.view(np.bool_) if value.dtype == np.uint8 else value.astype(np.bool_)
    return value


def to_hwc(value: np.ndarray, meta: Meta) -> np.ndarray:
    """A ``(N, C, H, W)`` reference batch as a contiguous channels-last ``(N, H, W, C)``."""
    if meta.layout == "hwc":
        return value
    return np.ascontiguousarray(value.reshape(len(value), *meta.shape).transpose(0, 2, 3, 1))
