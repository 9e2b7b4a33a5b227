"""Export a :class:`~whetstone.runtime.SpikingNetwork` to NIR and read it back.

NIR (the Neuromorphic Intermediate Representation, ``nir`` 1.0.x on PyPI) is a graph of
nodes with batch-free shapes, stored as HDF5. Files are written in ``nir.write``'s layout by
:func:`write_graph`, which leaves out fields at their defaults that nir 1.0.4 rejects
(``v_reset = 0``), and node metadata only on the node types that have it in nir 1.0.4
(``Affine``, ``SumPool2d``, ``Flatten``, ``IF``, ``LIF``, ``Threshold``; the marks of a
``Conv2d``, ``AvgPool2d`` or ``Scale`` go to the graph metadata ``whetstone_nodes``), so
nir 1.0.4 (Sinabs 3.1.3, Rockpool) through 1.0.8 read every file, and the exporter itself
runs under both. Each file is written for a ``target`` importer
(:mod:`whetstone.export.targets`). A chain exports as a chain::

    input -> [Affine | Conv2d | SumPool2d (+ Scale) | Flatten | neuron]* -> output

and a graph network (:attr:`~whetstone.runtime.SpikingNetwork.inputs`) with its edges: one
node per primitive reading its source's node. NIR sums the inputs arriving at a node, so an
``Add`` has no node of its own: each of its sources gets an edge into each reader of the
``Add`` (a residual ``Threshold(Add(a, b))`` is the neuron node with edges from ``a`` and
``b``; nested sums expand to all their terms). Reading, a node with several incoming edges
becomes an ``Add`` of its sources (in edge order) before it. ``Concat`` has no NIR 1.0 node
(a sum of edges cannot place values side by side), but a weighted layer reading a
concatenation is a sum: ``W [x_1; ...; x_k] + b = W_1 x_1 + ... + W_k x_k + b`` with ``W_m``
the columns (an ``Affine``'s) or input channels (a ``Conv2d``'s, grouped ones made dense)
of ``W`` that meet ``x_m``. So a ``Concat`` whose every reader is an ``Affine`` or a
``Conv2d`` (or another ``Concat``, expanded into its parts) has no node: each reader is
written as one node per part, ``"{j}_{kind}_{m}"`` with the weight slice ``W_m`` and the bias
on ``m = 0`` only (zero on the others), fed by that part, and their outputs are summed at the
reader's reader (NIR's rule); read back, that sum is an ``Add`` of the parts' layers (the
same function up to float rounding of the summation order). A ``Concat`` read by anything
else (a neuron, a pooling, ``Flatten``, ``Add``, ``Decode``), that is the network's output,
or whose reader is the readout, is refused, as is a sum naming the same node twice
(``a + a``: edges are a set).

Primitive by primitive:

========================  ================================================================
runtime primitive         NIR node(s)
========================  ================================================================
``Affine(W, b)``          ``Affine(weight=W, bias=b)``: ``y = W x + b``
``Conv2d``                ``Conv2d`` (symmetric padding ``(ph, pw)`` only; NIR 1.0 has no
                          per-side padding). Grouped convolutions are written as the
                          equivalent dense (block-diagonal) weight with ``groups=1``
                          (nir 1.0.x type-checks ``weight.shape[1]`` as the input
                          channels); ``whetstone_groups`` in the metadata restores them
``SumPool2d(scale=1)``    ``SumPool2d``; with ``scale = 1 / (kh kw)`` an ``AvgPool2d``;
                          any other scale ``SumPool2d -> Scale(s)``. For a target without
                          ``SumPool2d`` (SpikingJelly) a scale-1 pooling is a ``Conv2d``
                          with a ones kernel on the channel diagonal (exact on spikes),
                          marked ``whetstone_primitive = SumPool2d``; other scales refused
``Flatten``               ``Flatten(start_dim=-n, end_dim=-1)`` on the ``n``-d batch-free
                          shape: in NIR the same node as ``start_dim=0``, and the importers'
                          ``torch.nn.Flatten(-n, -1)`` keeps a leading batch dimension
``Threshold(theta)``      one neuron node, by ``neuron`` (below)
``Decode(K)``             ``Affine(weight=4K - 2, bias=-(2K - 1).sum(1))``, marked in the
                          node's metadata; ``K`` is also in the graph metadata
``Unflatten(sizes)``      last primitive(s) only: no node (NIR 1.0 has no reshape); the
                          graph ends with the flat output, the same values in C order,
                          and ``whetstone_unflatten`` in the graph metadata restores it
``Upsample2d``            refused (:class:`NIRExportError`): NIR 1.0 has no node for
                          nearest-neighbour upsampling
``Add``                   no node: the edges of its sources go to its readers
``Concat``                no node: each reader (``Affine`` / ``Conv2d`` only) is split
                          into one node per part, summed at the next node (above)
========================  ================================================================

Readouts. The network's readout (:attr:`~whetstone.runtime.SpikingNetwork.readout`) is an
ordinary node: a real-valued ``Affine`` or 1x1 ``Conv2d`` readout is NIR's ``Affine`` /
``Conv2d`` feeding the ``Output`` (its real values are the graph's output), the decode is
the marked ``Affine`` above, a spiking output ends with its neuron node. The readout node
carries ``whetstone_readout`` (its kind) in its metadata and the graph metadata has
``readout``; :func:`from_graph` checks the network it rebuilds has that readout. Which
networks export: every chain of ``Affine``, ``Conv2d`` (symmetric padding), pooling,
``Flatten``, ``Threshold`` and ``Decode``, optionally ending with ``Unflatten`` (dense
classifiers and CNNs, autoencoders, policies); not networks with ``Upsample2d`` (e.g. the
encoder-decoder segmentation networks) nor an ``Unflatten`` before further layers. (nir
1.0.8 has no upsampling, transposed-convolution or reshape node; upsampling written as a
0/1 ``Affine`` over the flattened map would need a reshape back to ``(C, H, W)`` for the
convolutions after it.)

Neuron forms (all evaluated for **one** forward-Euler time step of the file's ``dt``, the
graph metadata ``dt`` the target picks, from ``v = 0``; no ``v_reset``, NIR's default 0):

- ``"if"``: ``IF(r=1/dt, v_threshold=theta')``. One step of ``v <- v + dt r x`` from
  ``v = 0`` gives ``v = x`` and ``z = 1[v > theta']``.
- ``"threshold"`` (exact form; no importer maps it, whetstone's reader does):
  ``Threshold(theta')``, ``z = 1[x > theta']``.
- ``"lif"``: ``LIF(tau=dt, r=1, v_leak=0, v_threshold=theta')``: ``beta = 1 - dt / tau = 0``
  and the input scale ``r dt / tau = 1``, so one step from ``v = 0`` gives ``v = x``
  (snnTorch's importer fixes ``dt = 1e-4``, Norse's defaults to ``1e-3``: the target
  writes that ``dt``).

Threshold convention. Whetstone fires on ``x >= theta`` (ties fire); NIR's ``Threshold``,
``IF`` and ``LIF`` and the importers Norse (``heaviside(v - v_th) = 1[v - v_th > 0]``) and
snnTorch fire on ``v > v_threshold``. For them the exported threshold is

    ``theta' = nextafter(float32(theta), -inf)``   (computed in float32)

the largest float32 below ``theta``. For every float32 ``v``, ``v > theta'`` if and only if
``v >= float32(theta)``, so an importer computing in float32 fires exactly where we do, a
neuron sitting exactly on the threshold included. The exact ``theta`` (its own dtype and
shape) is kept in the neuron node's metadata (``whetstone_theta``) so :func:`from_nir`
restores it bit for bit; without it, ``theta = nextafter(theta', +inf)`` in float32.
SpikingJelly and Sinabs fire on ``v - v_threshold >= 0``: for those targets
(``fires_on = ">="`` in the graph metadata) ``v_threshold = float32(theta)`` itself, restored
as is. A graph not written by whetstone (no ``format`` metadata) is read with NIR's ``>``:
``theta = nextafter(float64(v_threshold), +inf)``, i.e. ``x > v_threshold`` in float64.

Arrays are written as float32 when that is lossless (converted networks are float32, and
the importers compute in float32), else in float64.

Graph metadata (``graph.metadata``, stored in the file): ``format`` (``"whetstone-nir"``),
``format_version``, ``time_steps`` (1), ``neuron``, ``target``, ``dt`` (the time step the
file assumes), ``loading`` (the loading call that works in the target's importer),
``fires_on`` (``">"`` or ``">="``), ``threshold_convention`` (the rule above, in words),
``readout`` (the network's readout kind), ``class_key`` (the ``(C, W)`` key, when the
network ends with a decode), ``whetstone_unflatten`` (JSON list of the trailing
``Unflatten`` sizes, when there are any), ``whetstone_nodes`` (JSON, node name -> marks, for
nodes without metadata in nir 1.0.4), ``input_shape`` and ``whetstone_metadata`` (the
network's own metadata as JSON). Reading, a neuron node must give ``v = x`` in one step of
the recorded ``dt`` (``IF`` ``r = 1 / dt``, ``LIF`` ``tau = dt``); without a ``dt``,
``IF`` needs ``r = 1``.
"""

