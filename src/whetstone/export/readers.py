"""The NIR readers: one function per NIR node type, in a table users can extend.

:func:`~whetstone.export.nir_graph.from_graph` reads every node (other than ``Input``,
``Output`` and a ``Scale`` after a pooling, which it handles itself) with the reader
registered for its type name in :data:`NIR_READERS`. A reader gets the node and a
:class:`NodeContext` (the node's marks, whether the graph is whetstone's own, the
importer's comparison ``fires_on`` and the graph's ``dt``) and returns the runtime
primitive; it raises ``ValueError`` (named with the node by the caller) for a node it
cannot read exactly::

    from whetstone.export import register_nir_reader

    @register_nir_reader("Delay")
    def _(node, ctx):
        ...
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..runtime import Affine, Conv2d, Decode, Flatten, Primitive, SumPool2d, Threshold
from .writers import DECODE_MARK, exported_threshold


@dataclass(frozen=True)
class NodeContext:
    """What a reader needs besides the node: its marks ``meta`` (node and graph metadata
    together), ``ours`` (the graph was written by whetstone), the comparison ``fires_on``
    (``">"`` or ``">="``) of the file's target and its ``dt`` (``None`` if unrecorded)."""

    meta: dict[str, Any]
    ours: bool
    fires_on: str
    dt: float | None


Reader = Callable[[Any, NodeContext], Primitive]
"""``reader(node, context) -> primitive``."""

NIR_READERS: dict[str, Reader] = {}
"""NIR node type name (``type(node).__name__``) -> reader; fill with
:func:`register_nir_reader`."""

_R = TypeVar("_R", bound=Reader)


def register_nir_reader(*node_types: str) -> Callable[[_R], _R]:
    """Decorator: register the function as the reader of the NIR node types named."""
    if not node_types or not all(isinstance(t, str) and t for t in node_types):
        raise TypeError("register_nir_reader takes one or more NIR node type names")

    def decorate(fn: _R) -> _R:
        for node_type in node_types:
            NIR_READERS[node_type] = fn
        return fn

    return decorate


def read_node(node: Any, kind: str, ctx: NodeContext) -> Primitive:
    """The primitive of one NIR node of type ``kind`` (``ValueError`` when no reader is
    registered for it)."""
    reader = NIR_READERS.get(kind)
    if reader is None:
        raise ValueError("node type not supported")
    return reader(node, ctx)


