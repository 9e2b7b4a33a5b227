"""The NIR writers: one function per runtime primitive, in a table users can extend.

:func:`~whetstone.export.nir_graph.to_graph` walks the network and, for every primitive,
calls the writer registered for its type in :data:`NIR_WRITERS`. A writer adds the
primitive's node(s) to the :class:`GraphBuilder` and returns the names of the node that
receives the primitive's input and of the node that carries its output (the same node
unless it wrote a short chain, as a scaled ``SumPool2d`` does: ``SumPool2d -> Scale``). The
structural primitives ``Add`` (its sources' edges go to its readers: NIR sums a node's
incoming edges), ``Concat`` (no node: its ``Affine`` / ``Conv2d`` readers are written as one
node per part, with this table's writers) and a trailing ``Unflatten`` (no node; restored
from the graph metadata) are handled by ``to_graph`` itself. A primitive with no writer is
refused with :class:`~whetstone.export.errors.NIRExportError`, giving the reason from
:data:`NOT_EXPORTABLE` where there is one::

    from whetstone.export import register_nir_writer

    @register_nir_writer(MyPrimitive)
    def _(builder, spec):
        builder.add(spec.name, builder.nir.Affine(weight=..., bias=...), spec.mark)
        return spec.name, spec.name
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from ..runtime import (
    Affine,
    Conv2d,
    Decode,
    Flatten,
    Primitive,
    SumPool2d,
    Threshold,
    Upsample2d,
)
from .errors import NIRExportError
from .targets import Target

NEURON_FORMS: tuple[str, ...] = ("if", "threshold", "lif")
"""The neuron node forms :func:`~whetstone.export.to_nir` writes (see its module doc)."""

DECODE_MARK = "Decode"
"""``whetstone_primitive`` of the ``Affine`` node that is the network's decode."""

NODE_METADATA = frozenset({"Affine", "SumPool2d", "Flatten", "IF", "LIF", "Threshold"})
"""Node types that have ``metadata`` in every nir from 1.0.4 on; the marks of the others
go to the graph metadata ``whetstone_nodes`` (JSON, node name -> marks)."""


@dataclass
class GraphBuilder:
    """The NIR graph being written: the ``nir`` module, the target's settings, the neuron
    form and its ``dt``, the nodes, the edges, the node marks kept in the graph metadata
    (``side``) and the class key of a decode."""

    nir: Any
    settings: Target
    neuron: str
    dt: float
    nodes: dict[str, Any] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    side: dict[str, dict[str, Any]] = field(default_factory=dict)
    key: np.ndarray | None = None

    def add(self, name: str, node: Any, meta: dict[str, Any] | None = None) -> None:
        """Add ``node`` as ``name`` with the marks ``meta`` (on the node where its type has
        metadata in nir 1.0.4, else in :attr:`side`: a file with metadata on the other
        node types does not load there)."""
        if meta and type(node).__name__ in NODE_METADATA:
            node.metadata.update(meta)
        elif meta:
            self.side[name] = meta
        self.nodes[name] = node


@dataclass(frozen=True)
class NodeSpec:
    """One primitive to write: its ``index`` and ``layer``, the node ``name`` to use
    (``"{index}_{kind}"``), its batch-free input ``shape`` and output shape ``out``,
    ``where`` (for messages) and the readout ``mark`` for its node (empty unless it is the
    network's readout)."""

    index: int
    layer: Primitive
    name: str
    shape: tuple[int, ...]
    out: tuple[int, ...]
    where: str
    mark: dict[str, Any]


Writer = Callable[[GraphBuilder, NodeSpec], tuple[str, str]]
"""``writer(builder, spec) -> (entry node, exit node)``."""

NIR_WRITERS: dict[type[Primitive], Writer] = {}
"""Primitive type -> writer; fill with :func:`register_nir_writer`."""

NOT_EXPORTABLE: dict[type[Primitive], str] = {
    Upsample2d: "NIR 1.0 has no node for nearest-neighbour upsampling, so this network "
                "cannot be exported to NIR",
}
"""Why a primitive with no writer has none (the refusal's message)."""

_W = TypeVar("_W", bound=Writer)


def register_nir_writer(*primitive_types: type[Primitive]) -> Callable[[_W], _W]:
    """Decorator: register the function as the NIR writer of ``primitive_types``."""
    if not primitive_types or not all(isinstance(t, type) and issubclass(t, Primitive)
                                      for t in primitive_types):
        raise TypeError("register_nir_writer takes one or more runtime Primitive subclasses")

    def decorate(fn: _W) -> _W:
        for primitive_type in primitive_types:
            NIR_WRITERS[primitive_type] = fn
        return fn

    return decorate