from __future__ import annotations

import atexit
import heapq
import json
import os
import queue
import stat
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..runtime import (
    Add,
    Affine,
    Concat,
    Conv2d,
    Decode,
    Flatten,
    Primitive,
    SpikingNetwork,
    SumPool2d,
    Threshold,
    Unflatten,
)
from .errors import NIRExportError, NIRFileError
from .readers import NodeContext, node_meta, read_node
from .targets import Target, get_target
from .writers import (
    NEURON_FORMS,
    NIR_WRITERS,
    NOT_EXPORTABLE,
    GraphBuilder,
    NodeSpec,
    ungroup,
)

NeuronForm = Literal["if", "threshold", "lif"]

FORMAT = "whetstone-nir"
FORMAT_VERSION = 2
"""2: per-target files (``target``, ``dt``, ``fires_on``, ``whetstone_nodes``); 1 is still read."""
TIME_STEPS = 1

THRESHOLD_CONVENTION = (
    "whetstone fires on x >= theta; NIR nodes fire on v > v_threshold, so exported "
    "v_threshold = nextafter(float32(theta), -inf) in float32 (v > v_threshold <=> "
    "v >= theta for float32 v); exact theta in node metadata whetstone_theta"
)

THRESHOLD_CONVENTION_GE = (
    "whetstone fires on x >= theta; this target's importer fires on v >= v_threshold "
    "(Sinabs SingleSpike: v - v_threshold >= 0), so exported v_threshold = float32(theta); "
    "exact theta in node metadata whetstone_theta"
)



