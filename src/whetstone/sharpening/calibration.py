"""Data-based calibration of a ReLU network for sharpenable bounded ReLUs (``whetstone.sharpen``).

A bounded ReLU at sharpness 0 is (almost) ``clip(x, 0, 1)`` and at sharpness 1 the step
``1[x >= 0.5]``: its operating range is ``[0, 1]`` with the threshold in the middle. A trained
ReLU layer ``l`` works on ``[0, lambda_l]`` instead, where the calibration takes

    lambda_l = P_p( z_l )      (default p = 99.9)

the ``p``-th percentile of the activation's input ``z_l`` (every element, over the calibration
batches, in the original network; for ReLU6 / Hardtanh ``min(lambda_l, ceiling)``). Scaling
the layer that produces ``z_l`` by ``1 / lambda_l`` and every layer that consumes the
activation's output by ``lambda_l`` maps that range onto ``[0, 1]``:

    producer  Linear / Conv   W_l <- W_l / lambda_l,        b_l <- b_l / lambda_l
              BatchNorm       gamma_l <- gamma_l / lambda_l, beta_l <- beta_l / lambda_l
    consumer  Linear / Conv   W_k <- W_k * lambda_l         (bias unchanged)
              BatchNorm       mu_k <- mu_k / lambda_l,  var_k <- var_k / lambda_l^2,
                              eps_k <- eps_k / lambda_l^2

so a layer between two activations gets ``W_l * lambda_(l-1) / lambda_l`` and
``b_l / lambda_l``, the layer-wise normalisation of the ANN-to-SNN field. The calibrated
network computes ``clip(z_l / lambda_l, 0, 1) = min(relu(z_l), lambda_l) / lambda_l`` where the
original computed ``relu(z_l)``: the same network up to clipping the top ``100 - p`` percent,
and the bounded ReLU's threshold 0.5 sits at ``lambda_l / 2``.

The scale may pass between a producer or consumer and the activation through layers that
commute with a positive factor ``c`` (``f(c x) = c f(x)``): max and average pooling, flatten,
reshape, dropout, identity, zero padding, upsampling (:data:`PASSTHROUGH_MODULES`,
:data:`PASSTHROUGH_FUNCTIONS`, :data:`PASSTHROUGH_METHODS`). An activation whose output is the
model's output (directly or through a ``SoftmaxDecode``) has no consumer to compensate: its
values become the population in ``[0, 1]`` (a decode whose codes all have the same size
keeps its argmax under a positive scale).

An activation whose input is a sum ``z_l = a + b`` (``a + b``, ``torch.add``, ``a.add(b)``;
a projection shortcut such as ``relu(bn2(conv2(h)) + conv_s(h))``) has one producer per
operand: every one is scaled by ``1 / lambda_l``, so the sum is. A sum that reads an
activation's output directly (an identity shortcut ``relu(conv(h) + h)``) is refused: ``h``
carries its own scale.

The producers and consumers are found on the ``torch.fx`` graph of the model (any module
without children is a leaf, so nested ``nn.Sequential`` models and ``forward`` methods
without data-dependent control flow both trace). :func:`plan_sites` refuses, with a
:class:`SharpenError` naming the node, an activation whose producer or a consumer is not a
Linear / Conv / BatchNorm (e.g. a residual ``add``, a ``cat``, the model input), a producer
whose output also goes elsewhere, and a module called at several places.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from ..nn.decode import SoftmaxDecode

DEFAULT_PERCENTILE = 99.9
"""The percentile ``p`` of each activation's input that becomes ``lambda_l``."""

SAMPLES_PER_BATCH = 200_000
"""At most this many values of an activation's input are kept per calibration batch (a
seeded uniform sample, with replacement, when the batch has more), so convolutional layers fit
in memory and the percentile stays cheap."""


class SharpenError(ValueError):
    """The model cannot be swapped or calibrated as asked (the message names the layer)."""


# --------------------------------------------------------------------------- scaling table


@dataclass(frozen=True)
class Scaler:
    """How a layer takes a positive factor on its output (as a producer) or input (consumer).

    ``output(module, c)`` makes the module's output ``c`` times the old one;
    ``input(module, c)`` makes the module give the old output for an input ``c`` times the
    old input. Both act in place on the module's parameters and buffers.
    """

    output: Callable[[nn.Module, float], None]
    input: Callable[[nn.Module, float], None]


