"""Synaptic operations of a :class:`~whetstone.runtime.SpikingNetwork` on real inputs.

Counting rule (NeuroBench-style *effective* operations, per sample, averaged over the
batch): a synaptic layer (``Affine``, ``Conv2d``, ``Decode``) costs, for every **nonzero**
input element, one operation per synapse leaving it (its fan-out):

``SynOps_l = (1 / N) sum_n sum_i 1[x_l[n, i] != 0] * fanout_l(i)``

- ``Affine`` / ``Decode`` ``(out, in)``: ``fanout(i) = out`` for every input ``i``.
- ``Conv2d`` with input ``(Cin, H, W)``, weight ``(Cout, Cin/G, kh, kw)``, stride ``s``,
  dilation ``d`` and padding ``(top, bottom, left, right)``: the input pixel ``(c, h, w)``
  is read by every output position / kernel tap pair that covers it, in each of the
  ``Cout / G`` output channels of its group:

  ``fanout(c, h, w) = (Cout / G) * R_h(h) * R_w(w)``,
  ``R_h(h) = #{(i, u) : 0 <= i < H', 0 <= u < kh, i s_h + u d_h - top = h}``

  (likewise ``R_w``): exact at the borders, for any padding, stride and dilation. Reads
  of the zero padding cost nothing (they are not input spikes).

Operations are split by what the layer receives:

- **AC** (accumulate): binary inputs, i.e. the layer's input comes from a
  :class:`~whetstone.runtime.Threshold` (possibly through ``Flatten``), or the network
  input is a bool array. A spike adds its weight; no multiplication.
- **MAC** (multiply-accumulate): real inputs (the first layer on images; a layer after an
  average pool). Zero inputs are skipped as well (effective MACs).

Beside them, ``dense_mac`` is the MAC count of the same network run as a conventional
dense ANN, every weight used once per output whatever the input:
``out * in`` for ``Affine`` / ``Decode``, ``Cout * H' * W' * (Cin / G) * kh * kw`` for
``Conv2d`` (the usual count, which includes the taps over zero padding).

Pooling (``SumPool2d``) is routing / OR and is not counted as synaptic work, as in
NeuroBench, which counts weighted layers only; nor are the shape-only ``Flatten``,
``Unflatten`` and ``Upsample2d`` (nearest upsampling copies each spike to ``sh sw`` places:
the layer after it pays for the copies it reads, through its own nonzero inputs).

Readout. The network's readout (:attr:`~whetstone.runtime.SpikingNetwork.readout`) is
counted like any synaptic layer: a ``Decode``, or a final real-valued ``Affine`` / 1x1
``Conv2d`` over the last spikes, costs one AC per input spike per synapse leaving it (its
output neurons are not ``Threshold`` neurons, so they add no neuron updates). Its entry is
marked ``"readout": True`` and the result names it (``"readout": {"kind", "index"}``).

Neuron updates (for energy models that charge them) are the neurons of every ``Threshold``,
once per sample (one time step).

Graphs. A graph network (residual sums, concatenations) is counted the same way, primitive
by primitive: each synaptic layer's operations come from the nonzero values of its own
input (its source's output), binary when that source is a spike map (a ``Threshold``, or a
``Concat`` of spike maps, possibly through shape-only primitives). The merges ``Add`` and
``Concat`` cost nothing: they route values (NIR's sum of a node's incoming edges). The
readout after an ``Add`` of spike maps receives real values (counts), so it counts MACs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..runtime import Affine, Context, Conv2d, Decode, SpikingNetwork, Threshold, walk
from ..runtime.primitives import Primitive

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..progress import Progress

SYNAPTIC = (Affine, Conv2d, Decode)
"""Primitive types whose operations are counted."""


def conv_reads(size: int, kernel: int, stride: int, dilation: int, pad_before: int,
               pad_after: int) -> np.ndarray:
    """``R(h)`` for one spatial axis: how many (output position, kernel tap) pairs read input
    index ``h`` (``0 <= h < size``) of a convolution; shape ``(size,)``, int64.

    ``R(h) = #{(i, u) : 0 <= i < out, 0 <= u < kernel, i * stride + u * dilation
    - pad_before = h}`` with ``out = (size + pad_before + pad_after - dilation (kernel - 1)
    - 1) // stride + 1``.
    """
    out = (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1
    reads = np.zeros(size + pad_before + pad_after, dtype=np.int64)
    if out <= 0:
        return reads[pad_before:pad_before + size]
    starts = np.arange(out) * stride
    for u in range(kernel):
        np.add.at(reads, starts + u * dilation, 1)
    return reads[pad_before:pad_before + size]


def conv_fanout(layer: Conv2d, input_hw: tuple[int, int]) -> np.ndarray:
    """Fan-out of each input pixel of ``layer`` for inputs ``(Cin, H, W)``: ``(H, W)`` int64,
    the same for every channel: ``(Cout / G) * R_h(h) * R_w(w)`` (see the module doc)."""
    cout, _, kh, kw = layer.weight.shape
    top, bottom, left, right = layer.padding
    r_h = conv_reads(input_hw[0], kh, layer.stride[0], layer.dilation[0], top, bottom)
    r_w = conv_reads(input_hw[1], kw, layer.stride[1], layer.dilation[1], left, right)
    return (cout // layer.groups) * np.outer(r_h, r_w)


def dense_macs(layer: Primitive, input_shape: tuple[int, ...],
               output_shape: tuple[int, ...]) -> int:
    """MACs of ``layer`` in a dense ANN for one sample (shapes without the batch axis;
    ``output_shape`` is ``layer.output_shape(input_shape)``): ``out * in`` (``Affine``,
    ``Decode``), ``Cout H' W' (Cin / G) kh kw`` (``Conv2d``), else 0.
    """
    if isinstance(layer, (Affine, Decode)):
        return int(layer.weight.shape[0] * layer.weight.shape[1])
    if isinstance(layer, Conv2d):
        return int(np.prod(output_shape)) * int(np.prod(layer.weight.shape[1:]))
    return 0


def _effective_ops(layer: Primitive, x: np.ndarray) -> int:
    """Summed over the batch ``x`` ``(n, ...)``: nonzero inputs times their fan-out."""
    if isinstance(layer, (Affine, Decode)):
        return int(np.count_nonzero(x)) * int(layer.weight.shape[0])
    if isinstance(layer, Conv2d):
        active = np.count_nonzero(x, axis=(0, 1))  # (H, W): active channels x samples
        return int((active * conv_fanout(layer, x.shape[2:])).sum())
    return 0


@dataclass
class _LayerAcc:
    """Per-primitive accumulators over the batches (sums, divided by N at the end)."""

    kind: str
    input_shape: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()
    binary_input: bool = False
    ops: int = 0
    spikes_in: int = 0
    neuron_spikes: np.ndarray | None = None  # Threshold: per-neuron spike counts
    sample_density: list[np.ndarray] = field(default_factory=list)  # Threshold: (n,) each


@dataclass
class Trace:
    """What one pass over a batch collects (see :func:`trace`)."""

    samples: int
    layers: list[_LayerAcc]
    outputs: np.ndarray


def trace(net: SpikingNetwork, x: np.ndarray, batch_size: int = 256,
          progress: Progress | None = None) -> Trace:
    """Run ``net`` (a chain or a graph) on ``x`` ``(N, ...)`` primitive by primitive (the
    runtime's own kernels, :func:`whetstone.runtime.walk`, in float64) in batches of
    ``batch_size`` and accumulate, per primitive, the effective operations, input spike
    counts and, for every ``Threshold``, per-neuron spike counts and per-sample densities. A
    primitive's input is binary when every value it reads is a spike map (bool).
    ``outputs`` is the last primitive's output ``(N, ...)`` (float64). ``progress`` (a
    :class:`whetstone.progress.Progress`) shows a bar over the batches."""
    x = np.asarray(x)
    if x.ndim < 1 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch (N, ...), got shape {x.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    accs = [_LayerAcc(layer.kind) for layer in net.layers]
    ctx = Context(np.dtype(np.float64))
    outs = []
    starts: Iterable[int] = range(0, len(x), batch_size)
    if progress is not None:
        starts = progress.iterate(starts, desc="spike statistics", unit="batch")
    for start in starts:
        batch = out = x[start:start + batch_size]
        for i, inputs, out in walk(net, batch, ctx):
            layer, acc, h = net.layers[i], accs[i], inputs[0]
            acc.input_shape = tuple(h.shape[1:])
            acc.binary_input = all(v.dtype == np.bool_ for v in inputs)
            if isinstance(layer, SYNAPTIC):
                acc.ops += _effective_ops(layer, h)
                acc.spikes_in += int(np.count_nonzero(h))
            if isinstance(layer, Threshold):
                flat = out.reshape(len(out), -1)
                counts = flat.sum(axis=0, dtype=np.int64)
                acc.neuron_spikes = counts if acc.neuron_spikes is None \
                    else acc.neuron_spikes + counts
                acc.sample_density.append(flat.mean(axis=1))
            acc.output_shape = tuple(out.shape[1:])
        outs.append(np.asarray(out, dtype=np.float64))
    return Trace(len(x), accs, np.concatenate(outs))


def _synops_from(net: SpikingNetwork, tr: Trace) -> dict[str, Any]:
    layers = []
    readout = net.readout_index
    total = {"ac": 0.0, "mac": 0.0, "synops": 0.0, "dense_mac": 0}
    neuron_updates = 0
    for i, (layer, acc) in enumerate(zip(net.layers, tr.layers, strict=True)):
        if isinstance(layer, Threshold):
            neuron_updates += int(np.prod(acc.output_shape))
        if not isinstance(layer, SYNAPTIC):
            continue
        ops = acc.ops / tr.samples
        dense = dense_macs(layer, acc.input_shape, layer.output_shape(acc.input_shape))
        entry = {
            "index": i,
            "kind": layer.kind,
            "input": "binary" if acc.binary_input else "real",
            "input_shape": list(acc.input_shape),
            "output_shape": list(acc.output_shape),
            "input_density": acc.spikes_in / (tr.samples * max(int(np.prod(acc.input_shape)), 1)),
            "ac": ops if acc.binary_input else 0.0,
            "mac": 0.0 if acc.binary_input else ops,
            "synops": ops,
            "dense_mac": dense,
            "readout": i == readout,
        }
        layers.append(entry)
        for key in ("ac", "mac", "synops", "dense_mac"):
            total[key] += entry[key]
    return {"samples": tr.samples, "layers": layers, "total": total,
            "neuron_updates": neuron_updates,
            "readout": {"kind": net.readout, "index": readout}}


def synaptic_ops(net: SpikingNetwork, x: np.ndarray, batch_size: int = 256) -> dict[str, Any]:
    """Effective synaptic operations of ``net`` on ``x`` ``(N, ...)``, per sample.

    See the module doc for the counting rule. Returns (JSON-serialisable)::

        {"samples": N,
         "layers": [{"index", "kind", "input": "binary" | "real", "input_shape",
                     "output_shape", "input_density", "ac", "mac", "synops",
                     "dense_mac", "readout": bool}, ...],  # one per Affine / Conv2d / Decode
         "total": {"ac", "mac", "synops", "dense_mac"},
         "neuron_updates": int,                   # Threshold neurons per sample
         "readout": {"kind": net.readout, "index": net.readout_index}}

    ``ac``, ``mac`` and ``synops = ac + mac`` are averages over the ``N`` samples (floats);
    ``dense_mac`` is the per-sample dense-ANN count (int).
    """
    return _synops_from(net, trace(net, x, batch_size))