def _require_nir() -> Any:
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("NIR export needs the 'nir' package: pip install 'whetstone[nir]'"
                          ) from exc
    return nir


# ----------------------------------------------------------------------------- shapes
# (every primitive's output_shape; SpikingNetwork.shapes gives them for a whole network)

def _describe(net: SpikingNetwork, i: int) -> str:
    """A layer for a refusal: its kind, with its sources when it has several and its
    parameters otherwise (``"Upsample2d, scale (2, 2)"``, ``"Concat of layers [0, -1]"``)."""
    layer = net.layers[i]
    if layer.arity != 1:
        return f"{layer.kind} of layers {list(net.sources(i))}"
    params = ", ".join(f"{k} {tuple(v) if isinstance(v, list) else v}"
                       for k, v in layer.params().items())
    return f"{layer.kind}, {params}" if params else layer.kind


def _check_graph_support(net: SpikingNetwork, settings: Target) -> None:
    """Refuse a graph network the target's importer would compute wrong
    (:attr:`~whetstone.export.targets.Target.graphs`)."""
    if net.is_chain or settings.graphs == "any":
        return
    if settings.graphs == "chains":
        raise NIRExportError(
            f"target {settings.name!r}: graph networks (sums or concatenations of branches) "
            f"are not verified in {settings.importer}; export a chain, or use target "
            "'norse' (identity shortcuts) or 'generic'")
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Concat):
            raise NIRExportError(
                f"layer {i} ({_describe(net, i)}): a concatenation exports as a sum of one "
                f"weighted node per part, each a layer of its own, which {settings.importer} "
                "computes wrong (it evaluates nodes depth-first; measured: the imported "
                f"module returns a wrong output); target {settings.name!r} exports only "
                "sums where one source follows all the others; use target 'generic'")
    ancestors: dict[int, set[int]] = {-1: set()}
    for i in range(len(net.layers)):
        ancestors[i] = {s for j in net.sources(i) for s in (j, *ancestors[j])}
        srcs = net.sources(i)
        if len(srcs) < 2:
            continue
        if not any(all(o == s or o in ancestors[s] for o in srcs) for s in srcs):
            raise NIRExportError(
                f"layer {i} ({net.layers[i].kind} of layers {list(srcs)}): "
                f"{settings.importer} computes a sum of branches that each have their own "
                "layers wrong (it evaluates nodes depth-first, so one branch is not yet "
                f"computed when the sum is taken); target {settings.name!r} exports sums "
                "where one source follows all the others (an identity shortcut); use "
                "target 'generic' for this network")


def _concat_parts(net: SpikingNetwork, i: int) -> list[int]:
    """The sources of ``Concat`` layer ``i`` in order, nested ``Concat`` sources expanded
    into their own parts (recursively): the layers whose values lie side by side."""
    parts: list[int] = []
    for j in net.sources(i):
        if j >= 0 and isinstance(net.layers[j], Concat):
            parts += _concat_parts(net, j)
        else:
            parts.append(j)
    return parts


def _check_concats(net: SpikingNetwork) -> None:
    """Refuse a ``Concat`` that cannot be written as split weighted readers: one that is the
    network's output, or read by anything but an ``Affine``, a ``Conv2d`` or another
    ``Concat``, or whose reader is the readout (read back it would be a sum)."""
    readers: dict[int, list[int]] = {i: [] for i in range(len(net.layers))}
    for j in range(len(net.layers)):
        for s in net.sources(j):
            if s >= 0:
                readers[s].append(j)
    readout = net.readout_index
    for i, layer in enumerate(net.layers):
        if not isinstance(layer, Concat):
            continue
        what = f"layer {i} ({_describe(net, i)})"
        hint = ("NIR 1.0 has no concatenation node; a Concat exports only when every reader is "
                "an Affine or a Conv2d, whose weight is split into one node per part (the parts "
                "summed at the next node)")
        if i == len(net.layers) - 1 or not readers[i]:
            raise NIRExportError(f"{what}: {hint}, but it is the network's output")
        for j in readers[i]:
            reader = net.layers[j]
            if isinstance(reader, Concat):
                continue
            if not isinstance(reader, (Affine, Conv2d)):
                raise NIRExportError(f"{what}: {hint}, but layer {j} ({reader.kind}) reads it")
            if j == readout:
                raise NIRExportError(
                    f"{what}: {hint}, but its reader, layer {j} ({reader.kind}), is the "
                    f"network's readout, which would read back as a sum of its parts")