def compact(arr: np.ndarray) -> np.ndarray:
    """``arr`` as float32 when that is lossless, else float64 (a writable copy)."""
    arr = np.asarray(arr)
    as32 = arr.astype(np.float32)
    if np.array_equal(as32.astype(arr.dtype), arr):
        return as32
    return arr.astype(np.float64)


def exported_threshold(theta: np.ndarray | float) -> np.ndarray:
    """``theta' = nextafter(float32(theta), -inf)``: for float32 ``v``,
    ``v > theta'`` iff ``v >= float32(theta)`` (ties of whetstone's ``>=`` fire under NIR's
    ``>``)."""
    t32 = np.asarray(theta, dtype=np.float32)
    return np.nextafter(t32, np.float32(-np.inf)).astype(np.float32)


def neuron_node(nir: Any, theta: np.ndarray, shape: tuple[int, ...], neuron: str,
                 dt: float, fires_on: str) -> Any:
    """One neuron node for ``Threshold(theta)`` over the batch-free ``shape``: ``IF(r =
    1 / dt)``, ``LIF(tau = dt, r = 1, v_leak = 0)`` or ``Threshold``, with ``v_threshold``
    for an importer firing on ``fires_on`` (see :mod:`whetstone.export.targets`). No
    ``v_reset``: 0 is NIR's default and nir 1.0.4 has no such field."""
    if fires_on == ">=":
        thr = np.ascontiguousarray(np.broadcast_to(np.asarray(theta, dtype=np.float32), shape))
    else:
        thr = np.ascontiguousarray(np.broadcast_to(exported_threshold(theta), shape))
    # HDF5 cannot compress 0-d datasets: theta goes flat, its shape as JSON
    meta = {"whetstone_primitive": "Threshold",
            "whetstone_theta": np.array(theta, copy=True).reshape(-1),
            "whetstone_theta_shape": json.dumps(list(np.shape(theta)))}
    ones = np.ones(shape, dtype=np.float32)
    if neuron == "threshold":
        return nir.Threshold(threshold=thr, metadata=meta)
    if neuron == "if":
        return nir.IF(r=np.full(shape, 1.0 / dt, dtype=np.float32), v_threshold=thr,
                      metadata=meta)
    if neuron == "lif":
        return nir.LIF(tau=np.full(shape, dt, dtype=np.float32), r=ones,
                       v_leak=np.zeros(shape, dtype=np.float32), v_threshold=thr, metadata=meta)
    raise ValueError(f"neuron must be one of {NEURON_FORMS}, got {neuron!r}")


def symmetric(padding: tuple[int, int, int, int], where: str) -> np.ndarray:
    top, bottom, left, right = padding
    if top != bottom or left != right:
        raise ValueError(f"{where}: padding {padding} (top, bottom, left, right) is asymmetric; "
                         "NIR 1.0 pads both sides of a dimension equally")
    return np.array([top, left], dtype=np.int64)


def ungroup(conv: Conv2d) -> np.ndarray:
    """The grouped weight ``(Cout, Cin / G, kh, kw)`` as the equivalent dense weight
    ``(Cout, Cin, kh, kw)``, zero outside the diagonal blocks:
    ``W'[o, g(o) Cin / G + c] = W[o, c]``.

    nir 1.0.x derives a Conv2d's input channels from ``weight.shape[1]``, ignoring
    ``groups``, so a grouped node fails NIR's own type check on write and on read.
    """
    g = conv.groups
    if g == 1:
        return conv.weight
    cout, cg, kh, kw = conv.weight.shape
    og = cout // g
    dense = np.zeros((cout, cg * g, kh, kw), dtype=conv.weight.dtype)
    for i in range(g):
        dense[i * og:(i + 1) * og, i * cg:(i + 1) * cg] = conv.weight[i * og:(i + 1) * og]
    return dense


def is_average(pool: SumPool2d) -> bool:
    """Whether ``pool`` is an average pooling (``scale = 1 / (kh kw)``, kernel not 1x1)."""
    return pool.scale == 1.0 / (pool.kernel[0] * pool.kernel[1]) and pool.scale != 1.0


