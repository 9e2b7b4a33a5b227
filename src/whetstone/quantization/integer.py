"""The integer spiking network: integer weights, integer thresholds, integer inputs.

:func:`to_integer` turns a converted network into one whose whole function is integer
arithmetic, the way neuromorphic hardware holds it (8-bit synapses on Loihi, fixed point on
SpiNNaker):

1. **Inputs.** The network's real input is ``x = input_scale * p`` with integer ``p`` (pixels
   ``p`` in ``0..255`` and ``input_scale = 1/255``: how whetstone's datasets scale images).
   The scale is folded into the primitives that read the input (through ``Flatten``,
   ``Unflatten``, ``Upsample2d``): an ``Affine`` / ``Conv2d`` gets ``W * input_scale``, a
   ``Threshold`` ``theta / input_scale``. The integer network reads ``p``
   (:func:`integer_inputs` recovers it from ``x``).
2. **Weights and thresholds** (:func:`~whetstone.quantization.quantize` with integer inputs,
   symmetric, one scale per layer): ``W_q = round(W / s)`` in ``[-Q, Q]``,
   ``Q = 2^(bits-1) - 1``, bias folded into the integer threshold
   ``theta' = min{k integer : s k + b >= theta}``, so the neuron

   ``z_o = 1[ sum_i W_q[o, i] x_i >= theta'_o ]``

   fires exactly when the dequantized neuron ``s W_q x + b >= theta`` does. Weights are stored
   as ``int8`` (``bits <= 8``) or ``int16`` (``bits <= 16``), biases as ``int32`` zeros.
   OR-pooling is a window sum with an integer threshold; ``Decode`` (weights ``4K - 2``) is
   integer already, so the class logits are integers.
3. **Accumulators.** For each weighted layer the largest magnitude its sum can reach,
   ``B = max_o sum_i |W_q[o, i]| * m_i`` (``m_i`` the largest input: ``input_max`` for the
   input, 1 for spikes, sums of those through ``Add`` and pooling), is recorded with the
   accumulator it needs: ``int32`` when ``B < 2^31``, else ``int64``. Thresholds are clamped
   to ``[-B, B + 1]`` (a threshold above ``B`` never fires, one at or below ``-B`` always
   does, so the function is unchanged) and stored as ``int32`` when they fit.

Semantics. Every value of the network is an integer and every operation is an integer sum,
product or comparison, so every engine, machine and summation order gives bit-identical
spikes and outputs. The numpy reference (:func:`whetstone.runtime.run`) computes it in
float64, which is exact because every partial sum is an integer of magnitude at most ``B``
and ``B < 2^53`` is checked here.

Not every network has an integer form: a weighted layer whose output no single ``Threshold``
reads (before average pooling, into a residual ``Add``) and a real-valued readout keep a real
scale and bias (:func:`~whetstone.quantization.quantize` dequantizes them); :func:`to_integer`
refuses those with the layer named.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..runtime import (
    INPUT,
    Add,
    Affine,
    Conv2d,
    Decode,
    Flatten,
    SpikingNetwork,
    SumPool2d,
    Threshold,
    Unflatten,
    Upsample2d,
)
from ..runtime.primitives import Primitive
from .quantize import quantize

MAX_INTEGER_BITS = 16
"""Widest weights of an integer network (``int16``)."""

EXACT_FLOAT64 = 2**53
"""Integers below this are exact in float64 (the numpy reference's arithmetic)."""

_SHAPE_ONLY = (Flatten, Unflatten, Upsample2d)


def weight_dtype(bits: int) -> np.dtype:
    """``int8`` for ``bits <= 8``, else ``int16`` (``bits <= 16``)."""
    return np.dtype(np.int8 if bits <= 8 else np.int16)


def accumulator_dtype(bound: int) -> np.dtype:
    """``int32`` when a sum of magnitude at most ``bound`` fits (``bound < 2^31``), else
    ``int64``."""
    return np.dtype(np.int32 if bound < 2**31 else np.int64)


def _scale_input(net: SpikingNetwork, input_scale: float) -> SpikingNetwork:
    """``net`` reading ``p`` where it read ``x = input_scale * p``: the scale folded into the
    primitives that read the input (through shape-only primitives)."""
    layers: list[Primitive] = list(net.layers)
    carries = {INPUT}  # values that are the input, possibly reshaped
    for i, layer in enumerate(layers):
        sources = net.sources(i)
        if not any(j in carries for j in sources):
            continue
        if isinstance(layer, _SHAPE_ONLY):
            carries.add(i)
        elif isinstance(layer, Affine):
            layers[i] = Affine(layer.weight * input_scale, layer.bias)
        elif isinstance(layer, Conv2d):
            layers[i] = Conv2d(layer.weight * input_scale, layer.bias, stride=layer.stride,
                               padding=layer.padding, dilation=layer.dilation,
                               groups=layer.groups)
        elif isinstance(layer, Threshold):
            layers[i] = Threshold(np.asarray(layer.theta, np.float64) / input_scale)
        else:
            raise ValueError(f"layer {i} ({layer.kind}) reads the network input directly; an "
                             "integer network needs an Affine, Conv2d or Threshold there")
    return SpikingNetwork(layers, copy.deepcopy(net.metadata), net.inputs)


def _bounds(net: SpikingNetwork, input_max: int) -> dict[int, int]:
    """Largest magnitude of every value (``INPUT`` included) of an integer network."""
    peak: dict[int, int] = {INPUT: int(input_max)}
    for i, layer in enumerate(net.layers):
        ins = [peak[j] for j in net.sources(i)]
        if isinstance(layer, Threshold):
            peak[i] = 1
        elif isinstance(layer, (Affine, Conv2d, Decode)):
            w = np.abs(np.asarray(layer.weight, np.float64))
            peak[i] = int(w.reshape(len(w), -1).sum(axis=1).max(initial=0.0)) * ins[0] + int(
                np.abs(np.asarray(layer.bias, np.float64)).max(initial=0.0))
        elif isinstance(layer, SumPool2d):
            peak[i] = layer.kernel[0] * layer.kernel[1] * ins[0]
        elif isinstance(layer, Add):
            peak[i] = sum(ins)
        else:  # shape-only, Concat
            peak[i] = max(ins)
    return peak


def _integer_valued(net: SpikingNetwork) -> dict[int, bool]:
    """Which values are integers, given integer inputs (after :func:`quantize`)."""
    integer = {INPUT: True}
    for i, layer in enumerate(net.layers):
        int_in = all(integer[j] for j in net.sources(i))
        if isinstance(layer, Threshold):
            integer[i] = True
        elif isinstance(layer, (Affine, Conv2d)):
            w, b = np.asarray(layer.weight), np.asarray(layer.bias)
            integer[i] = int_in and bool(np.all(w == np.rint(w)) and np.all(b == np.rint(b)))
        elif isinstance(layer, SumPool2d):
            integer[i] = int_in and layer.scale == 1.0
        else:  # Decode (integer weights and bias), Add, Concat, shape-only
            integer[i] = int_in
    return integer


def to_integer(net: SpikingNetwork, bits: int, input_scale: float = 1.0 / 255.0,
               input_max: int = 255) -> SpikingNetwork:
    """The integer network of ``net`` at ``bits``-bit weights (see the module doc).

    Args:
        net: a converted network (a chain or a graph) whose every weighted layer is read by
            a ``Threshold`` of its own, ending with a ``Decode`` or with spikes.
        bits: weight width, 2 to 16 (``int8`` weights up to 8 bits, ``int16`` above).
        input_scale: the real input is ``input_scale * p`` for the integer input ``p``
            (``1/255``: pixels; ``1.0`` when the input already is integer, e.g. spikes).
        input_max: the largest ``|p|`` (255 for ``uint8`` pixels), for the accumulator
            bounds.

    Returns:
        A :class:`SpikingNetwork` with integer arrays (:attr:`SpikingNetwork.is_integer`),
        the same primitives in the same order; ``metadata["integer"]`` records ``bits``,
        the input scale and bound, and every weighted layer's ``accumulator_bound`` and
        ``accumulator`` (``"int32"`` or ``"int64"``).

    Raises:
        ValueError: ``bits`` outside ``[2, 16]``; a non-positive ``input_scale`` or
            ``input_max``; a layer with no exact integer form (named, with the reason); an
            accumulator bound of ``2^53`` or more.
    """
    if int(bits) != bits or not 2 <= bits <= MAX_INTEGER_BITS:
        raise ValueError(f"an integer network has 2 to {MAX_INTEGER_BITS}-bit weights, got "
                         f"bits={bits!r}")
    if not (np.isfinite(input_scale) and input_scale > 0):
        raise ValueError(f"input_scale must be a positive number, got {input_scale!r}")
    if int(input_max) != input_max or input_max < 1:
        raise ValueError(f"input_max must be a positive integer, got {input_max!r}")
    if net.readout in ("affine", "conv2d"):
        raise ValueError(f"the network ends with a real-valued {net.readout} readout, whose "
                         "output keeps a real scale and bias (y = s (W_q z) + b): it has no "
                         "integer form; whetstone.quantization.quantize quantizes it")
    q = quantize(_scale_input(net, float(input_scale)), int(bits), integer_inputs=True)
    for entry in q.metadata["quantization"]["layers"]:
        if not str(entry.get("mode", "")).startswith("integer (exact)"):
            raise ValueError(f"layer {entry['index']} ({entry['kind']}) has no exact integer "
                             f"form: {entry.get('mode')}")
    integer = _integer_valued(q)
    for i, layer in enumerate(q.layers):
        if not integer[i] and not isinstance(layer, Threshold):
            raise ValueError(f"layer {i} ({layer.kind}) computes non-integer values (e.g. an "
                             "average pool); an integer network needs integers throughout")
    peak = _bounds(q, int(input_max))
    w_dtype = weight_dtype(int(bits))
    layers: list[Primitive] = list(q.layers)
    report: list[dict[str, Any]] = []
    consumers = q.consumers()
    for i, layer in enumerate(q.layers):
        if not isinstance(layer, (Affine, Conv2d, SumPool2d, Decode)):
            continue
        bound = peak[i]
        if bound >= EXACT_FLOAT64:
            raise ValueError(f"layer {i} ({layer.kind}) can sum to {bound} >= 2^53: too wide "
                             f"for exact arithmetic; use fewer bits")
        acc = accumulator_dtype(bound)
        report.append({"index": i, "kind": layer.kind, "accumulator_bound": bound,
                       "accumulator": acc.name})
        if isinstance(layer, Affine):
            layers[i] = Affine(layer.weight.astype(w_dtype), np.zeros(layer.bias.shape, np.int32))
        elif isinstance(layer, Conv2d):
            layers[i] = Conv2d(layer.weight.astype(w_dtype), np.zeros(layer.bias.shape, np.int32),
                               stride=layer.stride, padding=layer.padding,
                               dilation=layer.dilation, groups=layer.groups)
        for j in consumers[i]:
            if isinstance(q.layers[j], Threshold):
                theta = np.clip(np.asarray(q.layers[j].theta, np.float64), -bound, bound + 1)
                layers[j] = Threshold(theta.astype(accumulator_dtype(bound + 1)))
    for i, layer in enumerate(layers):  # thresholds on the input or on sums (Add)
        if isinstance(layer, Threshold) and not np.issubdtype(layer.theta.dtype, np.integer):
            bound = peak[q.sources(i)[0]]
            theta = np.clip(np.ceil(np.asarray(layer.theta, np.float64)), -bound, bound + 1)
            layers[i] = Threshold(theta.astype(accumulator_dtype(bound + 1)))
    metadata = copy.deepcopy(q.metadata)
    metadata["integer"] = {
        "bits": int(bits),
        "weight_dtype": w_dtype.name,
        "input_scale": float(input_scale),
        "input_max": int(input_max),
        "semantics": "integer weights, thresholds and inputs; z = 1[sum_i W_q x_i >= theta']",
        "layers": report,
    }
    out = SpikingNetwork(layers, metadata, q.inputs)
    assert out.is_integer
    return out


def integer_inputs(x: np.ndarray, input_scale: float = 1.0 / 255.0,
                   dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """The integer input ``p = x / input_scale`` of an integer network, for real inputs
    ``x`` that are multiples of ``input_scale`` (``x = p / 255`` for pixels), as ``dtype``.

    Raises:
        ValueError: ``x`` is not such a multiple (within 1e-3 of the step) or ``p`` does not
            fit ``dtype``.
    """
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        p = x.astype(np.int64)
    else:
        r = np.asarray(x, np.float64) / float(input_scale)
        p = np.rint(r)
        if r.size and float(np.abs(r - p).max()) > 1e-3:
            raise ValueError(f"the inputs are not multiples of input_scale={input_scale!r} "
                             f"(largest distance {float(np.abs(r - p).max()):.3g} steps)")
    info = np.iinfo(dtype)
    if p.size and (p.min() < info.min or p.max() > info.max):
        raise ValueError(f"integer inputs span [{p.min()}, {p.max()}], outside "
                         f"{np.dtype(dtype).name}")
    return p.astype(dtype)