def _split_reader(layer: Primitive, offsets: list[tuple[int, int]]) -> list[Primitive]:
    """``layer`` (an ``Affine`` or ``Conv2d``) as one layer per input slice
    ``[start, stop)`` of its first input axis (an Affine's columns, a Conv2d's input
    channels, grouped weights made dense): the weight slice, the bias on the first part only
    (zero elsewhere), so the parts' outputs sum to the layer's."""
    out: list[Primitive] = []
    if isinstance(layer, Affine):
        for m, (a, b) in enumerate(offsets):
            bias = layer.bias if m == 0 else np.zeros_like(layer.bias)
            out.append(Affine(np.array(layer.weight[:, a:b]), np.array(bias)))
        return out
    assert isinstance(layer, Conv2d)
    dense = ungroup(layer)
    for m, (a, b) in enumerate(offsets):
        bias = layer.bias if m == 0 else np.zeros_like(layer.bias)
        out.append(Conv2d(np.array(dense[:, a:b]), np.array(bias), stride=layer.stride,
                          padding=layer.padding, dilation=layer.dilation, groups=1))
    return out


def _trailing_unflatten(net: SpikingNetwork) -> set[int]:
    """Indices of the ``Unflatten`` primitives that end the network: from the last layer
    back along its source while they are ``Unflatten``."""
    out: set[int] = set()
    i = len(net.layers) - 1
    while i >= 0 and isinstance(net.layers[i], Unflatten):
        out.add(i)
        i = net.sources(i)[0]
    return out


def _infer_input_shape(net: SpikingNetwork) -> tuple[int, ...]:
    """The recorded ``metadata["input_shape"]`` (``to_spiking(model, example_input)``), else
    ``(in,)`` of a network that starts with an ``Affine`` (possibly after a ``Flatten``)."""
    recorded = net.metadata.get("input_shape")
    if recorded is not None:
        return tuple(int(s) for s in recorded)
    for layer in net.layers:
        if isinstance(layer, (Affine, Decode)):
            return (int(layer.weight.shape[1]),)
        if not isinstance(layer, (Flatten, Threshold)):
            break
    raise ValueError("cannot infer the input shape of a network that does not start with an "
                     "Affine; pass input_shape=(C, H, W)")


# ----------------------------------------------------------------------------- arrays

# ----------------------------------------------------------------------------- export

def resolve(target: str = "generic", neuron: str | None = None) -> tuple[Target, str, float]:
    """The :class:`~whetstone.export.targets.Target` called ``target``, the neuron form
    (``neuron``, else the target's) and the file's ``dt`` for it.

    Raises:
        ValueError: an unknown target or neuron form, or a form the target's importer reads
            wrong (the message says why).
    """
    settings = get_target(target)
    form = settings.neuron if neuron is None else neuron
    if form not in NEURON_FORMS:
        raise ValueError(f"neuron must be one of {NEURON_FORMS}, got {form!r}")
    return settings, form, settings.dt_for(form)