def restored_threshold(v_threshold: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`exported_threshold`: ``nextafter(float32(theta'), +inf)``."""
    t32 = np.asarray(v_threshold, dtype=np.float32)
    return np.nextafter(t32, np.float32(np.inf)).astype(np.float32)


def scalar_if_uniform(arr: np.ndarray) -> np.ndarray:
    flat = np.asarray(arr).reshape(-1)
    return flat[:1].reshape(()) if flat.size and np.all(flat == flat[0]) else np.asarray(arr)


def regroup(weight: np.ndarray, groups: int) -> np.ndarray:
    """Inverse of :func:`~whetstone.export.writers.ungroup` (checks the off-block weights
    are zero)."""
    if groups == 1:
        return weight
    cout, cin = weight.shape[:2]
    if cout % groups or cin % groups:
        raise ValueError(f"{cout} x {cin} channels not divisible into {groups} groups")
    og, cg = cout // groups, cin // groups
    blocks = [weight[i * og:(i + 1) * og, i * cg:(i + 1) * cg] for i in range(groups)]
    if np.count_nonzero(weight) != sum(np.count_nonzero(b) for b in blocks):
        raise ValueError(f"weight is not block diagonal for {groups} groups")
    return np.concatenate(blocks, axis=0)


def ints(value: Any, n: int) -> tuple[int, ...]:
    arr = np.asarray(value).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, n)
    return tuple(int(v) for v in arr)


def node_meta(node: Any) -> dict[str, Any]:
    meta = getattr(node, "metadata", None)
    return meta if isinstance(meta, dict) else {}


def theta_of(node: Any, v_threshold: np.ndarray, ours: bool, fires_on: str) -> np.ndarray:
    thr = np.asarray(v_threshold)
    meta = node_meta(node)
    written = exported_threshold if fires_on == ">" else (
        lambda t: np.asarray(t, dtype=np.float32))
    exact = meta.get("whetstone_theta")
    if exact is not None and "whetstone_theta_shape" in meta:
        exact = np.asarray(exact).reshape(json.loads(str(meta["whetstone_theta_shape"])))
        if np.array_equal(np.broadcast_to(written(exact), thr.shape), thr.astype(np.float32)):
            return exact
    if ours and fires_on == ">=":
        return scalar_if_uniform(thr.astype(np.float32))
    if ours:
        return scalar_if_uniform(restored_threshold(thr))
    # a foreign graph: NIR's v > v_threshold, exactly, in float64
    return scalar_if_uniform(np.nextafter(thr.astype(np.float64), np.inf))


def neuron(node: Any, kind: str, ours: bool, fires_on: str, dt: float | None) -> Threshold:
    """``Threshold(theta)`` for a neuron node run one step of ``dt`` from ``v = 0``, which
    must give ``v = x``: ``IF`` with ``r = 1 / dt``, ``LIF`` with ``tau = dt`` and ``r = 1``
    (without a ``dt`` in the graph metadata: ``IF`` with ``r = 1``; ``LIF`` with ``r = 1``,
    read as ``dt = tau``)."""
    if kind == "Threshold":
        return Threshold(theta_of(node, node.threshold, ours, fires_on))
    r = np.asarray(node.r)
    if kind == "IF":
        want = np.float32(1.0) if dt is None else np.float32(1.0 / dt)
        if not np.all(r.astype(np.float32) == want):
            raise ValueError(f"IF with r != 1 / dt = {want} is not supported (one step of dt "
                             "must give v = x)")
    else:
        if not np.all(r == 1):
            raise ValueError("LIF with r != 1 is not supported (one step needs v = x)")
        if not np.all(np.asarray(node.v_leak) == 0):
            raise ValueError("LIF with v_leak != 0 is not supported")
        if dt is not None and not np.all(np.asarray(node.tau).astype(np.float32)
                                         == np.float32(dt)):
            raise ValueError(f"LIF with tau != dt = {dt} is not supported (one step of dt "
                             "must give v = x)")
    return Threshold(theta_of(node, node.v_threshold, ours, fires_on))


def pool_from_conv(node: Any, meta: dict[str, Any]) -> SumPool2d:
    """The sum pooling a ``Conv2d`` marked ``whetstone_primitive = SumPool2d`` stands for
    (checks the ones-on-the-diagonal kernel and the zero bias)."""
    weight, bias = np.asarray(node.weight), np.asarray(node.bias)
    kernel = ints(meta.get("whetstone_kernel", weight.shape[2:]), 2)
    channels = weight.shape[0]
    expected = np.zeros((channels, channels, *kernel))
    for c in range(channels):
        expected[c, c] = 1.0
    if weight.shape != expected.shape or not np.array_equal(weight, expected) \
            or np.any(bias != 0):
        raise ValueError("marked as a SumPool2d but not a ones kernel on the channel diagonal "
                         "with zero bias")
    ph, pw = ints(node.padding, 2)
    return SumPool2d(kernel, ints(node.stride, 2), (ph, ph, pw, pw), 1.0)


@register_nir_reader("Affine")
def read_affine(node: Any, ctx: NodeContext) -> Primitive:
    """``Affine``; the one marked as the decode back to ``Decode(K)`` (checked)."""
    weight, bias = np.asarray(node.weight), np.asarray(node.bias)
    if ctx.meta.get("whetstone_primitive") == DECODE_MARK:
        decode = Decode((weight + 2.0) / 4.0)
        if not (np.array_equal(decode.weight, weight) and np.array_equal(decode.bias, bias)):
            raise ValueError("marked as a decode but not of the form 4K - 2, -(2K - 1).sum(1)")
        return decode
    return Affine(weight, bias)


@register_nir_reader("Linear")
def read_linear(node: Any, ctx: NodeContext) -> Primitive:
    """``Linear``: an ``Affine`` with zero bias."""
    weight = np.asarray(node.weight)
    return Affine(weight, np.zeros(weight.shape[0], dtype=weight.dtype))


@register_nir_reader("Conv2d")
def read_conv2d(node: Any, ctx: NodeContext) -> Primitive:
    """``Conv2d`` (symmetric padding; groups restored from ``whetstone_groups``); one marked
    ``whetstone_primitive = SumPool2d`` back to that pooling."""
    if ctx.meta.get("whetstone_primitive") == "SumPool2d":
        return pool_from_conv(node, ctx.meta)
    if isinstance(node.padding, str):
        raise ValueError(f"string padding {node.padding!r} is not supported")
    ph, pw = ints(node.padding, 2)
    groups = int(node.groups)
    weight = np.asarray(node.weight)
    regroup_to = int(ctx.meta.get("whetstone_groups", 1))
    if groups == 1 and regroup_to > 1:
        weight, groups = regroup(weight, regroup_to), regroup_to
    return Conv2d(weight, np.asarray(node.bias), stride=ints(node.stride, 2),
                  padding=(ph, ph, pw, pw), dilation=ints(node.dilation, 2), groups=groups)


@register_nir_reader("SumPool2d", "AvgPool2d")
def read_pool(node: Any, ctx: NodeContext) -> Primitive:
    """``SumPool2d`` (scale 1) or ``AvgPool2d`` (scale ``1 / (kh kw)``)."""
    kernel = ints(node.kernel_size, 2)
    ph, pw = ints(node.padding, 2)
    scale = 1.0 if type(node).__name__ == "SumPool2d" else 1.0 / (kernel[0] * kernel[1])
    return SumPool2d(kernel, ints(node.stride, 2), (ph, ph, pw, pw), scale)


@register_nir_reader("Flatten")
def read_flatten(node: Any, ctx: NodeContext) -> Primitive:
    """``Flatten`` of the whole batch-free shape (``start_dim`` 0 or ``-ndim``)."""
    in_shape = node.input_type.get("input")
    ndim = None if in_shape is None else len(np.asarray(in_shape))
    start, end = int(node.start_dim), int(node.end_dim)
    if start not in (0, -(ndim or 0)) or end not in (-1, (ndim or 0) - 1):
        raise ValueError(f"only a Flatten of the whole batch-free shape (start_dim 0 or "
                         f"-ndim, end_dim -1 or ndim - 1) is supported, got ({start}, {end})")
    return Flatten()


@register_nir_reader("Threshold", "IF", "LIF")
def read_neuron(node: Any, ctx: NodeContext) -> Primitive:
    """A neuron node run one step from ``v = 0`` (:func:`neuron`)."""
    return neuron(node, type(node).__name__, ctx.ours, ctx.fires_on, ctx.dt)
