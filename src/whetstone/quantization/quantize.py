"""Post-training weight quantization of a spiking network to integer arithmetic.

Scheme (symmetric, uniform, one scale per layer). For a weighted layer (``Affine`` or
``Conv2d``) with weights ``W``, bias ``b`` and the ``Threshold`` ``theta`` after it, at
``bits`` bits (``Q = 2^(bits-1) - 1`` positive levels):

- ``s = max|W| / Q`` (``s = 1`` when ``W = 0``), ``W_q = round(W / s)``, integers in
  ``[-Q, Q]`` (at most ``Q`` distinct magnitudes besides 0). The real-valued layer this
  stands for (the *dequantized* network, :func:`fake_quantize`) is ``s W_q x + b``.
- The neuron fires when ``s W_q x + b >= theta``, i.e. ``W_q x >= (theta - b) / s``. The
  bias is folded into the threshold and the layer keeps only integers:

  ``W' = W_q``, ``b' = 0``, ``theta' = ceil((theta - b) / s)``  (one integer per neuron)

  For **integer inputs** (spikes: every layer after a ``Threshold``) ``W_q x`` is an
  integer, so ``W_q x >= theta'`` is exact integer arithmetic and fires exactly when the
  dequantized neuron does. (``theta'`` is the smallest integer ``k`` with
  ``s k + b >= theta`` evaluated in float64, so a quotient that rounds across an integer
  cannot make it off by one.)
- For **real inputs** (the first layer on images) ``W_q x`` is not an integer; the same
  scheme is kept with the threshold **rounded to the nearest integer**,
  ``theta' = floor((theta - b) / s + 1/2)``, so the comparison ``W_q x >= theta'`` uses
  integer weights and thresholds but may differ from the dequantized neuron when
  ``W_q x`` lies within half a weight unit of ``(theta - b) / s``.

Other primitives:

- ``SumPool2d`` over integers followed by a ``Threshold`` (the OR pool of spikes:
  ``scale = 1``, ``theta = 0.5``): becomes ``SumPool2d(scale=1)`` and the integer threshold
  ``theta' = min{k : scale * k >= theta}`` (exact; ``1`` for OR).
- A ``Threshold`` over integers on its own: ``theta' = ceil(theta)`` (exact). A
  ``Threshold`` over real values not produced by a weighted layer (e.g. one that encodes
  the input as spikes) is kept as is.
- ``Decode`` is kept as is (its weights ``4K - 2`` and bias are already integers);
  ``Flatten`` too.
- ``Upsample2d`` and ``Unflatten`` copy values (integers stay integers): kept as is.
- A weighted layer **not** directly followed by a ``Threshold`` (e.g. before an average
  pool) cannot fold its bias into a threshold: it is replaced by its dequantized form
  ``(s W_q, b)`` (real weights on the ``2^bits - 1`` level grid) and reported as such.

Readouts. A real-valued readout (the network ends with an ``Affine`` or ``Conv2d`` whose
output is the result: a reconstruction, Q-values, per-pixel scores; see
:attr:`~whetstone.runtime.SpikingNetwork.readout`) has no threshold to absorb its scale and
bias, so its output is **scaled back**: ``readout="quantize"`` (the default) quantizes its
weights like any layer, ``W_q = round(W / s)``, and stores the dequantized form
``(s W_q, b)``, which computes

  ``y = s (W_q z) + b``

i.e. an integer accumulation ``W_q z`` over the spikes ``z`` followed by one multiply by
``s`` and one bias add per output; in float64 it equals :func:`fake_quantize`'s readout.
The report gives its ``scale`` so integer hardware can accumulate ``W_q z`` and rescale.
``readout="keep"`` leaves the readout's weights unquantized (only the hidden layers are
quantized; common practice for the last layer, whose output is the result itself). The
``Decode`` readout is integer already and never changes.

Graphs. A graph network (residual sums, concatenations) is quantized layer by layer with
the same rules, "the ``Threshold`` after it" meaning the ``Threshold`` that is the layer's
only reader and reads only it; integer-valuedness follows the edges (an ``Add`` or
``Concat`` of integers is integer). A weighted layer read by an ``Add`` (the second
convolution of a residual block) has no threshold of its own to absorb its scale and bias,
so it is dequantized, ``(s W_q, b)``, like a layer before an average pool.

The quantized network has the same primitives in the same order and the same sources
(``metadata["origin"]`` stays valid); ``metadata["quantization"]`` records the bits, each
layer's scale and mode.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..runtime import (
    Add,
    Affine,
    Concat,
    Conv2d,
    Decode,
    Flatten,
    SpikingNetwork,
    SumPool2d,
    Threshold,
    Unflatten,
    Upsample2d,
    run,
)
from ..runtime.primitives import Primitive

if TYPE_CHECKING:
    from ..progress import Progress

_INTEGER_PRESERVING = (Decode, Flatten, Unflatten, Upsample2d, Add, Concat)
"""Primitives whose output is integer when their inputs are: copies and reshapes, the
decode ``(4K - 2) a - sum(2K - 1)``, sums and concatenations."""

MIN_BITS = 2
MAX_BITS = 32
READOUT_MODES: tuple[str, ...] = ("quantize", "keep")
"""How :func:`quantize` treats a real-valued readout (see the module doc)."""

ReadoutMode = Literal["quantize", "keep"]


def levels(bits: int) -> int:
    """``Q = 2^(bits-1) - 1``: the largest integer weight magnitude at ``bits`` bits."""
    _check_bits(bits)
    return 2 ** (bits - 1) - 1


def _check_bits(bits: int) -> None:
    if int(bits) != bits or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")


def quantize_weights(weight: np.ndarray, bits: int) -> tuple[np.ndarray, float]:
    """Symmetric uniform quantization: ``(W_q, s)`` with ``s = max|W| / Q``,
    ``W_q = round(W / s)`` (float64 integers in ``[-Q, Q]``), ``Q = 2^(bits-1) - 1``;
    ``s = 1`` and ``W_q = 0`` when ``W`` is all zeros. ``W ~ s W_q``, ``|W - s W_q| <= s/2``.
    """
    q = levels(bits)
    w = np.asarray(weight, dtype=np.float64)
    peak = float(np.abs(w).max()) if w.size else 0.0
    scale = peak / q if peak > 0 else 1.0
    w_q = np.clip(np.rint(w / scale), -q, q)
    return w_q, scale


def _smallest_integer(t: np.ndarray, scale: float, bias: np.ndarray,
                      theta: np.ndarray) -> np.ndarray:
    """Smallest integer ``k`` with ``scale * k + bias >= theta`` (float64, elementwise),
    starting from ``ceil(t)``, ``t = (theta - bias) / scale``."""
    k = np.ceil(t)
    k = np.where(scale * (k - 1) + bias >= theta, k - 1, k)
    return np.where(scale * k + bias < theta, k + 1, k)


def _bias_shape(layer: Affine | Conv2d) -> tuple[int, ...]:
    return (-1,) if isinstance(layer, Affine) else (-1, 1, 1)


def _with_weights(layer: Affine | Conv2d, weight: np.ndarray, bias: np.ndarray
                  ) -> Affine | Conv2d:
    if isinstance(layer, Affine):
        return Affine(weight, bias)
    return Conv2d(weight, bias, stride=layer.stride, padding=layer.padding,
                  dilation=layer.dilation, groups=layer.groups)


def quantize(net: SpikingNetwork, bits: int, integer_inputs: bool = False,
             readout: ReadoutMode = "quantize") -> SpikingNetwork:
    """Quantize ``net``'s weights to ``bits`` bits with integer weights and thresholds.

    See the module doc for the scheme. ``integer_inputs``: declare the network's own input
    integer-valued (bool spikes, raw pixel counts) so the first layer is exact too; by
    default it is real-valued and its thresholds are rounded. ``readout``: for a network
    ending with a real-valued ``Affine`` / ``Conv2d`` readout, ``"quantize"`` its weights
    (output scaled back: ``y = s (W_q z) + b``) or ``"keep"`` them as they are.

    Returns:
        A new :class:`SpikingNetwork`, same primitives in the same order.

    Raises:
        ValueError: ``bits`` outside ``[2, 32]``; an unknown ``readout``.
    """
    _check_bits(bits)
    if readout not in READOUT_MODES:
        raise ValueError(f"readout must be one of {READOUT_MODES}, got {readout!r}")
    readout_index = net.readout_index if net.readout in ("affine", "conv2d") else None
    layers: list[Primitive] = list(net.layers)
    report: list[dict[str, Any]] = []
    consumers = net.consumers()
    integer: dict[int, bool] = {-1: bool(integer_inputs)}  # value index -> integer-valued
    folded: set[int] = set()  # Thresholds rewritten together with the layer they read

    def threshold_after(i: int) -> int | None:
        """The Threshold that is the only reader of layer ``i`` and reads only it."""
        readers = consumers[i]
        if len(readers) == 1 and isinstance(layers[readers[0]], Threshold):
            return readers[0]
        return None

    for i, layer in enumerate(layers):
        if i in folded:
            continue
        int_in = all(integer[j] for j in net.sources(i))
        nxt = threshold_after(i)
        if i == readout_index and readout == "keep":
            report.append({"index": i, "kind": layer.kind, "readout": True,
                           "mode": "readout kept (weights not quantized)"})
            integer[i] = False
            continue
        if isinstance(layer, (Affine, Conv2d)):
            w_q, scale = quantize_weights(layer.weight, bits)
            entry = {"index": i, "kind": layer.kind, "scale": scale,
                     "max_abs_weight": float(np.abs(layer.weight).max(initial=0.0))}
            integer[i] = False
            if i == readout_index:
                layers[i] = _with_weights(layer, w_q * scale, np.asarray(layer.bias))
                entry.update(readout=True, mode="readout: integer weights, output scaled "
                             "back (y = scale * (W_q z) + b)")
            elif nxt is not None:
                bias = np.asarray(layer.bias, np.float64).reshape(_bias_shape(layer))
                theta = np.asarray(layers[nxt].theta, np.float64)  # type: ignore[attr-defined]
                t = (theta - bias) / scale
                if int_in:
                    theta_q = _smallest_integer(t, scale, bias, theta)
                    entry["mode"] = "integer (exact)"
                else:
                    theta_q = np.floor(t + 0.5)
                    entry["mode"] = "integer (threshold rounded: real inputs)"
                layers[i] = _with_weights(layer, w_q, np.zeros(layer.bias.shape))
                layers[nxt] = Threshold(theta_q)
                entry["threshold_range"] = [float(theta_q.min()), float(theta_q.max())]
                folded.add(nxt)
                integer[nxt] = True
            else:
                layers[i] = _with_weights(layer, w_q * scale, np.asarray(layer.bias))
                entry["mode"] = "dequantized (no Threshold reads it alone)"
            report.append(entry)
            continue
        if isinstance(layer, SumPool2d):
            if int_in and nxt is not None:
                theta = np.asarray(layers[nxt].theta, np.float64)  # type: ignore[attr-defined]
                zero = np.zeros_like(theta)
                layers[i] = SumPool2d(layer.kernel, layer.stride, layer.padding, 1.0)
                layers[nxt] = Threshold(
                    _smallest_integer(theta / layer.scale, layer.scale, zero, theta))
                report.append({"index": i, "kind": layer.kind, "mode": "integer (exact)"})
                folded.add(nxt)
                integer[i] = integer[nxt] = True
                continue
            integer[i] = int_in and layer.scale == 1.0
        elif isinstance(layer, Threshold):
            if int_in:
                layers[i] = Threshold(np.ceil(np.asarray(layer.theta, np.float64)))
            integer[i] = True
        elif isinstance(layer, _INTEGER_PRESERVING):
            integer[i] = int_in
        else:  # pragma: no cover
            raise TypeError(f"unknown primitive {type(layer).__name__}")
    metadata = copy.deepcopy(net.metadata)
    metadata["quantization"] = {
        "bits": int(bits),
        "levels": levels(bits),
        "scheme": "symmetric uniform, per layer; bias folded into integer thresholds",
        "integer_inputs": bool(integer_inputs),
        "readout": net.readout,
        "readout_mode": readout,
        "layers": report,
    }
    return SpikingNetwork(layers, metadata, net.inputs)


def fake_quantize(net: SpikingNetwork, bits: int) -> SpikingNetwork:
    """The dequantized reference of :func:`quantize`: every ``Affine`` / ``Conv2d`` gets
    ``s W_q`` (weights snapped to the ``bits``-bit grid), biases and thresholds unchanged.
    On integer inputs :func:`quantize` computes exactly this network in integers."""
    layers: list[Primitive] = []
    for layer in net.layers:
        if isinstance(layer, (Affine, Conv2d)):
            w_q, scale = quantize_weights(layer.weight, bits)
            layer = _with_weights(layer, w_q * scale, np.asarray(layer.bias))
        layers.append(layer)
    metadata = copy.deepcopy(net.metadata)
    metadata["fake_quantization"] = {"bits": int(bits)}
    return SpikingNetwork(layers, metadata, net.inputs)


def quantization_sweep(net: SpikingNetwork, x: np.ndarray, y: np.ndarray | None = None,
                       bits: Iterable[int] = range(2, 17), integer_inputs: bool = False,
                       batch_size: int = 1024, readout: ReadoutMode = "quantize",
                       progress: Progress | None = None,
                       integer_input_scale: float | None = None) -> list[dict[str, Any]]:
    """Accuracy and output error against bit width: one row per ``bits``,
    JSON-serialisable::

        {"bits", "levels": 2^(bits-1) - 1, "accuracy", "agreement", "reference_accuracy",
         "output_max_abs_diff"}

    With ``out`` and ``out_q`` the unquantized and quantized outputs (:func:`run`, float64)
    and ``pred = argmax(out, axis 1)`` (classes, greedy actions, per-pixel classes):
    ``accuracy = mean(pred_q == y)``; ``agreement = mean(pred_q == pred)``, the fraction of
    predictions equal to the unquantized network's; ``reference_accuracy`` is
    ``mean(pred == y)``; ``output_max_abs_diff = max |out_q - out|`` (the error of a
    real-valued readout). ``y`` (optional: ``None`` gives ``None`` accuracies) has the
    shape of ``pred``. For a network whose readout is spikes, ``accuracy``, ``agreement``
    and ``reference_accuracy`` are ``None`` (binary outputs have no scores to rank) and
    ``output_max_abs_diff`` is 1 when any output spike differs, else 0. ``progress`` (a
    :class:`whetstone.progress.Progress`) shows a bar over the unquantized network and the
    bit widths, and one over each network's batches.

    ``integer_input_scale`` (e.g. ``1/255`` for pixels): also score the integer network of
    every ``bits <= 16`` (:func:`~whetstone.quantization.to_integer`) on the integer inputs
    ``x / integer_input_scale``: ``"integer_accuracy"`` and ``"integer_agreement"`` (the
    fraction of its predictions equal to the quantized network's ``pred_q``), or
    ``"integer_reason"`` where it has no integer form.
    """
    scores = net.readout not in ("spikes", "identity")
    widths = list(bits)
    steps: Iterable[int | None] = [None, *widths]  # None: the unquantized reference
    if progress is not None:
        steps = progress.iterate(steps, desc="quantization sweep", unit="network")
    steps = iter(steps)
    next(steps)
    reference = run(net, x, batch_size=batch_size, progress=progress)
    assert isinstance(reference, np.ndarray)
    ref_pred = reference.argmax(axis=1) if scores and reference.ndim >= 2 else None
    if y is not None:
        y = np.asarray(y)
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} != {len(y)}")
        if ref_pred is not None and y.shape != ref_pred.shape:
            raise ValueError(f"y must have shape {ref_pred.shape} (the argmax over axis 1 of "
                             f"the outputs {reference.shape}), got {y.shape}")
    ref_acc = (float((ref_pred == y).mean())
               if y is not None and ref_pred is not None else None)
    pixels, problem = None, None
    if integer_input_scale is not None:
        from .integer import integer_inputs as to_pixels

        try:
            pixels = to_pixels(x, integer_input_scale)
        except ValueError as exc:
            problem = str(exc)
    rows = []
    for b in steps:
        assert b is not None
        out = run(quantize(net, b, integer_inputs, readout), x, batch_size=batch_size,
                  progress=progress)
        assert isinstance(out, np.ndarray)
        pred = out.argmax(axis=1) if ref_pred is not None else None
        row = {
            "bits": int(b), "levels": levels(b),
            "accuracy": (float((pred == y).mean())
                         if pred is not None and y is not None else None),
            "agreement": float((pred == ref_pred).mean()) if pred is not None else None,
            "reference_accuracy": ref_acc,
            "output_max_abs_diff": float(np.abs(out - reference).max(initial=0.0)),
        }
        if integer_input_scale is not None and pred is not None:
            row.update(_integer_row(net, b, integer_input_scale, pixels, problem, pred, y,
                                    batch_size))
        rows.append(row)
    return rows


def _integer_row(net: SpikingNetwork, bits: int, input_scale: float,
                 pixels: np.ndarray | None, problem: str | None, pred_q: np.ndarray,
                 y: np.ndarray | None, batch_size: int) -> dict[str, Any]:
    """The integer network's columns of a :func:`quantization_sweep` row."""
    from .integer import MAX_INTEGER_BITS, to_integer

    if pixels is None:
        return {"integer_reason": problem}
    if bits > MAX_INTEGER_BITS:
        return {"integer_reason": f"integer networks have at most {MAX_INTEGER_BITS} bits"}
    try:
        inet = to_integer(net, bits, input_scale)
    except ValueError as exc:
        return {"integer_reason": str(exc)}
    out = run(inet, pixels, batch_size=batch_size)
    assert isinstance(out, np.ndarray)
    pred = out.argmax(axis=1)
    return {"integer_accuracy": float((pred == y).mean()) if y is not None else None,
            "integer_agreement": float((pred == pred_q).mean())}
