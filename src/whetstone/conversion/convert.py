"""``to_spiking``: a fully sharpened model to a :class:`SpikingNetwork`.

An ``nn.Sequential`` is walked in order (nested Sequentials flattened) and becomes a chain.
Any other model, or a Sequential holding a module without a converter (a residual block)
when an example input is given, is traced with ``torch.fx`` and becomes a graph (residual sums,
concatenations: :mod:`.graph`; its functions and tensor methods: :mod:`.functions`); that
needs an example input (for the shapes). Each module converts with the converter registered
for its type (:mod:`.registry`, filled by :mod:`.layers`; users add types with
:func:`~whetstone.conversion.register_converter`):

============================  ==========================================================
torch module                  runtime primitives
============================  ==========================================================
``Linear``                    ``Affine(W, b)`` (zero bias when ``bias=None``)
``Conv2d``                    ``Conv2d`` with padding explicit per side (``'same'`` pads
                              ``total // 2`` before and the rest after, as torch does)
``BatchNorm1d/2d`` (eval)     folded into the preceding Affine / Conv2d (see :mod:`.fold`)
sharpenable activation        ``Threshold(theta)``: 0.5 for SpikingBReLU, 0 for
                              SpikingSigmoid (``z = 1[x >= theta]``, ties fire)
``MaxPool2d`` over spikes     ``SumPool2d(scale=1)`` + ``Threshold(0.5)``: logical OR
``AvgPool2d``                 ``SumPool2d(scale=1 / divisor)`` (exact, real-valued output)
``Flatten``                   ``Flatten``
``Unflatten(1, sizes)``       ``Unflatten(sizes)`` (a reshape of the batch-free shape)
``Upsample`` (nearest)        ``Upsample2d((sh, sw))``: integer ``scale_factor`` only,
                              ``mode="nearest"`` or ``"nearest-exact"`` (the same map for
                              integer factors: ``floor((i + 1/2) / s) = floor(i / s)``);
                              also ``UpsamplingNearest2d``. Exact: it copies values
``AdaptiveAvgPool2d``         ``SumPool2d`` over fixed windows ``(H / oh, W / ow)``,
                              ``scale = 1 / (kh kw)`` (the map must divide evenly; needs
                              the input shape, from ``example_input``).
                              ``AdaptiveAvgPool2d(1)`` is global average pooling
``Dropout``, ``Identity``     nothing (identity in eval)
``SoftmaxDecode``             ``Decode(key)``
============================  ==========================================================

A module with no converter raises ``ConversionError`` (a ``ValueError``) naming its index
and type.

Readout. The last value-producing primitive is the network's readout
(:attr:`~whetstone.runtime.SpikingNetwork.readout`, recorded as ``metadata["readout"]``):
``"decode"`` for a ``SoftmaxDecode``, ``"affine"`` / ``"conv2d"`` for a final ``Linear`` /
``Conv2d`` (with its BatchNorm folded) whose real-valued output is the result (a
reconstruction, Q-values, per-pixel class scores from a 1x1 convolution), ``"spikes"`` when
the model ends with a sharpenable activation (binary output). Converted in float64, a
real-valued readout equals the torch model's output at sharpness 1 up to float64 rounding.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
from torch import Tensor, nn

from .. import __version__
from ..runtime import SpikingNetwork
from ..runtime import run as run_network
from ..sharpening.allocation import sharpenable_layers
from . import functions as _functions  # noqa: F401 - registers the function converters
from . import layers as _layers  # noqa: F401 - registers the converters of torch's modules
from .graph import convert_traced
from .registry import ConversionError, ConversionState, converter_for


def _walk(module: nn.Sequential, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """``(index, module)`` in forward order, nested Sequentials flattened (``"2.1"``)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential):
            yield from _walk(child, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", child


def _check_sharp(model: nn.Module, force: bool) -> list[float]:
    names = {id(m): name for name, m in model.named_modules()}
    layers = sharpenable_layers(model)
    values = [layer.sharpness for layer in layers]
    soft = [f"module {names.get(id(layer), '?')} ({type(layer).__name__}) at sharpness {s:.4g}"
            for layer, s in zip(layers, values, strict=True) if s < 1.0]
    if soft and not force:
        raise ValueError(
            "model is not fully sharpened, so its spiking network would not compute what it "
            f"computes now: {'; '.join(soft)}. Finish sharpening (every layer at 1), or pass "
            "force=True to convert it as if every layer were at sharpness 1")
    if soft:
        warnings.warn(f"converting a model that is not fully sharpened ({'; '.join(soft)}); "
                      "the spiking network is the model at sharpness 1", stacklevel=3)
    return values


def to_spiking(model: nn.Module, example_input: Tensor | np.ndarray | None = None,
               force: bool = False) -> SpikingNetwork:
    """Convert a fully sharpened model into a :class:`SpikingNetwork`.

    Args:
        model: an ``nn.Sequential`` (nested Sequentials allowed) of the modules in the table
            of :mod:`whetstone.conversion.convert`, which becomes a chain; or any module
            (a Sequential with modules without a converter included, given
            ``example_input``) whose ``forward`` ``torch.fx`` traces (nested modules, residual sums,
            concatenations, flattening: :mod:`whetstone.conversion.graph`), which becomes a
            graph. BatchNorm layers must be in eval mode.
        example_input: a batch ``(N, ...)`` the model takes: optional for an
            ``nn.Sequential``, required otherwise (the trace needs the shapes). Its values
            are not used beyond one sample, which runs through the model (shapes) and the
            converted network (to check that the shape fits). Its batch-free shape is
            recorded as ``metadata["input_shape"]`` (:attr:`SpikingNetwork.input_shape`), so
            NIR export and the cost counts need no shape from the user.
        force: convert even when some sharpenable layer is below sharpness 1 (a warning is
            issued; the result is the model at sharpness 1).

    Returns:
        The network; ``metadata`` records the source, the threshold convention ``">="``,
        the per-layer sharpness, for every primitive the module (or traced node) it came
        from, and the ``readout`` (``"decode"``, ``"affine"``, ``"conv2d"``, ``"spikes"``,
        ...; see the module doc).

    Raises:
        ValueError: not fully sharp (without ``force``); an ``example_input`` the network
            cannot take (its shape is named); no ``example_input`` for a model that is not
            an ``nn.Sequential``; an unsupported module (its index and type are named) or
            traced node (named); a BatchNorm not directly after a Linear/Conv2d whose output
            only it reads, in training mode or without running statistics; a MaxPool2d over
            real values; an Upsample that is not nearest or has no integer scale_factor.
    """
    sequential = isinstance(model, nn.Sequential)
    if sequential and example_input is not None and any(
            converter_for(m) is None for _, m in _walk(model)):
        sequential = False  # e.g. residual blocks inside: traced like any other model
    if not sequential and example_input is None:
        raise ConversionError(
            f"to_spiking needs example_input to convert {type(model).__name__}, which is not "
            "an nn.Sequential: it is traced with torch.fx and the example gives the shapes "
            "(e.g. to_spiking(model, images[:1]))")
    shape = None if example_input is None else _example_shape(example_input)
    sharpness = _check_sharp(model, force)
    state = ConversionState(input_shape=None if shape is None else shape[1:],
                            example_shape=shape)
    if sequential:
        for name, m in _walk(model):
            converter = converter_for(m)
            if converter is None:
                raise ConversionError(f"{state.where(m, name)}: module type "
                                      f"{type(m).__name__} is not supported by to_spiking "
                                      "(register_converter adds one; a module built of "
                                      "supported ones converts through torch.fx when "
                                      "example_input is given)")
            converter(m, state, name)
    else:
        convert_traced(model, example_input, state)
    metadata = {
        "source": "whetstone.conversion.to_spiking",
        "whetstone_version": __version__,
        "threshold_convention": ">=",
        "sharpness": sharpness,
        "forced": bool(force and any(s < 1.0 for s in sharpness)),
        "origin": state.origin,
    }
    net = SpikingNetwork(state.layers, metadata, None if sequential else state.inputs)
    net.metadata["readout"] = net.readout
    if shape is not None:
        _check_runs(net, shape)
        net.metadata["input_shape"] = list(shape[1:])
    return net


def _example_shape(example: Tensor | np.ndarray) -> tuple[int, ...]:
    """The shape ``(N, ...)`` of ``example``; ``ConversionError`` when it is not a batch."""
    if isinstance(example, bool) or not hasattr(example, "shape"):
        raise ConversionError(f"example_input must be a batch (a tensor or array of shape "
                              f"(N, ...)), got {type(example).__name__}")
    shape = tuple(int(s) for s in example.shape)
    if len(shape) < 2 or shape[0] < 1:
        raise ConversionError(f"example_input must be a batch of shape (N, ...) with N >= 1, "
                              f"got shape {shape}")
    return shape


def _check_runs(net: SpikingNetwork, shape: tuple[int, ...]) -> None:
    """Run one zero sample of the example's shape through ``net``; ``ConversionError``
    naming the shape when the network cannot take it."""
    sample = np.zeros((1, *shape[1:]), dtype=np.float32)
    try:
        run_network(net, sample)
    except (ValueError, RuntimeError) as exc:
        raise ConversionError(f"example_input of shape {shape} does not fit the network: "
                              f"{exc}") from exc