@torch.no_grad()
def _affine_output(module: nn.Module, c: float) -> None:
    module.weight.mul_(c)
    if module.bias is not None:
        module.bias.mul_(c)


@torch.no_grad()
def _affine_input(module: nn.Module, c: float) -> None:
    module.weight.mul_(1.0 / c)


@torch.no_grad()
def _batchnorm_output(module: nn.Module, c: float) -> None:
    if not module.affine:
        raise SharpenError(f"{type(module).__name__} without affine parameters cannot scale its "
                           "output: build it with affine=True")
    module.weight.mul_(c)
    module.bias.mul_(c)


@torch.no_grad()
def _batchnorm_input(module: nn.Module, c: float) -> None:
    # BN(c x) with mu' = c mu, var' = c^2 var, eps' = c^2 eps equals BN(x)
    if module.running_mean is None or module.running_var is None:
        raise SharpenError(f"{type(module).__name__} without running statistics cannot take a "
                           "scaled input: build it with track_running_stats=True")
    module.running_mean.mul_(c)
    module.running_var.mul_(c * c)
    module.eps = module.eps * c * c


SCALERS: dict[type[nn.Module], Scaler] = {
    **{t: Scaler(_affine_output, _affine_input)
       for t in (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d,
                 nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)},
    **{t: Scaler(_batchnorm_output, _batchnorm_input)
       for t in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)},
}
"""Layers that can produce or consume a calibrated activation, by type."""

PASSTHROUGH_MODULES: tuple[type[nn.Module], ...] = (
    nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.Upsample,
)
"""Modules that commute with a positive scale: ``f(c x) = c f(x)`` for ``c > 0``."""

PASSTHROUGH_FUNCTIONS: frozenset[Callable[..., object]] = frozenset({
    torch.flatten, torch.reshape, F.dropout, F.max_pool1d, F.max_pool2d, F.max_pool3d,
    F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
    F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.interpolate,
})
"""Functions (``call_function`` nodes) that commute with a positive scale of their first
argument."""

PASSTHROUGH_METHODS: frozenset[str] = frozenset({"view", "reshape", "flatten", "contiguous",
                                                 "squeeze", "unsqueeze", "permute"})
"""Tensor methods (``call_method`` nodes) that commute with a positive scale."""

SHAPE_QUERIES: frozenset[object] = frozenset({"size", "dim"})
"""Uses of a tensor that read only its shape (``x.size(0)`` in ``x.view(x.size(0), -1)``)."""

SINKS: tuple[type[nn.Module], ...] = (SoftmaxDecode,)
"""Modules that read a population in ``[0, 1]`` and end the network: no consumer scale."""


# --------------------------------------------------------------------------- the graph


class _LeafTracer(fx.Tracer):
    """Every module without children is a leaf (its ``forward`` is not traced into)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return next(m.children(), None) is None or super().is_leaf_module(m, module_qualified_name)


def trace(model: nn.Module) -> fx.Graph:
    """The ``torch.fx`` graph of ``model`` with childless modules as leaves.

    Raises :class:`SharpenError` when ``model.forward`` cannot be traced symbolically.
    """
    try:
        return _LeafTracer().trace(model)
    except Exception as exc:  # fx raises many types (TraceError, TypeError, ...)
        raise SharpenError(f"torch.fx cannot trace {type(model).__name__}.forward ({exc}); "
                           "sharpen needs a forward without data-dependent control flow, e.g. "
                           "an nn.Sequential") from exc


@dataclass
class Site:
    """One activation to calibrate: its module name, the producer (a layer in :data:`SCALERS`)
    and the consumers (layers in :data:`SCALERS`); ``output`` when its values also (or only)
    reach the model's output or a sink such as ``SoftmaxDecode``."""

    name: str
    producer: str
    consumers: list[str] = field(default_factory=list)
    output: bool = False
    summed_with: list[str] = field(default_factory=list)
    """Further producers when the activation's input is a sum of several producers' outputs
    (each scaled like ``producer``)."""

    @property
    def producers(self) -> list[str]:
        return [self.producer, *self.summed_with]