def pool_as_conv(pool: SumPool2d, channels: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Weight ``(C, C, kh, kw)`` (ones on the channel diagonal) and zero bias of the
    ``Conv2d`` that computes the sum pooling ``pool`` (scale 1): exact on spikes, where every
    product is 0 or 1 and every partial sum an integer."""
    if pool.scale != 1.0:
        raise NIRExportError(f"{where}: a pooling with scale {pool.scale} has no exact "
                             "Conv2d form; this target maps no SumPool2d or Scale node")
    weight = np.zeros((channels, channels, *pool.kernel), dtype=np.float32)
    for c in range(channels):
        weight[c, c] = 1.0
    return weight, np.zeros(channels, dtype=np.float32)


@register_nir_writer(Affine)
def write_affine(builder: GraphBuilder, spec: NodeSpec) -> tuple[str, str]:
    """``Affine(weight=W, bias=b)``: ``y = W x + b``."""
    layer = spec.layer
    builder.add(spec.name, builder.nir.Affine(weight=compact(layer.weight),
                                              bias=compact(layer.bias)), spec.mark)
    return spec.name, spec.name


@register_nir_writer(Decode)
def write_decode(builder: GraphBuilder, spec: NodeSpec) -> tuple[str, str]:
    """The decode ``(4K - 2) a - (2K - 1).sum(1)`` as a marked ``Affine``; ``K`` also goes
    to the graph metadata."""
    layer = spec.layer
    builder.key = np.array(layer.key, copy=True)
    builder.add(spec.name, builder.nir.Affine(weight=compact(layer.weight),
                                              bias=compact(layer.bias)),
                {"whetstone_primitive": DECODE_MARK, **spec.mark})
    return spec.name, spec.name


@register_nir_writer(Conv2d)
def write_conv2d(builder: GraphBuilder, spec: NodeSpec) -> tuple[str, str]:
    """``Conv2d`` (symmetric padding; groups written as the dense block-diagonal weight,
    restored from ``whetstone_groups``)."""
    layer, shape = spec.layer, spec.shape
    builder.add(spec.name, builder.nir.Conv2d(
        input_shape=(shape[1], shape[2]), weight=compact(ungroup(layer)),
        stride=np.array(layer.stride, dtype=np.int64),
        padding=symmetric(layer.padding, spec.where),
        dilation=np.array(layer.dilation, dtype=np.int64),
        groups=1, bias=compact(layer.bias)),
        {**({"whetstone_groups": int(layer.groups)} if layer.groups > 1 else {}), **spec.mark})
    return spec.name, spec.name


@register_nir_writer(SumPool2d)
def write_sum_pool2d(builder: GraphBuilder, spec: NodeSpec) -> tuple[str, str]:
    """``SumPool2d``; an average (``scale = 1 / (kh kw)``) as ``AvgPool2d``; another scale
    as ``SumPool2d -> Scale``; for a target that maps no pooling node (``pool == "conv"``)
    a sum pooling as the equivalent ``Conv2d``."""
    layer, shape, name, nir = spec.layer, spec.shape, spec.name, builder.nir
    if builder.settings.pool == "conv" and not is_average(layer):
        weight, bias = pool_as_conv(layer, shape[0], spec.where)
        builder.add(name, nir.Conv2d(
            input_shape=(shape[1], shape[2]), weight=weight,
            stride=np.array(layer.stride, dtype=np.int64),
            padding=symmetric(layer.padding, spec.where),
            dilation=np.array([1, 1], dtype=np.int64), groups=1, bias=bias),
            {"whetstone_primitive": "SumPool2d", "whetstone_kernel": list(layer.kernel),
             **spec.mark})
        return name, name
    kernel = np.array(layer.kernel, dtype=np.int64)
    stride = np.array(layer.stride, dtype=np.int64)
    padding = symmetric(layer.padding, spec.where)
    if is_average(layer):
        builder.add(name, nir.AvgPool2d(kernel_size=kernel, stride=stride, padding=padding),
                    spec.mark)
        return name, name
    if layer.scale == 1.0:
        builder.add(name, nir.SumPool2d(kernel_size=kernel, stride=stride, padding=padding),
                    spec.mark)
        return name, name
    builder.add(name, nir.SumPool2d(kernel_size=kernel, stride=stride, padding=padding))
    builder.add(f"{name}_scale", nir.Scale(scale=np.full(spec.out, layer.scale,
                                                         dtype=np.float64)), spec.mark)
    builder.edges.append((name, f"{name}_scale"))
    return name, f"{name}_scale"


@register_nir_writer(Flatten)
def write_flatten(builder: GraphBuilder, spec: NodeSpec) -> tuple[str, str]:
    """``Flatten(start_dim=-n, end_dim=-1)``: the batch-free node of ``start_dim=0``, and a
    batch-safe ``torch.nn.Flatten(-n, -1)`` in the importers."""
    builder.add(spec.name, builder.nir.Flatten(input_type={"input": np.array(spec.shape)},
                                               start_dim=-len(spec.shape), end_dim=-1))
    return spec.name, spec.name


@register_nir_writer(Threshold)
def write_threshold(builder: GraphBuilder, spec: NodeSpec) -> tuple[str, str]:
    """One neuron node of the builder's form (:func:`neuron_node`), named
    ``"{index}_{form}"``."""
    node = neuron_node(builder.nir, spec.layer.theta, spec.shape, builder.neuron, builder.dt,
                       builder.settings.fires_on)
    node.metadata.update(spec.mark)
    name = f"{spec.index}_{builder.neuron}"
    builder.add(name, node)
    return name, name
