"""The primitives of a spiking network: plain data, one frozen dataclass per operation.

Shapes exclude the batch (NIR style): an ``Affine`` maps ``(in,)`` to ``(out,)``, a
``Conv2d`` maps ``(C, H, W)`` to ``(C', H', W')``. The arithmetic lives in
:mod:`whetstone.runtime.simulate`; these classes only hold and check parameters, and turn
themselves into JSON parameters plus named numpy arrays for :mod:`whetstone.runtime.network`.

Arrays are stored read-only (a primitive is a value: change it by building a new one).
Threshold convention: a neuron fires when its input is **greater than or equal to** its
threshold (``>=``; ties fire), as in training (``1[x >= 0.5]``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


def _frozen_array(value: Any, name: str, ndim: int | None = None) -> np.ndarray:
    """A read-only C-contiguous float copy of ``value`` (float32 stays float32, else float64)."""
    arr = np.asarray(value)
    arr = np.array(arr, dtype=np.float32 if arr.dtype == np.float32 else np.float64,
                   order="C", copy=True)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite values")
    arr.flags.writeable = False
    return arr


def _pair(value: Any, name: str, minimum: int) -> tuple[int, int]:
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < minimum for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _quad(value: Any, name: str) -> tuple[int, int, int, int]:
    quad = (value,) * 4 if np.isscalar(value) else tuple(value)
    if len(quad) != 4 or any(int(v) != v or v < 0 for v in quad):
        raise ValueError(f"{name} must be 4 ints >= 0 (top, bottom, left, right), got {value!r}")
    return tuple(int(v) for v in quad)  # type: ignore[return-value]


class Primitive:
    """Base of the primitives: serialisation to JSON parameters and named arrays."""

    kind: ClassVar[str] = ""
    _arrays: ClassVar[tuple[str, ...]] = ()

    def params(self) -> dict[str, Any]:
        """The non-array fields as JSON values (tuples become lists)."""
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name not in self._arrays:
                value = getattr(self, f.name)
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The array fields by name."""
        return {name: getattr(self, name) for name in self._arrays}

    @classmethod
    def from_parts(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Primitive:
        """Rebuild from :meth:`params` and :meth:`arrays` (the checks run again)."""
        return cls(**params, **arrays)  # type: ignore[call-arg]


@dataclass(frozen=True, eq=False)
class Affine(Primitive):
    """Dense synapses: ``y = W x + b``.

    ``weight`` ``(out, in)``, ``bias`` ``(out,)``; input ``(in,)``, output ``(out,)``.
    """

    weight: np.ndarray
    bias: np.ndarray
    kind: ClassVar[str] = "Affine"
    _arrays: ClassVar[tuple[str, ...]] = ("weight", "bias")

    def __post_init__(self) -> None:
        w = _frozen_array(self.weight, "Affine.weight", 2)
        b = _frozen_array(self.bias, "Affine.bias", 1)
        if b.shape != (w.shape[0],):
            raise ValueError(f"Affine.bias must have shape ({w.shape[0]},), got {b.shape}")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)


@dataclass(frozen=True, eq=False)
class Conv2d(Primitive):
    """2-D convolution (cross-correlation, as in torch) with zero padding:

    ``y[o, i, j] = b[o] + sum_{c, u, v} W[o, c, u, v] * xpad[g(o) * Cin/G + c,
    i * sh + u * dh, j * sw + v * dw]``

    ``weight`` ``(Cout, Cin / groups, kh, kw)``, ``bias`` ``(Cout,)``; ``padding`` explicit
    per side ``(top, bottom, left, right)`` (``'same'`` is resolved at conversion);
    ``g(o) = o // (Cout / groups)``. Input ``(Cin, H, W)``, output ``(Cout, H', W')`` with
    ``H' = (H + top + bottom - dh (kh - 1) - 1) // sh + 1`` (likewise ``W'``).
    """

    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kind: ClassVar[str] = "Conv2d"
    _arrays: ClassVar[tuple[str, ...]] = ("weight", "bias")

    def __post_init__(self) -> None:
        w = _frozen_array(self.weight, "Conv2d.weight", 4)
        b = _frozen_array(self.bias, "Conv2d.bias", 1)
        if b.shape != (w.shape[0],):
            raise ValueError(f"Conv2d.bias must have shape ({w.shape[0]},), got {b.shape}")
        groups = int(self.groups)
        if groups < 1 or w.shape[0] % groups:
            raise ValueError(f"Conv2d: {w.shape[0]} output channels not divisible by {groups}")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)
        object.__setattr__(self, "stride", _pair(self.stride, "Conv2d.stride", 1))
        object.__setattr__(self, "padding", _quad(self.padding, "Conv2d.padding"))
        object.__setattr__(self, "dilation", _pair(self.dilation, "Conv2d.dilation", 1))
        object.__setattr__(self, "groups", groups)

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[1]) * self.groups