def _describe(node: fx.Node, model: nn.Module) -> str:
    if node.op == "call_module":
        return f"{node.target!r} ({type(model.get_submodule(str(node.target))).__name__})"
    if node.op == "call_function":
        return f"{getattr(node.target, '__name__', node.target)!r} (a function)"
    if node.op == "call_method":
        return f"'.{node.target}()' (a tensor method)"
    if node.op == "placeholder":
        return f"the model input {node.target!r}"
    return f"{node.name!r} ({node.op})"


def _module(node: fx.Node, model: nn.Module) -> nn.Module | None:
    return model.get_submodule(str(node.target)) if node.op == "call_module" else None


def _passes_scale(node: fx.Node, model: nn.Module) -> bool:
    if node.op == "call_module":
        return isinstance(_module(node, model), PASSTHROUGH_MODULES)
    if node.op == "call_function":
        return node.target in PASSTHROUGH_FUNCTIONS
    return node.op == "call_method" and node.target in PASSTHROUGH_METHODS


def _data_users(node: fx.Node) -> list[fx.Node]:
    """Users of ``node`` that read its values (shape queries left out)."""
    return [u for u in node.users if not (u.op in ("call_method", "call_function")
                                          and u.target in SHAPE_QUERIES)]


SUMS: frozenset[object] = frozenset({operator.add, operator.iadd, torch.add, "add", "add_"})
"""``call_function`` targets and ``call_method`` names of a plain sum ``a + b``."""


def _is_sum(node: fx.Node) -> bool:
    if node.op not in ("call_function", "call_method") or node.target not in SUMS:
        return False
    operands = [a for a in (*node.args, *node.kwargs.values()) if isinstance(a, fx.Node)]
    plain = set(node.kwargs) <= {"other", "input"}
    return plain and len(operands) == len(node.args) + len(node.kwargs) == 2


def _producers(act: fx.Node, model: nn.Module) -> list[str]:
    """The layers whose outputs make the activation's input (one, or one per operand of a
    sum), each through pass-through nodes only and read by nothing else."""
    found: list[str] = []
    pending: list[tuple[object, fx.Node]] = [(act.args[0] if act.args else None, act)]
    while pending:
        node, after = pending.pop(0)
        while True:
            if not isinstance(node, fx.Node):
                raise SharpenError(f"activation {act.target!r}: its input is not a tensor node")
            users = _data_users(node)
            if len(users) != 1:
                others = ", ".join(_describe(u, model) for u in users if u is not after)
                raise SharpenError(f"activation {act.target!r}: its input "
                                   f"{_describe(node, model)} also feeds {others}; scaling it "
                                   "would change that branch too")
            module = _module(node, model)
            if module is not None and type(module) in SCALERS:
                if str(node.target) not in found:  # a + a: one scale suffices
                    found.append(str(node.target))
                break
            if _is_sum(node):
                pending += [(a, node) for a in (*node.args, *node.kwargs.values())]
                break
            if not _passes_scale(node, model):
                raise SharpenError(
                    f"activation {act.target!r}: its producer is {_describe(node, model)}, "
                    "not a Linear, Conv or BatchNorm layer (through pooling, flatten or "
                    "dropout, or a sum of such layers); sharpen can calibrate only such "
                    "producers")
            node, after = node.args[0], node
    return found


def _consumers(act: fx.Node, model: nn.Module) -> tuple[list[str], bool]:
    consumers: list[str] = []
    reaches_output = False
    stack = list(_data_users(act))
    while stack:
        node = stack.pop()
        module = _module(node, model)
        if node.op == "output" or isinstance(module, SINKS):
            reaches_output = True
        elif module is not None and type(module) in SCALERS:
            consumers.append(str(node.target))
        elif _passes_scale(node, model):
            stack.extend(_data_users(node))
        else:
            raise SharpenError(
                f"activation {act.target!r}: its output goes to {_describe(node, model)}, not "
                "to a Linear, Conv or BatchNorm layer (through pooling, flatten or dropout); "
                "sharpen cannot compensate the scale there (a residual add or concatenation "
                "needs the same scale on every branch)")
    return consumers, reaches_output


