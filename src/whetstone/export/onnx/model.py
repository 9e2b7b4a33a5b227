"""The ONNX model of a spiking network: :func:`build_model` (in memory) and :func:`to_onnx`
(to a file).

The graph has one input ``"input"`` ``(N, *input_shape)`` and one output ``"output"``: the
network's readout (:attr:`~whetstone.runtime.SpikingNetwork.readout`), i.e. what
:func:`whetstone.runtime.run` returns: decode logits ``(N, C)``, the values of a real-valued
readout, or the last spikes as 0 / 1. With ``record=True`` it also outputs
``"spikes_{i}"`` (bool, ``(N, ...)``) for every ``Threshold`` ``i``, in layer order, as
``run(..., record=True)`` does.

Types. A float network is computed in ``dtype`` (float32 or float64): its input and output
are ``dtype``. An integer network (:attr:`~whetstone.runtime.SpikingNetwork.is_integer`,
from :func:`whetstone.quantization.to_integer`) is computed in integer operators (see
:mod:`whetstone.export.onnx.writers`): its input is integer (``uint8`` pixels by default)
and its output ``int64``, as :func:`whetstone.runtime.run` returns it; every value equals the
reference's exactly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ...files import atomic_write_bytes
from ...runtime import INPUT, SpikingNetwork, Threshold
from .builder import (
    FLOAT32,
    FLOAT64,
    INT64,
    LayerSpec,
    OnnxBuilder,
    ONNXExportError,
    Value,
    dtype_bound,
)
from .writers import writer_for

DEFAULT_OPSET = 17
"""ONNX opset written by default (onnxruntime reads it from 1.12 on)."""
MIN_OPSET = 13
"""Oldest opset written (``Unsqueeze`` / ``ReduceSum`` take their axes as inputs from 13)."""

WORKSPACE_PROP = "whetstone_im2col_bytes_per_sample"
"""Model property: bytes per sample of the largest im2col matrix (0 when none)."""

Dtype = Literal["float32", "float64"]


def real_dtype(net: SpikingNetwork, dtype: str | np.dtype | type | None) -> np.dtype:
    """The type of real values: ``dtype`` (float32 or float64); by default float32 for a float
    network and float64 for an integer network (where real values, if any, stay exact).

    Raises:
        ONNXExportError: ``dtype`` is neither float32 nor float64.
    """
    if dtype is None:
        return FLOAT64 if net.is_integer else FLOAT32
    try:
        real = np.dtype(dtype)
    except TypeError as exc:
        raise ONNXExportError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from exc
    if real not in (FLOAT32, FLOAT64):
        raise ONNXExportError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return real


def integer_input(net: SpikingNetwork, input_dtype: str | np.dtype | type | None
                  ) -> tuple[np.dtype, int]:
    """The input type of an integer network and the largest ``|p|`` it holds: ``input_dtype``
    (an integer type), by default the smallest of ``uint8``, ``int16``, ``int32`` holding
    ``metadata["integer"]["input_max"]`` (``uint8`` for pixels); the bound is that
    ``input_max`` when recorded (the accumulators were chosen for it), else the type's."""
    recorded = net.metadata.get("integer", {}).get("input_max")
    if input_dtype is None:
        top = int(recorded) if recorded is not None else 255
        dtype = next(np.dtype(t) for t in ("uint8", "int16", "int32", "int64")
                     if dtype_bound(np.dtype(t)) >= top)
    else:
        dtype = np.dtype(input_dtype)
        if not np.issubdtype(dtype, np.integer):
            raise ONNXExportError(f"an integer network reads integer inputs; input_dtype "
                                  f"{dtype} is not an integer type")
    bound = dtype_bound(dtype) if recorded is None else min(int(recorded), dtype_bound(dtype))
    return dtype, bound


def _batch_dim(batch: int | str) -> int | str:
    if batch == "dynamic":
        return "N"
    if isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1:
        raise ONNXExportError(f"batch must be 'dynamic' or a positive int, got {batch!r}")
    return int(batch)