@dataclass(frozen=True, eq=False)
class SumPool2d(Primitive):
    """Sum pooling, scaled: ``y[c, i, j] = scale * sum_{u < kh, v < kw} xpad[c, i sh + u,
    j sw + v]`` (zero padding ``(top, bottom, left, right)``).

    With ``scale = 1`` and a following ``Threshold(0.5)`` over spikes it is a logical OR
    (max-pooling of binary values: the sum is ``>= 0.5`` when any input spiked). With
    ``scale = 1 / (kh kw)`` it is average pooling. Input ``(C, H, W)``, output
    ``(C, H', W')``, ``H' = (H + top + bottom - kh) // sh + 1``.
    """

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    scale: float = 1.0
    kind: ClassVar[str] = "SumPool2d"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", _pair(self.kernel, "SumPool2d.kernel", 1))
        object.__setattr__(self, "stride", _pair(self.stride, "SumPool2d.stride", 1))
        object.__setattr__(self, "padding", _quad(self.padding, "SumPool2d.padding"))
        scale = float(self.scale)
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"SumPool2d.scale must be positive and finite, got {self.scale}")
        object.__setattr__(self, "scale", scale)


@dataclass(frozen=True, eq=False)
class Flatten(Primitive):
    """Flatten a batch-free shape to one dimension (start_dim 0): ``(C, H, W) -> (C*H*W,)``,
    C order, i.e. the order of ``torch.nn.Flatten()`` on ``(N, C, H, W)``."""

    kind: ClassVar[str] = "Flatten"


MAX_UPSAMPLE = 64
"""Largest :class:`Upsample2d` factor per axis accepted (a bound against forged files)."""


@dataclass(frozen=True, eq=False)
class Upsample2d(Primitive):
    """Nearest-neighbour upsampling by integer factors ``scale = (sh, sw)``:

    ``y[c, i, j] = x[c, i // sh, j // sw]``

    Input ``(C, H, W)``, output ``(C, H sh, W sw)``. Every output is a copy of one input, so
    spikes stay spikes (binary in, binary out) and the operation is exact in any dtype; it is
    ``torch.nn.Upsample(scale_factor=(sh, sw), mode="nearest")`` on ``(N, C, H, W)``.
    """

    scale: tuple[int, int]
    kind: ClassVar[str] = "Upsample2d"

    def __post_init__(self) -> None:
        scale = _pair(self.scale, "Upsample2d.scale", 1)
        if max(scale) > MAX_UPSAMPLE:
            raise ValueError(f"Upsample2d.scale {scale} exceeds {MAX_UPSAMPLE} per axis (a "
                             "file declaring a huge scale would exhaust memory when run)")
        object.__setattr__(self, "scale", scale)


@dataclass(frozen=True, eq=False)
class Unflatten(Primitive):
    """Split the first batch-free axis into ``sizes``: ``(D, ...) -> (*sizes, ...)`` with
    ``prod(sizes) = D``, C order; the inverse of :class:`Flatten` and the same as
    ``torch.nn.Unflatten(1, sizes)`` on ``(N, D, ...)``. Values are unchanged (a reshape)."""

    sizes: tuple[int, ...]
    kind: ClassVar[str] = "Unflatten"

    def __post_init__(self) -> None:
        sizes = (self.sizes,) if np.isscalar(self.sizes) else tuple(self.sizes)
        if not sizes or any(isinstance(v, bool) or int(v) != v or v < 1 for v in sizes):
            raise ValueError(f"Unflatten.sizes must be one or more ints >= 1, got "
                             f"{self.sizes!r}")
        object.__setattr__(self, "sizes", tuple(int(v) for v in sizes))


@dataclass(frozen=True, eq=False)
class Threshold(Primitive):
    """Binary neurons: ``z = 1[x >= theta]`` (ties fire).

    ``theta`` is a scalar (0-d array) or an array broadcastable to the batch-free input
    shape (one threshold per neuron). Output has the input's shape, values in ``{0, 1}``.
    """

    theta: np.ndarray = field(default_factory=lambda: np.array(0.5))
    kind: ClassVar[str] = "Threshold"
    _arrays: ClassVar[tuple[str, ...]] = ("theta",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "theta", _frozen_array(self.theta, "Threshold.theta"))


@dataclass(frozen=True, eq=False)
class Decode(Primitive):
    """N-hot population decode to class logits (an affine map of binary outputs):

    ``logits = (2a - 1) (2K - 1)^T = (4K - 2) a - (2K - 1).sum(1)``

    ``key`` ``(C, W)`` of zeros and ones; input ``(W,)``, output ``(C,)``. For binary ``a``
    the logit of class ``c`` is ``W - 2 hamming(a, K_c)``; argmax needs no softmax.
    """

    key: np.ndarray
    kind: ClassVar[str] = "Decode"
    _arrays: ClassVar[tuple[str, ...]] = ("key",)

    def __post_init__(self) -> None:
        key = _frozen_array(self.key, "Decode.key", 2)
        if not np.all((key == 0) | (key == 1)):
            raise ValueError("Decode.key must hold only zeros and ones")
        object.__setattr__(self, "key", key)

    @property
    def weight(self) -> np.ndarray:
        """``4K - 2``, ``(C, W)``."""
        return 4.0 * self.key - 2.0

    @property
    def bias(self) -> np.ndarray:
        """``-(2K - 1).sum(1)``, ``(C,)``."""
        return -(2.0 * self.key - 1.0).sum(axis=1)


PRIMITIVES: dict[str, type[Primitive]] = {
    cls.kind: cls for cls in (Affine, Conv2d, SumPool2d, Flatten, Threshold, Decode, Upsample2d,
                               Unflatten)
}
"""Every primitive class by its ``kind`` (the name written to files)."""