def to_graph(net: SpikingNetwork, neuron: NeuronForm | None = None,
             input_shape: Sequence[int] | None = None, target: str = "generic") -> Any:
    """Build the ``nir.NIRGraph`` of ``net`` (see the module doc for the mapping) for the
    importer ``target`` (:data:`~whetstone.export.targets.TARGETS`).

    Args:
        net: the spiking network.
        neuron: ``"if"``, ``"threshold"`` or ``"lif"``; ``None`` (default): the target's
            form. An expert override: a form the target's importer reads wrong is refused.
        input_shape: batch-free input shape; inferred for networks that start with an
            ``Affine`` (possibly after a ``Flatten``: then ``(in,)``) or that record
            ``metadata["input_shape"]``, else required.
        target: ``"generic"``, ``"norse"``, ``"snntorch"``, ``"spikingjelly"`` or
            ``"sinabs"``: picks the neuron form, its ``dt``, the threshold for the
            importer's comparison and the pooling node.

    Returns:
        The graph, nodes ``"input"``, ``"{i}_{kind}"`` per primitive (none for an ``Add``,
        whose sources' edges go to its readers), ``"output"``, and the network's edges; its
        metadata records ``target``, ``dt``, ``neuron`` and the ``loading`` call.

    Raises:
        NIRExportError: a primitive NIR 1.0 cannot express: an ``Upsample2d``, a
            ``Concat`` read by anything but ``Affine`` / ``Conv2d`` layers (or that is the
            output, or feeds the readout), or an ``Unflatten`` that is not among the
            network's last primitives (named in the message); a scaled pooling for a
            target that maps no ``SumPool2d``; a sum naming one node twice (``a + a``).
        ValueError: unknown ``target`` or ``neuron``, a ``neuron`` the target's importer
            reads wrong (the message says why), asymmetric padding, shapes that do not
            chain.
    """
    nir = _require_nir()
    settings, neuron, dt = resolve(target, neuron)
    trailing = _trailing_unflatten(net)
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Unflatten) and i not in trailing:
            raise NIRExportError(
                f"layer {i} (Unflatten{layer.sizes}): NIR 1.0 has no reshape node; an "
                "Unflatten exports only as the network's last primitive (dropped from the "
                "graph, restored from its metadata), not before further layers")
        if not isinstance(layer, (Add, Concat, Unflatten)) and type(layer) not in NIR_WRITERS:
            reason = NOT_EXPORTABLE.get(type(layer), "no NIR writer is registered for it "
                                                     "(see register_nir_writer)")
            raise NIRExportError(f"layer {i} ({_describe(net, i)}): {reason}")
    _check_concats(net)
    _check_graph_support(net, settings)
    readout = net.readout_index
    shape = tuple(int(s) for s in input_shape) if input_shape is not None \
        else _infer_input_shape(net)
    first = shape
    try:
        shapes = net.shapes(shape)
    except ValueError as exc:
        raise ValueError(f"the network does not take inputs of shape {shape}: {exc}") from exc
    builder = GraphBuilder(nir, settings, neuron, dt)
    builder.add("input", nir.Input(input_type={"input": np.array(shape)}))
    # outs[i]: the NIR nodes whose outputs sum to layer i's value (NIR sums the edges
    # arriving at a node, so an Add has no node of its own: its sources' edges go to each
    # of its readers)
    outs: dict[int, list[str]] = {-1: ["input"]}

    def connect(sources: list[str], entry: str, where: str) -> None:
        if len(set(sources)) != len(sources):
            raise NIRExportError(
                f"{where}: reads the sum of {sources}, which names a node more than once; "
                "NIR edges are a set (a sum like a + a has no edge form)")
        builder.edges.extend((src, entry) for src in sources)

    unflatten: list[list[int]] = []
    for i, layer in enumerate(net.layers):
        where = f"layer {i} ({layer.kind})"
        srcs = net.sources(i)
        if isinstance(layer, Add):
            outs[i] = [name for j in srcs for name in outs[j]]
            continue
        if isinstance(layer, Unflatten):  # trailing (checked above): no node, same values
            unflatten.append(list(layer.sizes))
            outs[i] = outs[srcs[0]]
            continue
        if isinstance(layer, Concat):  # no node: its readers are split (checked above)
            continue
        if srcs[0] >= 0 and isinstance(net.layers[srcs[0]], Concat):
            parts = _concat_parts(net, srcs[0])
            offsets, start = [], 0
            for j in parts:
                size = (first if j == -1 else shapes[j])[0]
                offsets.append((start, start + size))
                start += size
            outs[i] = []
            for m, (j, part) in enumerate(zip(parts, _split_reader(layer, offsets),
                                              strict=True)):
                spec = NodeSpec(i, part, f"{i}_{layer.kind.lower()}_{m}",
                                first if j == -1 else shapes[j], shapes[i],
                                f"{where}, part {m}", {})
                entry, exit_ = NIR_WRITERS[type(part)](builder, spec)
                connect(outs[j], entry, spec.where)
                outs[i].append(exit_)
            continue
        spec = NodeSpec(i, layer, f"{i}_{layer.kind.lower()}",
                        first if srcs[0] == -1 else shapes[srcs[0]], shapes[i], where,
                        {"whetstone_readout": net.readout} if i == readout else {})
        entry, exit_ = NIR_WRITERS[type(layer)](builder, spec)
        connect(outs[srcs[0]], entry, where)
        outs[i] = [exit_]
    last = len(net.layers) - 1
    before = last  # the graph ends with the values before the trailing Unflatten(s)
    while before in trailing:
        before = net.sources(before)[0]
    shape = first if before == -1 else shapes[before]
    builder.add("output", nir.Output(output_type={"output": np.array(shape)}))
    connect(outs[last], "output", "the output")
    metadata: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "time_steps": TIME_STEPS,
        "neuron": neuron,
        "target": settings.name,
        "dt": float(dt),
        "loading": settings.loading,
        "fires_on": settings.fires_on,
        "threshold_convention": (THRESHOLD_CONVENTION if settings.fires_on == ">"
                                 else THRESHOLD_CONVENTION_GE),
        "input_shape": np.array(first, dtype=np.int64),
        "readout": net.readout,
        "whetstone_metadata": json.dumps(net.metadata, sort_keys=True),
    }
    if builder.key is not None:
        metadata["class_key"] = builder.key
    if unflatten:
        metadata["whetstone_unflatten"] = json.dumps(unflatten)
    if builder.side:
        metadata["whetstone_nodes"] = json.dumps(builder.side, sort_keys=True)
    return nir.NIRGraph(nodes=builder.nodes, edges=builder.edges, metadata=metadata)


