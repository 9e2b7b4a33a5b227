"""Conversion of any ``torch.fx``-traceable model into a graph :class:`SpikingNetwork`.

:func:`convert_traced` traces the model with ``torch.fx`` (leaf modules: every module with a
registered converter, whetstone's ``Sharpenable`` activations and ``SoftmaxDecode``
included, and torch's own modules), propagates the example input's shape through the traced
graph (``torch.fx.passes.shape_prop.ShapeProp``, one sample) and converts node by node in
the traced order, which is topological:

- ``placeholder``: the network input (one tensor argument).
- ``call_module``: the module's converter from :data:`~.registry.CONVERTERS`, reading the
  value of its one argument (nested modules are traced through, so only leaves appear).
- ``call_function`` / ``call_method``: the table :data:`~.registry.FUNCTION_CONVERTERS`
  (:mod:`.functions`): sums of two tensors (``Add``), ``torch.cat(dim=1)`` (``Concat``),
  ``torch.flatten(x, 1)`` / ``x.flatten(1)`` / ``x.view(x.size(0), -1)`` (``Flatten``),
  global average pooling.
- ``output``: one tensor, the network's output.

Every node's value is a :class:`Value`: the index of the layer that produced it, whether it
is a spike map, and its batch-free shape (checked against the shape torch propagated).
Layers no path to the output reads are dropped.

Residual sums and thresholds. torch computes ``act(a + b)``; the graph computes
``Threshold(theta)(Add(a, b))`` with the activation's own ``theta``: the same function, since
at sharpness 1 the activation is ``1[x >= theta]`` of its input ``x = a + b``. When ``a``
and ``b`` are spike maps their sum is a real value (0, 1 or 2 per neuron): the ``Add``
feeds the next ``Threshold``'s input as that real-valued sum, exactly what torch adds.

BatchNorm folds into the ``Conv2d`` / ``Affine`` producing its input only when nothing else
reads that output (:attr:`~.registry.ConversionState.foldable`); otherwise it is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from .registry import FUNCTION_CONVERTERS, ConversionError, ConversionState, converter_for

ACTIVATION_NAMES = frozenset({
    "relu", "relu_", "relu6", "sigmoid", "sigmoid_", "tanh", "hardtanh", "hardsigmoid",
    "clamp", "clamp_", "clip", "gelu", "silu", "leaky_relu", "elu", "selu", "softplus",
    "heaviside", "sign", "softmax", "log_softmax",
})
"""Functions and methods that are activations: named in the error that refuses them."""


@dataclass(frozen=True)
class Value:
    """A traced tensor: ``index`` of the layer that produced it (``-1``: the network input),
    ``binary`` (a spike map), ``shape`` (batch-free)."""

    index: int
    binary: bool
    shape: tuple[int, ...]


@dataclass(frozen=True)
class BatchSize:
    """``x.size(0)`` / ``x.shape[0]``: the batch size (any, so not a constant)."""


@dataclass(frozen=True)
class ShapeOf:
    """``x.shape`` / ``x.size()`` of a traced tensor (indexing it gives :class:`BatchSize` for
    axis 0 and the known size for the others)."""

    value: Value


class _Tracer(fx.Tracer):
    """Leaves: modules with a registered converter, and torch's own modules."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return converter_for(m) is not None or super().is_leaf_module(m, module_qualified_name)


def describe(node: fx.Node) -> str:
    """``"node NAME (op TARGET)"`` for error messages."""
    target = node.target if isinstance(node.target, str) else getattr(
        node.target, "__name__", repr(node.target))
    return f"node {node.name!r} ({node.op} {target})"


