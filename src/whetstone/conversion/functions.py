"""The converters of functions and tensor methods in a traced ``forward`` (registered in
:data:`~whetstone.conversion.registry.FUNCTION_CONVERTERS`):

======================================================  ====================================
traced node                                             runtime primitive
======================================================  ====================================
``a + b``, ``torch.add(a, b)``, ``a.add(b)``, ``+=``    ``Add`` reading ``a`` and ``b``
                                                        (two tensors of equal shape)
``torch.cat([a, b, ...], dim=1)``                       ``Concat`` (channels / features)
``torch.flatten(x, 1)``, ``x.flatten(1)``               ``Flatten``
``x.view(x.size(0), -1)``, ``x.reshape(-1, D)``, ...    ``Flatten`` (a view to ``(N, D)``)
``F.adaptive_avg_pool2d(x, s)``                         ``SumPool2d`` (fixed windows)
``x.mean((2, 3))``, ``torch.mean(x, (-2, -1))``         ``SumPool2d`` over the whole map,
                                                        then ``Flatten`` (unless keepdim)
``x.size(0)``, ``x.shape[0]``, ``x.contiguous()``       nothing (batch size, the same value)
======================================================  ====================================

A converter gets the node, its arguments (traced tensors as
:class:`~whetstone.conversion.graph.Value`), the state and the node's name; it returns
the node's value. Anything else in a ``forward`` is refused, naming the node.
"""

from __future__ import annotations

import builtins
import operator
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx

from ..runtime import Add, Concat, Flatten
from .graph import BatchSize, ShapeOf, Value, describe, numel
from .layers import adaptive_avg_pool
from .registry import ConversionError, ConversionState, register_function_converter


def _arg(args: Sequence[Any], kwargs: dict[str, Any], i: int, key: str, default: Any) -> Any:
    return args[i] if len(args) > i else kwargs.get(key, default)


def _tensor(node: fx.Node, value: Any, what: str) -> Value:
    if not isinstance(value, Value):
        raise ConversionError(f"{describe(node)}: {what} must be a traced tensor, got "
                              f"{type(value).__name__} {value!r}")
    return value


@register_function_converter(operator.add, operator.iadd, torch.add, "add")
def add(node: fx.Node, args: Sequence[Any], kwargs: dict[str, Any], state: ConversionState,
        name: str) -> Value:
    """``Add(a, b)``: the elementwise sum of two tensors of equal shape."""
    extra = {k: v for k, v in kwargs.items() if k not in ("other", "input")}
    if extra.get("alpha", 1) != 1 or set(extra) - {"alpha"}:
        raise ConversionError(f"{describe(node)}: arguments {sorted(extra)} are not supported "
                              "(a plain sum a + b only)")
    if len(args) + len(set(kwargs) & {"other", "input"}) != 2:
        raise ConversionError(f"{describe(node)}: expected two operands")
    a = _arg(args, kwargs, 0, "input", None)
    b = _arg(args, kwargs, 1, "other", None)
    if not (isinstance(a, Value) and isinstance(b, Value)):
        raise ConversionError(
            f"{describe(node)}: adds {type(a).__name__} and {type(b).__name__}; only the sum "
            "of two traced tensors converts (fold a constant into the bias of a layer)")
    if a.shape != b.shape:
        raise ConversionError(f"{describe(node)}: adds shapes {a.shape} and {b.shape}; only "
                              "equal shapes convert (no broadcasting)")
    index = state.emit(Add(), name, binary=False, sources=(a.index, b.index))
    return Value(index, False, a.shape)


@register_function_converter(torch.cat, torch.concat, torch.concatenate)
def cat(node: fx.Node, args: Sequence[Any], kwargs: dict[str, Any], state: ConversionState,
        name: str) -> Value:
    """``Concat`` of two or more tensors along ``dim=1`` (channels / features)."""
    tensors = _arg(args, kwargs, 0, "tensors", None)
    dim = _arg(args, kwargs, 1, "dim", kwargs.get("axis", 0))
    if not isinstance(tensors, (list, tuple)) or not tensors:
        raise ConversionError(f"{describe(node)}: expected a list of tensors")
    values = [_tensor(node, t, "every concatenated value") for t in tensors]
    ndim = len(values[0].shape) + 1
    if not isinstance(dim, int) or dim % ndim != 1:
        raise ConversionError(f"{describe(node)}: concatenation along dim {dim!r}; only dim=1 "
                              "(channels / features, after the batch) converts")
    if len(values) == 1:
        return values[0]
    binary = all(v.binary for v in values)
    index = state.emit(Concat(), name, binary=binary, sources=[v.index for v in values])
    shape = state.shapes[index]
    assert shape is not None
    return Value(index, binary, shape)


def _flatten(node: fx.Node, x: Value, state: ConversionState, name: str) -> Value:
    index = state.emit(Flatten(), name, sources=(x.index,))
    return Value(index, x.binary, (numel(x.shape),))


@register_function_converter(torch.flatten, "flatten")
def flatten(node: fx.Node, args: Sequence[Any], kwargs: dict[str, Any],
            state: ConversionState, name: str) -> Value:
    """``Flatten`` for ``start_dim=1, end_dim=-1`` (everything after the batch)."""
    x = _tensor(node, _arg(args, kwargs, 0, "input", None), "the input")
    start = _arg(args, kwargs, 1, "start_dim", 0)
    end = _arg(args, kwargs, 2, "end_dim", -1)
    ndim = len(x.shape) + 1
    if start != 1 or end % ndim != ndim - 1:
        raise ConversionError(f"{describe(node)}: flatten({start}, {end}); only flatten(x, 1) "
                              "(everything after the batch) converts")
    return _flatten(node, x, state, name)