def _drop_defaults(tree: dict[str, Any]) -> dict[str, Any]:
    """``tree`` (``NIRGraph.to_dict()``) without the ``v_reset`` of neuron nodes where it is
    all zeros (NIR's default): nir 1.0.4 readers reject the field, nir >= 1.0.6 fill in 0."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if key == "v_reset" and tree.get("type") in ("IF", "LIF", "CubaLIF") \
                and not np.any(np.asarray(value)):
            continue
        out[key] = _drop_defaults(value) if isinstance(value, dict) and key != "metadata" \
            else value
    return out


def write_graph(path: str | os.PathLike[str], graph: Any) -> None:
    """Write ``graph`` to ``path`` in ``nir.write``'s HDF5 layout (``version``, then the
    ``node`` group; arrays gzip-compressed, strings as variable-length UTF-8), leaving out
    fields at their defaults that older readers reject (``v_reset = 0``), so that nir 1.0.4
    through 1.0.8 read the file."""
    import h5py

    nir = _require_nir()

    def put(group: Any, node: dict[str, Any]) -> None:
        for key, value in node.items():
            if key == "metadata":
                if value:
                    put(group.create_group(key), value)
            elif isinstance(value, str):
                group.create_dataset(key, data=value, dtype=h5py.string_dtype())
            elif isinstance(value, np.ndarray) and value.ndim > 0:
                group.create_dataset(key, data=value, dtype=value.dtype, compression="gzip")
            elif isinstance(value, dict):
                put(group.create_group(str(key)), value)
            else:
                group.create_dataset(key, data=value)

    with h5py.File(os.fspath(path), "w") as f:
        f.create_dataset("version", data=str(nir.version), dtype=h5py.string_dtype())
        put(f.create_group("node"), _drop_defaults(graph.to_dict()))


def to_nir(net: SpikingNetwork, path: str | os.PathLike[str], neuron: NeuronForm | None = None,
           input_shape: Sequence[int] | None = None, target: str = "generic") -> Any:
    """Write ``net`` as a NIR graph (HDF5, readable by nir 1.0.4 to 1.0.8) to ``path`` for
    the importer ``target``; returns the graph.

    One time step from ``v = 0``: every neuron node gives ``v = x`` and fires where
    whetstone's ``1[x >= theta]`` does in the target's importer (see the module doc and
    :mod:`whetstone.export.targets`, whose table gives the loading call that works in each
    importer). ``target`` is one of ``"generic"`` (default), ``"norse"``, ``"snntorch"``,
    ``"spikingjelly"``, ``"sinabs"``; ``neuron`` (``"if"``, ``"threshold"``, ``"lif"``)
    overrides the target's neuron form, and a form the importer reads wrong is refused
    (:class:`ValueError` saying why) rather than written.
    """
    graph = to_graph(net, neuron=neuron, input_shape=input_shape, target=target)
    write_graph(path, graph)
    return graph


# ----------------------------------------------------------------------------- import

def _chain(graph: Any) -> list[str]:
    """Node names from the input to the output of a linear chain graph."""
    succ: dict[str, str] = {}
    for a, b in graph.edges:
        if a in succ:
            raise ValueError(f"node {a!r} has several successors; only chains are supported")
        succ[a] = b
    inputs = [k for k, n in graph.nodes.items() if type(n).__name__ == "Input"]
    if len(inputs) != 1:
        raise ValueError(f"expected one Input node, found {len(inputs)}")
    order = [inputs[0]]
    while order[-1] in succ:
        order.append(succ[order[-1]])
        if len(order) > len(graph.nodes):
            raise ValueError("the graph has a cycle")
    if len(order) != len(graph.nodes):
        raise ValueError("the graph is not a single chain from its Input to its Output")
    return order


def _node_key(name: str) -> tuple[int, str]:
    """Sort key of node names: the numeric prefix of ``"{i}_{kind}"`` first."""
    head = name.split("_", 1)[0]
    return (int(head) if head.isdigit() else -1, name)


def _topological(graph: Any) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]]]:
    """Node names in a topological order (ties by :func:`_node_key`), with every node's
    predecessors and successors in edge order."""
    preds: dict[str, list[str]] = {name: [] for name in graph.nodes}
    succs: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for a, b in graph.edges:
        if a not in preds or b not in preds:
            raise ValueError(f"edge ({a!r}, {b!r}) names a node the graph does not have")
        if a in preds[b]:
            raise ValueError(f"edge ({a!r}, {b!r}) appears twice")
        preds[b].append(a)
        succs[a].append(b)
    inputs = [k for k, n in graph.nodes.items() if type(n).__name__ == "Input"]
    if len(inputs) != 1:
        raise ValueError(f"expected one Input node, found {len(inputs)}")
    waiting = {name: len(p) for name, p in preds.items()}
    ready = [(_node_key(k), k) for k, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for nxt in succs[name]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                heapq.heappush(ready, (_node_key(nxt), nxt))
    if len(order) != len(graph.nodes):
        raise ValueError("the graph has a cycle")
    return order, preds, succs


def from_graph(graph: Any) -> SpikingNetwork:
    """A :class:`SpikingNetwork` from a ``nir.NIRGraph`` (the inverse of :func:`to_graph`;
    every neuron node is read for one step from ``v = 0``).

    A node with several incoming edges reads their sum (NIR's rule): an ``Add`` of the
    sources, in edge order, before it. A chain graph gives a chain network. Nodes the
    ``Output`` does not depend on are dropped.
    """
    gmeta = graph.metadata if isinstance(graph.metadata, dict) else {}
    ours = gmeta.get("format") == FORMAT
    fires_on = str(gmeta.get("fires_on", ">")) if ours else ">"
    if fires_on not in (">", ">="):
        raise ValueError(f"graph metadata fires_on must be '>' or '>=', got {fires_on!r}")
    dt = float(gmeta["dt"]) if "dt" in gmeta else None
    side = json.loads(str(gmeta["whetstone_nodes"])) if ours and "whetstone_nodes" in gmeta \
        else {}
    if not isinstance(side, dict):
        raise ValueError("graph metadata whetstone_nodes must be a JSON object")
    if dt is not None and not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"graph metadata dt must be a positive number, got {dt}")
    order, preds, succs = _topological(graph)
    layers: list[Primitive] = []
    inputs: list[tuple[int, ...]] = []
    value: dict[str, int] = {}
    output: int | None = None

    def append(layer: Primitive, sources: tuple[int, ...]) -> int:
        layers.append(layer)
        inputs.append(sources)
        return len(layers) - 1

    def source(name: str) -> int:
        sources = tuple(value[p] for p in preds[name])
        if not sources:
            raise ValueError("no incoming edge (not reachable from the Input)")
        return sources[0] if len(sources) == 1 else append(Add(), sources)

    for name in order:
        node = graph.nodes[name]
        kind = type(node).__name__
        where = f"node {name!r} ({kind})"
        try:
            marks = side.get(name) or {}
            if not isinstance(marks, dict):
                raise ValueError("its whetstone_nodes entry is not a JSON object")
            meta = {**node_meta(node), **marks}
            if kind == "Input":
                value[name] = -1
            elif kind == "Output":
                if output is not None:
                    raise ValueError("a second Output node; a network has one output")
                output = source(name)
            elif kind == "Scale":
                src = source(name)
                prev = layers[src] if src >= 0 else None
                scale = np.unique(np.asarray(node.scale))
                if not isinstance(prev, SumPool2d) or prev.scale != 1.0 or scale.size != 1 \
                        or len(preds[name]) != 1 or len(succs[preds[name][0]]) != 1:
                    raise ValueError("only a uniform Scale directly after a SumPool2d (its "
                                     "only reader) is supported")
                layers[src] = SumPool2d(prev.kernel, prev.stride, prev.padding, float(scale[0]))
                value[name] = src
            else:
                src = source(name)
                context = NodeContext(meta, ours, fires_on, dt)
                value[name] = append(read_node(node, kind, context), (src,))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: {exc}") from exc
    if output is None:
        raise ValueError("the graph has no Output node")
    if ours and "whetstone_unflatten" in gmeta:
        sizes = json.loads(str(gmeta["whetstone_unflatten"]))
        if not isinstance(sizes, list) or not all(isinstance(s, list) for s in sizes):
            raise ValueError("graph metadata whetstone_unflatten must be a list of size lists")
        for size in sizes:
            output = append(Unflatten(tuple(size)), (output,))
    layers, inputs = _reachable(layers, inputs, output)
    metadata: dict[str, Any] = {}
    if ours and "whetstone_metadata" in gmeta:
        metadata = json.loads(str(gmeta["whetstone_metadata"]))
    else:
        metadata = {"source": "whetstone.export.from_nir", "threshold_convention": ">="}
    net = SpikingNetwork(layers, metadata, inputs)
    if ours and "readout" in gmeta and str(gmeta["readout"]) != net.readout:
        raise ValueError(f"the graph records readout {str(gmeta['readout'])!r} but its nodes "
                         f"end with readout {net.readout!r}")
    return net


def _reachable(layers: list[Primitive], inputs: list[tuple[int, ...]], output: int
               ) -> tuple[list[Primitive], list[tuple[int, ...]]]:
    """The layers ``output`` depends on, in order, with renumbered sources (the output
    becomes the last layer). ``output = -1`` (the graph returns its input) gives none."""
    keep: set[int] = set()
    stack = [output]
    while stack:
        i = stack.pop()
        if i >= 0 and i not in keep:
            keep.add(i)
            stack.extend(inputs[i])
    order = sorted(keep)
    new = {old: k for k, old in enumerate(order)} | {-1: -1}
    return ([layers[i] for i in order],
            [tuple(new[j] for j in inputs[i]) for i in order])


# ----------------------------------------------------------------------------- bounded read

READ_TIMEOUT = 60.0
"""Default time limit (seconds) of one :func:`from_nir` read, the reader's start excluded."""
START_TIMEOUT = 120.0
"""Time limit (seconds) for the reader process to start (import numpy and h5py)."""
_DEFLATE_MAX_RATIO = 1032


class _HDF5Reader:
    """A child process running :mod:`whetstone.export._hdf5_worker`, reused across reads
    and killed (then started again on the next read) when one read exceeds its limit.

    A daemon thread reads the child's stdout into a queue, so waiting has a timeout on
    every platform. One read at a time (a lock); a forked process starts its own child.
    """

    def __init__(self, script: Path | None = None) -> None:
        self.script = script or Path(__file__).with_name("_hdf5_worker.py")
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._owner = -1

    def _start(self) -> None:
        self.close()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
                   OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self._proc = subprocess.Popen([sys.executable, str(self.script)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      env=env)
        self._owner = os.getpid()
        self._queue = queue.Queue()
        threading.Thread(target=self._pump, args=(self._proc, self._queue),
                         daemon=True).start()
        try:
            ready = self._get(START_TIMEOUT)
        except TimeoutError:
            raise RuntimeError(f"the HDF5 reader process did not start within "
                               f"{START_TIMEOUT:.0f} s") from None
        if ready != b"READY":
            self.close()
            raise RuntimeError("the HDF5 reader process did not start (is h5py installed?)")

    @staticmethod
    def _pump(proc: subprocess.Popen[bytes], out: queue.Queue[bytes | None]) -> None:
        stream = proc.stdout
        assert stream is not None
        try:
            first = stream.read(5)
            out.put(first if len(first) == 5 else None)
            while True:
                size = stream.read(8)
                if len(size) < 8:
                    break
                n = struct.unpack(">Q", size)[0]
                body = stream.read(n)
                if len(body) < n:
                    break
                out.put(body)
        except (OSError, ValueError):
            pass
        out.put(None)

    def _get(self, timeout: float) -> bytes | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise TimeoutError from None

    def close(self) -> None:
        """Kill the child (if any); the next read starts a new one."""
        proc, self._proc = self._proc, None
        if proc is not None and self._owner == os.getpid():
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()

    def read(self, path: str, max_bytes: int, timeout: float) -> bytes:
        """The worker's response payload for ``path``.

        Raises:
            TimeoutError: the read took longer than ``timeout`` (the child is killed).
            RuntimeError: the child could not start or died during the read.
        """
        with self._lock:
            if self._proc is None or self._owner != os.getpid() or self._proc.poll() is not None:
                self._start()
            proc = self._proc
            assert proc is not None and proc.stdin is not None
            request = json.dumps({"path": path, "max_bytes": max_bytes,
                                  "timeout": timeout}).encode("utf-8")
            try:
                proc.stdin.write(struct.pack(">I", len(request)) + request)
                proc.stdin.flush()
            except OSError as exc:
                self.close()
                raise RuntimeError(f"the HDF5 reader process died ({exc})") from exc
            body = self._get(timeout)
            if body is None:
                code = proc.poll()
                self.close()
                raise RuntimeError(f"the HDF5 reader process died (exit status {code})")
            return body


_READER = _HDF5Reader()
atexit.register(_READER.close)


class _ReadFailed(Exception):
    """The reader process could not read the file; the message says why."""


def _decode(entry: Any, raw: memoryview) -> Any:
    """Inverse of the worker's encoding (see :mod:`whetstone.export._hdf5_worker`)."""
    if not isinstance(entry, dict):
        raise ValueError("malformed reader response")
    if "d" in entry:
        return {str(k): _decode(v, raw) for k, v in entry["d"].items()}
    if "s" in entry:
        return str(entry["s"])
    if "t" in entry:
        return np.array(entry["t"], dtype=object).reshape(entry["shape"])
    dtype, shape, offset, nbytes = entry["a"]
    arr = np.frombuffer(raw[offset:offset + nbytes], dtype=np.dtype(dtype)).reshape(shape)
    arr = arr.copy()
    return arr[()] if entry.get("scalar") else arr


def _read_graph(path: str, size: int, timeout: float) -> Any:
    """The ``nir.NIRGraph`` in ``path``, read like ``nir.read`` but in the reader process."""
    nir = _require_nir()
    body = _READER.read(path, _DEFLATE_MAX_RATIO * size + (1 << 20), timeout)
    (head_len,) = struct.unpack(">I", body[:4])
    message = json.loads(body[4:4 + head_len].decode("utf-8"))
    if "error" in message:
        raise _ReadFailed(message["error"])
    node = _decode(message["ok"], memoryview(body)[4 + head_len:])
    if "type_check" in node:
        raise ValueError("the graph has a 'type_check' entry, which NIR reserves")
    node["type_check"] = True
    return nir.dict2NIRNode(node)


def from_nir(path: str | os.PathLike[str], timeout: float = READ_TIMEOUT) -> SpikingNetwork:
    """Read a NIR file into a :class:`SpikingNetwork` (see :func:`from_graph`).

    Files written by :func:`to_nir` round-trip exactly: same primitives, same thresholds
    (``theta`` from the node metadata, else ``nextafter(float32(theta'), +inf)``), hence
    identical spikes and predictions.

    Bounded in time and memory. The HDF5 file is read by h5py in a child process (a plain
    ``python`` running :mod:`whetstone.export._hdf5_worker`, started on the first call and
    reused) because the HDF5 library can loop forever on a corrupted file and no thread can
    interrupt it: a read that takes longer than ``timeout`` seconds kills the child (the next
    call starts another) and fails. The child refuses datasets that declare more than
    ``1032 * file size + 1 MiB`` bytes in all (deflate expands at most 1032-fold), groups
    nested deeper than 32, and more than 100,000 groups and datasets; it sends the plain
    arrays and strings back (no pickle), and the ``nir`` graph and the primitives are then
    built and checked in this process.

    Raises:
        NIRFileError: (a ``ValueError``) for every failure: the file is missing or
            unreadable, not HDF5, corrupted, not a NIR graph, holds a graph whetstone cannot
            represent, or its read timed out; the message names the file and the problem.
        ImportError: the ``nir`` package is not installed.
    """
    _require_nir()
    name = os.fspath(path)
    try:
        info = os.stat(name)
        if not stat.S_ISREG(info.st_mode):
            raise NIRFileError(f"{name}: not a regular file")
        graph = _read_graph(os.path.abspath(name), info.st_size, timeout)
    except NIRFileError:
        raise
    except TimeoutError as exc:
        raise NIRFileError(f"{name}: reading the HDF5 file did not finish within {timeout} s "
                           "(a corrupted file can make the HDF5 library loop)") from exc
    except _ReadFailed as exc:
        raise NIRFileError(f"{name}: cannot read the NIR file: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - every failure is reported as this file's
        raise NIRFileError(f"{name}: cannot read the NIR file: {type(exc).__name__}: {exc}"
                           ) from exc
    try:
        return from_graph(graph)
    except Exception as exc:  # noqa: BLE001
        raise NIRFileError(f"{name}: not a NIR graph whetstone can read: "
                           f"{type(exc).__name__}: {exc}") from exc
