"""The primitives of a spiking network: plain data, one frozen dataclass per operation.

Shapes exclude the batch (NIR style): an ``Affine`` maps ``(in,)`` to ``(out,)``, a
``Conv2d`` maps ``(C, H, W)`` to ``(C', H', W')``. The arithmetic lives in
:mod:`whetstone.runtime.simulate`; these classes only hold and check parameters, and turn
themselves into JSON parameters plus named numpy arrays for :mod:`whetstone.runtime.network`.

Every primitive knows its arity (:attr:`Primitive.arity`: one input, or two and more for
the merges ``Add`` and ``Concat`` of a graph network) and its batch-free
:meth:`Primitive.output_shape` for given input shapes (the one place shapes are derived:
the runtime's checks, NIR export and the SynOp counts use it).

Arrays are stored read-only (a primitive is a value: change it by building a new one).
Threshold convention: a neuron fires when its input is **greater than or equal to** its
threshold (``>=``; ties fire), as in training (``1[x >= 0.5]``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

INTEGER_DTYPES: tuple[np.dtype, ...] = tuple(np.dtype(t) for t in ("int8", "int16", "int32",
                                                                     "int64"))
"""Integer dtypes a primitive's arrays keep (the integer network of
:func:`whetstone.quantization.to_integer`); any other dtype becomes float64 (float32 stays)."""


def _frozen_array(value: Any, name: str, ndim: int | None = None) -> np.ndarray:
    """A read-only C-contiguous copy of ``value``: float32 stays float32, the signed integer
    dtypes of :data:`INTEGER_DTYPES` stay as they are, anything else becomes float64."""
    arr = np.asarray(value)
    keep = arr.dtype == np.float32 or arr.dtype in INTEGER_DTYPES
    arr = np.array(arr, dtype=arr.dtype.newbyteorder("=") if keep else np.float64,
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


def _shape_error(kind: str, expects: str, shapes: tuple[tuple[int, ...], ...]) -> ValueError:
    got = ", ".join(str(tuple(s)) for s in shapes)
    return ValueError(f"{kind} expects input {expects}, got {got}")


def _conv_size(size: int, pad: int, dilation: int, kernel: int, stride: int) -> int:
    """``(size + pad - dilation (kernel - 1) - 1) // stride + 1``: one output axis."""
    return (size + pad - dilation * (kernel - 1) - 1) // stride + 1