def build_model(net: SpikingNetwork, *, dtype: Dtype | np.dtype | type | None = None,
                batch: int | str = "dynamic", opset: int = DEFAULT_OPSET,
                input_shape: Sequence[int] | None = None,
                input_dtype: str | np.dtype | type | None = None,
                record: bool = False) -> Any:
    """The ONNX ``ModelProto`` of ``net`` (see the module doc), checked by
    ``onnx.checker.check_model``.

    Args:
        net: a chain or graph network (float or integer).
        dtype: the type of real values, ``"float32"`` or ``"float64"`` (default: float32 for
            a float network, float64 for an integer one).
        batch: ``"dynamic"`` (the input's first axis is named ``N``) or a fixed batch size.
        opset: the ONNX opset, at least 13.
        input_shape: the batch-free input shape (default: ``net.input_shape``).
        input_dtype: an integer network's input type (default ``uint8`` for pixels; see
            :func:`integer_input`); a float network reads ``dtype``.
        record: also output the spikes of every ``Threshold`` (``"spikes_{i}"``).

    Raises:
        ONNXExportError: a primitive with no writer (named), no input shape, a shape that
            does not fit a layer, an integer sum beyond int64, or a bad option.
        ImportError: the ``onnx`` package is missing.
    """
    if int(opset) != opset or opset < MIN_OPSET:
        raise ONNXExportError(f"opset must be an int >= {MIN_OPSET}, got {opset!r}")
    real = real_dtype(net, dtype)
    dim = _batch_dim(batch)
    shape = tuple(int(s) for s in input_shape) if input_shape is not None else net.input_shape
    if shape is None:
        raise ONNXExportError("the network's input shape is unknown (no "
                              "metadata['input_shape']); pass input_shape=(C, H, W) or (D,)")
    try:
        shapes = net.shapes(shape)
    except ValueError as exc:
        raise ONNXExportError(f"input shape {shape}: {exc}") from exc
    integer = net.is_integer
    builder = OnnxBuilder(real, integer=integer)
    helper = builder.helper
    if integer:
        in_dtype, in_bound = integer_input(net, input_dtype)
        first = Value(builder.fresh("input"), in_dtype, shape, in_bound)
    else:
        first = Value(builder.fresh("input"), real, shape)
    accumulators = {int(e["index"]): str(e.get("accumulator"))
                    for e in net.metadata.get("integer", {}).get("layers", [])
                    if isinstance(e, dict) and "index" in e}
    values: dict[int, Value] = {INPUT: first}
    recorded: list[tuple[int, Value]] = []
    for i, layer in enumerate(net.layers):
        where = f"layer {i} ({layer.kind})"
        spec = LayerSpec(i, layer, tuple(values[j] for j in net.sources(i)), shapes[i], where,
                         accumulators.get(i))
        values[i] = writer_for(layer, where)(builder, spec)
        if record and isinstance(layer, Threshold):
            recorded.append((i, values[i]))
    last = values[len(net.layers) - 1 if net.layers else INPUT]
    out = builder.cast(last, INT64 if integer else real)
    outputs = [(out, "output")] + [(v, f"spikes_{i}") for i, v in recorded]
    infos = []
    for value, name in outputs:
        builder.nodes.append(helper.make_node("Identity", [value.name], [name],
                                              name=builder.fresh(f"{name}_identity")))
        infos.append(helper.make_tensor_value_info(name, builder.elem_type(value.dtype),
                                                   [dim, *value.shape]))
    graph = helper.make_graph(
        builder.nodes, "whetstone_spiking_network",
        [helper.make_tensor_value_info(first.name, builder.elem_type(first.dtype),
                                       [dim, *shape])],
        infos, initializer=builder.initializers,
        doc_string="Whetstone spiking network, one time step: z = 1[x >= theta] (ties fire)")
    opsets = [helper.make_opsetid("", int(opset))]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="whetstone",
                              ir_version=helper.find_min_ir_version_for(opsets))
    helper.set_model_props(model, {
        "whetstone_readout": net.readout,
        "whetstone_threshold": "z = 1[x >= theta] (ties fire)",
        "whetstone_arithmetic": "integer" if integer else real.name,
        WORKSPACE_PROP: str(builder.workspace),
    })
    builder.onnx.checker.check_model(model)
    return model


def to_onnx(net: SpikingNetwork, path: str | os.PathLike[str], *,
            dtype: Dtype | np.dtype | type | None = None, batch: int | str = "dynamic",
            opset: int = DEFAULT_OPSET, input_shape: Sequence[int] | None = None,
            input_dtype: str | np.dtype | type | None = None) -> Any:
    """Write ``net`` as an ONNX model to ``path`` (atomically: a temporary file in the same
    folder, then renamed) and return the ``ModelProto``; the arguments are those of
    :func:`build_model`. The file runs in any ONNX runtime, e.g.
    ``onnxruntime.InferenceSession(path).run(None, {"input": x})[0]`` with ``x`` of the
    model's input type (``dtype``, or ``uint8`` pixels for an integer network).

    Raises:
        ONNXExportError: see :func:`build_model`; also a model over protobuf's 2 GiB.
    """
    model = build_model(net, dtype=dtype, batch=batch, opset=opset, input_shape=input_shape,
                        input_dtype=input_dtype)
    try:
        blob = model.SerializeToString()
    except ValueError as exc:  # pragma: no cover - needs a > 2 GiB network
        raise ONNXExportError(f"the model does not fit one ONNX file: {exc}") from exc
    atomic_write_bytes(Path(path), blob)
    return model