def _meta_shape(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return None if shape is None else tuple(int(s) for s in shape)[1:]


def _example_tensor(model: nn.Module, example: Tensor | Any) -> Tensor:
    """One sample of ``example`` as a tensor of the model's parameter dtype and device."""
    x = torch.as_tensor(example)[:1]
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    if param is not None and x.dtype != torch.bool:
        x = x.to(dtype=param.dtype, device=param.device)
    return x


def _check_eval(model: nn.Module) -> None:
    """BatchNorm must be in eval mode before the shape pass runs the model (in training mode
    that pass would change its running statistics)."""
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise ConversionError(f"module {name} ({type(m).__name__}): BatchNorm in training "
                                  "mode; call model.eval() so its running statistics are what "
                                  "gets folded")


def trace(model: nn.Module, example: Tensor | Any) -> fx.GraphModule:
    """``model`` traced by ``torch.fx`` with the shapes of ``example`` (one sample) in every
    node's ``meta["tensor_meta"]``.

    Raises:
        ConversionError: the model cannot be traced, or fails on the example.
    """
    _check_eval(model)
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # noqa: BLE001 - torch.fx raises many types; all mean "no trace"
        raise ConversionError(
            f"torch.fx cannot trace {type(model).__name__} ({type(exc).__name__}: {exc}); "
            "to_spiking converts an nn.Sequential or a model whose forward torch.fx traces "
            "(no control flow that depends on tensor values)") from exc
    gm = fx.GraphModule(tracer.root, graph)
    x = _example_tensor(model, example)
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(x)
    except Exception as exc:  # noqa: BLE001 - whatever the model raises on the example
        raise ConversionError(f"the traced model fails on example_input of shape "
                              f"{tuple(torch.as_tensor(example).shape)}: "
                              f"{type(exc).__name__}: {exc}") from exc
    return gm


def convert_traced(model: nn.Module, example: Tensor | Any, state: ConversionState) -> None:
    """Convert the traced ``model`` into ``state`` (its layers, sources and origins; layers
    nothing reads are dropped). See the module doc.

    Raises:
        ConversionError: naming the node for anything that does not convert exactly.
    """
    gm = trace(model, example)
    env: dict[fx.Node, Any] = {}
    aliases: dict[int, list[fx.Node]] = {}
    output: Value | None = None
    for node in gm.graph.nodes:
        where = describe(node)
        if node.op == "placeholder":
            if any(isinstance(v, Value) for v in env.values()):
                raise ConversionError(f"{where}: the model takes more than one tensor input; "
                                      "a spiking network has one input")
            shape = _meta_shape(node)
            if shape is None:
                raise ConversionError(f"{where}: the model's input is not a tensor")
            dtype = node.meta["tensor_meta"].dtype
            env[node] = Value(-1, dtype == torch.bool, shape)
            state.binary = dtype == torch.bool
            continue
        if node.op == "get_attr":
            raise ConversionError(f"{where}: forward reads the parameter or buffer "
                                  f"{node.target!r} directly; only modules (with a converter) "
                                  "convert their parameters")
        if node.op == "output":
            output = _output_value(node, env)
            continue
        args = fx.node.map_arg(node.args, lambda n: env[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
        if node.op == "call_module":
            value = _convert_module(gm, node, args, kwargs, state, aliases)
        else:
            value = _convert_function(node, args, kwargs, state)
        if isinstance(value, Value):
            want = _meta_shape(node)
            if want is not None and value.shape != want:
                raise ConversionError(f"{where}: converted to shape {value.shape} but torch "
                                      f"computes {want} (batch-free)")
            aliases.setdefault(value.index, []).append(node)
        env[node] = value
    if output is None:  # pragma: no cover - torch.fx graphs always have an output
        raise ConversionError("the traced graph has no output")
    if output.index < 0:
        raise ConversionError("the model returns its input unchanged; nothing to convert")
    _keep_read(state, output.index)


def _output_value(node: fx.Node, env: dict[fx.Node, Any]) -> Value:
    (result,) = node.args
    value = env.get(result) if isinstance(result, fx.Node) else None
    if not isinstance(value, Value):
        raise ConversionError(f"{describe(node)}: the model must return one tensor, got "
                              f"{type(result).__name__}")
    return value


def _convert_module(gm: fx.GraphModule, node: fx.Node, args: Any, kwargs: Any,
                    state: ConversionState, aliases: dict[int, list[fx.Node]]) -> Value:
    module = gm.get_submodule(str(node.target))
    name = str(node.target)
    where = f"module {name} ({type(module).__name__})"
    converter = converter_for(module)
    if converter is None:
        raise ConversionError(f"{where}: module type {type(module).__name__} is not "
                              "supported by to_spiking (register_converter adds one)")
    if len(args) != 1 or kwargs or not isinstance(args[0], Value):
        raise ConversionError(f"{where}: called with {len(args)} argument(s) and keywords "
                              f"{sorted(kwargs)}; a converted module takes one tensor")
    value: Value = args[0]
    state.current, state.binary = value.index, value.binary
    state.foldable = value.index >= 0 and all(len(a.users) == 1
                                              for a in aliases.get(value.index, []))
    converter(module, state, name)
    shape = _meta_shape(node)
    if shape is None:
        raise ConversionError(f"{where}: does not return a tensor")
    return Value(state.current, state.binary, state.shape or shape)


def _convert_function(node: fx.Node, args: Any, kwargs: Any, state: ConversionState) -> Any:
    target = node.target
    converter = FUNCTION_CONVERTERS.get(target)
    if converter is None:
        name = target if isinstance(target, str) else getattr(target, "__name__", "")
        hint = (" A functional activation in forward is not sharpenable: use a module "
                "(e.g. whetstone.nn.SpikingBReLU) so that it is sharpened and converts to "
                "a Threshold" if name in ACTIVATION_NAMES
                else " (register_function_converter adds one)")
        raise ConversionError(f"{describe(node)} is not supported by to_spiking.{hint}")
    return converter(node, args, kwargs, state, node.name)


def _keep_read(state: ConversionState, out: int) -> None:
    """Drop the layers the output does not depend on and renumber the sources, so that the
    output is the last layer."""
    keep: set[int] = set()
    stack = [out]
    while stack:
        i = stack.pop()
        if i >= 0 and i not in keep:
            keep.add(i)
            stack.extend(state.inputs[i])
    order = sorted(keep)
    if order[-1] != out:  # pragma: no cover - every layer reads earlier ones only
        raise ConversionError("the output is not the last layer it depends on")
    new = {old: k for k, old in enumerate(order)} | {-1: -1}
    state.layers = [state.layers[i] for i in order]
    state.origin = [state.origin[i] for i in order]
    state.shapes = [state.shapes[i] for i in order]
    state.inputs = [tuple(new[j] for j in state.inputs[i]) for i in order]
    state.current = len(order) - 1


def numel(shape: tuple[int, ...]) -> int:
    """Number of elements of a batch-free shape."""
    return math.prod(shape)
