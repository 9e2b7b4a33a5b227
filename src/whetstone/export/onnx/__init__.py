"""ONNX export of spiking networks, and onnxruntime as an engine.

- :func:`to_onnx` writes a :class:`~whetstone.runtime.SpikingNetwork` (a chain or a graph,
  float or integer) as an ONNX model whose input is the network's input ``(N, ...)`` and
  whose output is its readout (what :func:`whetstone.runtime.run` returns);
  :func:`build_model` returns the ``ModelProto`` without writing it.
- :mod:`.writers`: the table from runtime primitive to ONNX nodes (:data:`ONNX_WRITERS`,
  :func:`register_onnx_writer`) and which operator computes each primitive (float network:
  ``MatMul``/``Conv``, ``GreaterOrEqual``; integer network: ``MatMulInteger`` /
  ``ConvInteger`` or integer ``MatMul``, exact).
- :func:`run_onnx`: :func:`whetstone.runtime.run` computed by onnxruntime (one cached
  session per network); :func:`onnx_engine` is it with the engine signature of
  :func:`whetstone.runtime.register_engine`: ``run(net, x, engine="onnxruntime")`` (the
  engine table imports it on first use).

Needs the ``onnx`` extra (``pip install 'whetstone[onnx]'``: onnx and onnxruntime), imported
on first use.
"""

from .builder import LayerSpec, OnnxBuilder, ONNXExportError, Value
from .engine import clear_sessions, onnx_engine, run_onnx, session
from .model import DEFAULT_OPSET, MIN_OPSET, build_model, to_onnx
from .writers import ONNX_WRITERS, register_onnx_writer, writer_for

__all__ = [
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "ONNXExportError",
    "ONNX_WRITERS",
    "LayerSpec",
    "OnnxBuilder",
    "Value",
    "build_model",
    "clear_sessions",
    "onnx_engine",
    "register_onnx_writer",
    "run_onnx",
    "session",
    "to_onnx",
    "writer_for",
]