def plan_sites(model: nn.Module, is_activation: Callable[[nn.Module], bool]) -> list[Site]:
    """The calibration :class:`Site` of every activation of ``model`` (modules for which
    ``is_activation`` is true), in forward (graph) order.

    Raises :class:`SharpenError` for a model ``torch.fx`` cannot trace, a module called at
    several places, or an activation whose producer or consumers are not in :data:`SCALERS`
    (through :data:`PASSTHROUGH_MODULES` and friends).
    """
    graph = trace(model)
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[str(node.target)] = calls.get(str(node.target), 0) + 1
    sites = []
    for node in graph.nodes:
        if node.op != "call_module" or not is_activation(_module(node, model)):
            continue
        name = str(node.target)
        producers = _producers(node, model)
        consumers, output = _consumers(node, model)
        for used in (name, *producers, *consumers):
            if calls[used] > 1:
                raise SharpenError(
                    f"module {used!r} is called at {calls[used]} places in forward; give each "
                    "place its own module (sharpness and scales are per module)")
        sites.append(Site(name, producers[0], consumers, output, producers[1:]))
    return sites


# --------------------------------------------------------------------------- measuring


def _inputs(batch: object) -> Tensor:
    """The input tensor of a calibration batch: the batch itself or its first element."""
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    raise SharpenError(f"calibration batches must be tensors or (x, y) pairs, got "
                       f"{type(batch).__name__}")


@torch.no_grad()
def measure_scales(model: nn.Module, names: Iterable[str], calibration: Iterable[object],
                   percentile: float = DEFAULT_PERCENTILE, max_batches: int | None = None,
                   ceilings: Mapping[str, float] | None = None, seed: int = 0
                   ) -> dict[str, float]:
    """``lambda_l = min(P_p(z_l), ceiling_l)`` for each activation module named in ``names``.

    ``z_l`` is the input of module ``l`` over the ``calibration`` batches (tensors or
    ``(x, y)`` pairs; at most ``max_batches``), every element counted (a seeded sample of
    :data:`SAMPLES_PER_BATCH` per batch when a batch has more); ``P_p`` is numpy's linear
    percentile. The model runs in eval mode and is left in the mode it was in.

    Raises :class:`SharpenError` for a percentile outside ``(0, 100]``, no calibration batch,
    or a layer whose ``lambda_l`` is not positive (it never fires on the calibration data).
    """
    if not 0.0 < percentile <= 100.0:
        raise SharpenError(f"percentile must lie in (0, 100], got {percentile}")
    names = list(names)
    samples: dict[str, list[np.ndarray]] = {n: [] for n in names}
    gen = torch.Generator().manual_seed(seed)

    def hook(name: str) -> Callable[[nn.Module, tuple[Tensor, ...]], None]:
        def record(_module: nn.Module, args: tuple[Tensor, ...]) -> None:
            values = args[0].detach().reshape(-1).float().cpu()
            if values.numel() > SAMPLES_PER_BATCH:
                values = values[torch.randint(values.numel(), (SAMPLES_PER_BATCH,), generator=gen)]
            samples[name].append(values.numpy())
        return record

    handles = [model.get_submodule(n).register_forward_pre_hook(hook(n)) for n in names]
    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.eval()
    batches = 0
    try:
        for batch in calibration:
            if max_batches is not None and batches >= max_batches:
                break
            model(_inputs(batch).to(device))
            batches += 1
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if batches == 0:
        raise SharpenError("the calibration data yielded no batch")
    ceilings = ceilings or {}
    scales = {}
    for name in names:
        value = float(np.percentile(np.concatenate(samples[name]), percentile))
        value = min(value, ceilings.get(name, float("inf")))
        if not value > 0.0:
            raise SharpenError(
                f"activation {name!r}: the {percentile}th percentile of its input over the "
                f"calibration data is {value:.4g}, so it never fires; a positive scale is "
                "needed (train the network longer or use more calibration data)")
        scales[name] = value
    return scales


def apply_scales(model: nn.Module, sites: Iterable[Site], scales: Mapping[str, float]) -> None:
    """Rescale ``model`` in place: for each site's ``lambda``, the producer's output by
    ``1 / lambda`` and each consumer's input by ``lambda`` (the module doc's equations)."""
    for site in sites:
        lam = float(scales[site.name])
        for name in site.producers:
            producer = model.get_submodule(name)
            SCALERS[type(producer)].output(producer, 1.0 / lam)
        for name in site.consumers:
            consumer = model.get_submodule(name)
            SCALERS[type(consumer)].input(consumer, 1.0 / lam)