@register_function_converter("view", "reshape", torch.reshape)
def view(node: fx.Node, args: Sequence[Any], kwargs: dict[str, Any], state: ConversionState,
         name: str) -> Value:
    """``Flatten`` for a view / reshape to ``(N, D)``: sizes ``(x.size(0), -1)``,
    ``(x.size(0), D)`` or ``(-1, D)`` with ``D`` the number of elements per sample."""
    x = _tensor(node, _arg(args, kwargs, 0, "input", None), "the input")
    sizes = list(args[1:]) if len(args) > 1 else list(kwargs.get("shape", ()))
    if len(sizes) == 1 and isinstance(sizes[0], (list, tuple)):
        sizes = list(sizes[0])
    d = numel(x.shape)
    ok = len(sizes) == 2 and (
        (isinstance(sizes[0], BatchSize) and sizes[1] in (-1, d))
        or (sizes[0] == -1 and sizes[1] == d))
    if not ok:
        raise ConversionError(
            f"{describe(node)}: {node.target}{tuple(sizes)} is not a flatten; only views to "
            f"(N, {d}) convert: x.view(x.size(0), -1), x.view(-1, {d}), x.reshape(...)")
    return _flatten(node, x, state, name)


@register_function_converter("size")
def size(node: fx.Node, args: Sequence[Any], kwargs: dict[str, Any], state: ConversionState,
         name: str) -> Any:
    """``x.size(0)``: the batch size; ``x.size(d)``: the known size; ``x.size()``: the shape."""
    x = _tensor(node, args[0], "the input")
    dim = _arg(args, kwargs, 1, "dim", None)
    if dim is None:
        return ShapeOf(x)
    return _index_shape(node, x, dim)


def _index_shape(node: fx.Node, x: Value, dim: Any) -> Any:
    ndim = len(x.shape) + 1
    if not isinstance(dim, int) or not -ndim <= dim < ndim:
        raise ConversionError(f"{describe(node)}: index {dim!r} of a {ndim}-d shape")
    dim %= ndim
    return BatchSize() if dim == 0 else x.shape[dim - 1]


@register_function_converter(builtins.getattr)
def get_attribute(node: fx.Node, args: Sequence[Any], kwargs: dict[str, Any],
                  state: ConversionState, name: str) -> Any:
    """``x.shape``."""
    x, attr = args[0], args[1]
    if isinstance(x, Value) and attr == "shape":
        return ShapeOf(x)
    raise ConversionError(f"{describe(node)}: attribute {attr!r} of {type(x).__name__} is not "
                          "supported (only x.shape)")


@register_function_converter(operator.getitem)
def get_item(node: fx.Node, args: Sequence[Any], kwargs: dict[str, Any],
             state: ConversionState, name: str) -> Any:
    """``x.shape[i]``; indexing a tensor is refused."""
    obj, index = args[0], args[1]
    if isinstance(obj, ShapeOf):
        return _index_shape(node, obj.value, index)
    raise ConversionError(f"{describe(node)}: indexing {type(obj).__name__} is not supported "
                          "(slicing tensors has no spiking primitive)")


@register_function_converter("contiguous")
def same(node: fx.Node, args: Sequence[Any], kwargs: dict[str, Any], state: ConversionState,
         name: str) -> Value:
    """The same values: nothing to emit."""
    return _tensor(node, args[0], "the input")


@register_function_converter(F.adaptive_avg_pool2d)
def adaptive_avg_pool2d(node: fx.Node, args: Sequence[Any], kwargs: dict[str, Any],
                        state: ConversionState, name: str) -> Value:
    """``SumPool2d`` over fixed windows (see :func:`~.layers.adaptive_avg_pool`)."""
    x = _tensor(node, _arg(args, kwargs, 0, "input", None), "the input")
    state.current, state.binary = x.index, x.binary
    adaptive_avg_pool(state, describe(node), name, _arg(args, kwargs, 1, "output_size", None))
    shape = state.shape
    assert shape is not None
    return Value(state.current, False, shape)


@register_function_converter(torch.mean, "mean")
def mean(node: fx.Node, args: Sequence[Any], kwargs: dict[str, Any], state: ConversionState,
         name: str) -> Value:
    """The mean over the spatial axes ``(2, 3)`` of ``(N, C, H, W)``: global average
    pooling, ``SumPool2d`` over the whole map then ``Flatten`` (``keepdim=False``)."""
    x = _tensor(node, _arg(args, kwargs, 0, "input", None), "the input")
    dims = _arg(args, kwargs, 1, "dim", None)
    keepdim = _arg(args, kwargs, 2, "keepdim", False)
    dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
    if len(x.shape) != 3 or sorted(d % 4 for d in dims) != [2, 3] or kwargs.get("dtype"):
        raise ConversionError(f"{describe(node)}: only the mean over the spatial axes (2, 3) "
                              "of (N, C, H, W) converts (global average pooling)")
    state.current, state.binary = x.index, x.binary
    adaptive_avg_pool(state, describe(node), name, 1)
    pooled = Value(state.current, False, (x.shape[0], 1, 1))
    return pooled if keepdim else _flatten(node, pooled, state, name)