class Primitive:
    """Base of the primitives: arity, shapes, and serialisation to JSON parameters and
    named arrays."""

    kind: ClassVar[str] = ""
    _arrays: ClassVar[tuple[str, ...]] = ()
    arity: ClassVar[int | None] = 1
    """Number of inputs: ``1``, or ``None`` for two or more (``Add``, ``Concat``)."""

    def output_shape(self, *input_shapes: tuple[int, ...]) -> tuple[int, ...]:
        """Batch-free output shape for the batch-free ``input_shapes`` (one per input).

        Raises:
            ValueError: the number of inputs or a shape does not fit (the message names the
                primitive, what it expects and what it got).
        """
        shapes = tuple(tuple(int(d) for d in s) for s in input_shapes)
        if self.arity is None and len(shapes) < 2:
            raise ValueError(f"{self.kind} takes two or more inputs, got {len(shapes)}")
        if self.arity is not None and len(shapes) != self.arity:
            raise ValueError(f"{self.kind} takes {self.arity} input(s), got {len(shapes)}")
        return self._output_shape(shapes)

    def _output_shape(self, shapes: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
        return shapes[0]

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

    def _output_shape(self, shapes: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
        return _dense_shape(self.kind, self.weight, shapes)


def _dense_shape(kind: str, weight: np.ndarray, shapes: tuple[tuple[int, ...], ...]
                 ) -> tuple[int, ...]:
    """``(in,) -> (out,)`` for a weight ``(out, in)``."""
    if shapes[0] != (weight.shape[1],):
        raise _shape_error(kind, f"({weight.shape[1]},)", shapes)
    return (int(weight.shape[0]),)


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

    def _output_shape(self, shapes: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
        shape = shapes[0]
        if len(shape) != 3 or shape[0] != self.in_channels:
            raise _shape_error(self.kind, f"({self.in_channels}, H, W)", shapes)
        kh, kw = self.weight.shape[2:]
        top, bottom, left, right = self.padding
        out = (int(self.weight.shape[0]),
               _conv_size(shape[1], top + bottom, self.dilation[0], kh, self.stride[0]),
               _conv_size(shape[2], left + right, self.dilation[1], kw, self.stride[1]))
        if min(out) < 1:
            raise _shape_error(self.kind, f"(C, H, W) at least as large as the window "
                               f"{(kh, kw)} (padded, dilated)", shapes)
        return out


@dataclass(frozen=True, eq=False)
class SumPool2d(Primitive):
    """Sum pooling, scaled: ``y[c, i, j] = scale * sum_{u < kh, v < kw} xpad[c, i sh + u,
    j sw + v]`` (zero padding ``(top, bottom, left, right)``).

    With ``scale = 1`` and a following ``Threshold(0.5)`` over spikes it is a logical OR
    (max-pooling of binary values: the sum is ``>= 0.5`` when any input spiked). With
    ``scale = 1 / (kh kw)`` it is average pooling. Input ``(C, H, W)``, output
    ``(C, H', W')``, ``H' = (H + top + bottom - kh) // sh + 1``.

    Rounding: when ``scale`` is the float ``1 / d`` of an integer ``d >= 2``
    (:attr:`divisor`) the runtime computes ``sum / d``, the correctly rounded mean, as
    torch's average pooling does (``sum * float(1 / d)`` can differ from it in the last bit
    when ``d`` is not a power of two).
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

    @property
    def divisor(self) -> int | None:
        """``d`` when ``scale`` is the float nearest ``1 / d`` for an integer ``d >= 2``,
        else ``None``."""
        if self.scale >= 1.0:
            return None
        d = round(1.0 / self.scale)
        return d if d >= 2 and 1.0 / d == self.scale else None

    def _output_shape(self, shapes: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
        shape = shapes[0]
        top, bottom, left, right = self.padding
        if len(shape) != 3:
            raise _shape_error(self.kind, "(C, H, W)", shapes)
        out = (shape[0], _conv_size(shape[1], top + bottom, 1, self.kernel[0], self.stride[0]),
               _conv_size(shape[2], left + right, 1, self.kernel[1], self.stride[1]))
        if min(out) < 1:
            raise _shape_error(self.kind, f"(C, H, W) at least as large as the window "
                               f"{self.kernel} (padded)", shapes)
        return out


@dataclass(frozen=True, eq=False)
class Flatten(Primitive):
    """Flatten a batch-free shape to one dimension (start_dim 0): ``(C, H, W) -> (C*H*W,)``,
    C order, i.e. the order of ``torch.nn.Flatten()`` on ``(N, C, H, W)``."""

    kind: ClassVar[str] = "Flatten"

    def _output_shape(self, shapes: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
        return (int(np.prod(shapes[0], dtype=np.int64)),)


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

    def _output_shape(self, shapes: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
        shape = shapes[0]
        if len(shape) != 3:
            raise _shape_error(self.kind, "(C, H, W)", shapes)
        return (shape[0], shape[1] * self.scale[0], shape[2] * self.scale[1])


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

    def _output_shape(self, shapes: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
        shape, want = shapes[0], int(np.prod(self.sizes, dtype=np.int64))
        if not shape or shape[0] != want:
            raise _shape_error(f"Unflatten{self.sizes}", f"({want}, ...)", shapes)
        return (*self.sizes, *shape[1:])


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

    def _output_shape(self, shapes: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
        shape = shapes[0]
        try:
            fits = np.broadcast_shapes(self.theta.shape, shape) == shape
        except ValueError:
            fits = False
        if not fits:
            raise _shape_error(self.kind, f"a shape theta {self.theta.shape} broadcasts to",
                               shapes)
        return shape


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

    def _output_shape(self, shapes: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
        return _dense_shape(self.kind, self.key, shapes)

    @property
    def weight(self) -> np.ndarray:
        """``4K - 2``, ``(C, W)``."""
        return 4.0 * self.key - 2.0

    @property
    def bias(self) -> np.ndarray:
        """``-(2K - 1).sum(1)``, ``(C,)``."""
        return -(2.0 * self.key - 1.0).sum(axis=1)


@dataclass(frozen=True, eq=False)
class Add(Primitive):
    """Elementwise sum of two or more inputs of equal shape: ``y = x_1 + x_2 + ... + x_k``
    (summed left to right, as torch's ``a + b + c``).

    Over spikes the sum is a real value (a count of inputs that fired): an ``Add`` feeds the
    next ``Threshold`` its input as a sum, e.g. a residual ``Threshold(theta)(Add(a, b))``
    is torch's ``act(a + b)``. Inputs ``(...)`` each, output the same shape.
    """

    kind: ClassVar[str] = "Add"
    arity: ClassVar[int | None] = None

    def _output_shape(self, shapes: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
        if any(s != shapes[0] for s in shapes):
            raise _shape_error(self.kind, "shapes that are all equal", shapes)
        return shapes[0]


@dataclass(frozen=True, eq=False)
class Concat(Primitive):
    """Concatenation of two or more inputs along the first batch-free axis (channels of
    ``(C, H, W)``, features of ``(D,)``): ``y = [x_1; x_2; ...; x_k]``, i.e. ``torch.cat(xs,
    dim=1)`` on batches. Inputs ``(C_k, ...)`` with equal trailing axes, output
    ``(sum_k C_k, ...)``. It only moves values: spikes stay spikes.
    """

    kind: ClassVar[str] = "Concat"
    arity: ClassVar[int | None] = None

    def _output_shape(self, shapes: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
        first = shapes[0]
        if not first or any(len(s) != len(first) or s[1:] != first[1:] for s in shapes):
            raise _shape_error(self.kind, "shapes (C_k, ...) that agree after the first axis",
                               shapes)
        return (sum(s[0] for s in shapes), *first[1:])


PRIMITIVES: dict[str, type[Primitive]] = {
    cls.kind: cls for cls in (Affine, Conv2d, SumPool2d, Flatten, Threshold, Decode, Upsample2d,
                               Unflatten, Add, Concat)
}
"""Every primitive class by its ``kind`` (the name written to files)."""
