"""The ONNX graph under construction: typed values, constants, nodes and cached casts.

A :class:`Value` is one tensor of the graph with its element type, its batch-free shape and,
for integers, the largest magnitude it can hold (:attr:`Value.bound`, which picks the
accumulator of the layers that read it). Spikes travel as ``bool``; each reader asks for
the type its operator needs with :meth:`OnnxBuilder.cast` (one ``Cast`` node per value and
type, shared by all readers).

The ``onnx`` package is imported when a builder is made, not when this module is imported,
so ``whetstone.export`` works without the ``onnx`` extra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...runtime import Primitive

BOOL = np.dtype(np.bool_)
UINT8 = np.dtype(np.uint8)
INT8 = np.dtype(np.int8)
INT32 = np.dtype(np.int32)
INT64 = np.dtype(np.int64)
FLOAT32 = np.dtype(np.float32)
FLOAT64 = np.dtype(np.float64)
EXACT_FLOAT32 = 2**24
"""Integers of at most this magnitude are exact in float32."""
EXACT_FLOAT64 = 2**53
"""Integers of smaller magnitude are exact in float64."""


class ONNXExportError(ValueError):
    """A network cannot be written as ONNX: a primitive with no writer (the message names the
    layer and its type), an unknown input shape, an integer sum too wide for ``int64``, or
    a bad option."""


def onnx_modules() -> tuple[Any, Any, Any]:
    """``(onnx, onnx.helper, onnx.numpy_helper)``; a clear ``ImportError`` without the
    extra."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("ONNX export needs the 'onnx' package: pip install "
                          "'whetstone[onnx]'") from exc
    return onnx, helper, numpy_helper


@dataclass(frozen=True)
class Value:
    """One tensor of the graph: ``name``, element ``dtype`` (``bool`` for spikes), batch-free
    ``shape`` (the graph's tensor is ``(N, *shape)``) and, for integer and bool values,
    ``bound``: the largest ``|v|`` it can hold (``None`` for real values)."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    bound: int | None = None

    @property
    def is_integer(self) -> bool:
        """Integer or bool (spikes: 0 / 1)."""
        return self.dtype == BOOL or np.issubdtype(self.dtype, np.integer)


@dataclass(frozen=True)
class LayerSpec:
    """One primitive to write: its ``index``, the ``layer``, its ``inputs`` (one
    :class:`Value` per source, in order), its batch-free output shape ``out``, ``where``
    (``"layer i (Kind)"``, for messages) and the ``accumulator`` recorded for it by
    :func:`whetstone.quantization.to_integer` (``"int32"``, ``"int64"`` or ``None``)."""

    index: int
    layer: Primitive
    inputs: tuple[Value, ...]
    out: tuple[int, ...]
    where: str
    accumulator: str | None = None


def integer_type_for(bound: int, where: str) -> np.dtype:
    """``int32`` when every ``|v| <= bound`` fits it, else ``int64``.

    Raises:
        ONNXExportError: ``bound`` does not fit ``int64`` either.
    """
    if bound < 2**31:
        return INT32
    if bound < 2**63:
        return INT64
    raise ONNXExportError(f"{where}: an integer sum can reach {bound}, beyond int64")


def dtype_bound(dtype: np.dtype) -> int:
    """The largest ``|v|`` of an integer (or bool) dtype."""
    if dtype == BOOL:
        return 1
    info = np.iinfo(dtype)
    return max(abs(int(info.min)), int(info.max))


@dataclass
class OnnxBuilder:
    """Nodes and initializers of one graph.

    ``real`` is the element type of real values (``float32`` or ``float64``); ``integer``:
    the network is an integer network (:attr:`~whetstone.runtime.SpikingNetwork.is_integer`),
    whose sums are computed in integer types. Names are unique: :meth:`fresh` appends a
    counter to a hint when needed.
    """

    real: np.dtype
    integer: bool = False
    workspace: int = 0
    """Bytes per sample of the largest matrix an im2col convolution builds (a runtime can
    bound its batch by it)."""
    nodes: list[Any] = field(default_factory=list)
    initializers: list[Any] = field(default_factory=list)
    _names: set[str] = field(default_factory=set)
    _casts: dict[tuple[str, str], Value] = field(default_factory=dict)
    _shapes: dict[tuple[int, ...], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.onnx, self.helper, self.numpy_helper = onnx_modules()
        self.real = np.dtype(self.real)

    def fresh(self, hint: str) -> str:
        """A name not used yet, ``hint`` itself when free."""
        name, k = hint, 1
        while name in self._names:
            name, k = f"{hint}_{k}", k + 1
        self._names.add(name)
        return name

    def elem_type(self, dtype: np.dtype) -> int:
        """The ONNX ``TensorProto`` element type of a numpy dtype."""
        return int(self.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))

    def const(self, array: np.ndarray, hint: str) -> str:
        """An initializer holding ``array`` (its dtype kept); returns its name."""
        name = self.fresh(hint)
        arr = np.ascontiguousarray(array)
        self.initializers.append(self.numpy_helper.from_array(arr, name))
        return name

    def shape_const(self, dims: tuple[int, ...]) -> str:
        """An ``int64`` initializer ``dims`` (shapes, axes, pads), one per distinct tuple."""
        dims = tuple(int(d) for d in dims)
        if dims not in self._shapes:
            self._shapes[dims] = self.const(np.array(dims, dtype=np.int64), "dims")
        return self._shapes[dims]

    def node(self, op: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        """Append one node ``op(inputs)`` with attributes ``attrs``; returns its output
        name (the node is named like it)."""
        out = self.fresh(hint)
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def cast(self, value: Value, dtype: np.dtype | type) -> Value:
        """``value`` as ``dtype`` (itself when it already is; one shared ``Cast`` node per
        value and type). The bound is kept (a cast to a type that holds the values)."""
        dtype = np.dtype(dtype)
        if value.dtype == dtype:
            return value
        key = (value.name, dtype.str)
        if key not in self._casts:
            name = self.node("Cast", [value.name], f"{value.name}_as_{dtype.name}",
                             to=self.elem_type(dtype))
            bound = value.bound if np.issubdtype(dtype, np.integer) or dtype == BOOL else None
            self._casts[key] = Value(name, dtype, value.shape, bound)
        return self._casts[key]

    def add_bias(self, y: str, bias: np.ndarray, dtype: np.dtype, hint: str,
                 trailing: int = 0) -> str:
        """``y + bias`` (the bias as ``dtype``, shaped ``(C, 1, ..., 1)`` with ``trailing``
        ones so that it broadcasts over the spatial axes); ``y`` itself when the bias is all
        zeros and ``dtype`` is an integer type (adding zero changes no integer)."""
        b = np.asarray(bias)
        if np.issubdtype(dtype, np.integer) and not np.any(b):
            return y
        b = b.astype(dtype).reshape(len(b), *([1] * trailing))
        return self.node("Add", [y, self.const(b, f"{hint}_bias")], f"{hint}_add")
