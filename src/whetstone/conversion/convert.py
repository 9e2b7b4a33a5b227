"""``to_spiking``: a fully sharpened ``nn.Sequential`` to a :class:`SpikingNetwork`.

The walk goes through the (nested) Sequential in order and maps each module:

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
``Dropout``, ``Identity``     nothing (identity in eval)
``SoftmaxDecode``             ``Decode(key)``
============================  ==========================================================

Anything else raises ``ValueError`` naming the module's index and type.

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
from typing import Any

import numpy as np
from torch import Tensor, nn

from .. import __version__
from ..nn.activations import Sharpenable
from ..nn.decode import SoftmaxDecode
from ..runtime import (
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
from ..runtime import run as run_network
from ..runtime.primitives import Primitive
from ..sharpening.allocation import sharpenable_layers
from .fold import fold_batchnorm

_DROPPED = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)


class ConversionError(ValueError):
    """A model that cannot be converted exactly (unsupported or misplaced module)."""


def _walk(module: nn.Sequential, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """``(index, module)`` in forward order, nested Sequentials flattened (``"2.1"``)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential):
            yield from _walk(child, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", child


def _numpy(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv_padding(conv: nn.Conv2d) -> tuple[int, int, int, int]:
    """The padding of ``conv`` per side ``(top, bottom, left, right)``.

    ``'same'``: total ``d (k - 1)`` per dimension, ``total // 2`` before and the rest after
    (torch's choice for even kernels); ``'valid'``: none.
    """
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return (0, 0, 0, 0)
        sides = []
        for k, d in zip(conv.kernel_size, conv.dilation, strict=True):
            total = d * (k - 1)
            sides += [total // 2, total - total // 2]
        return (sides[0], sides[1], sides[2], sides[3])
    ph, pw = _pair(conv.padding)
    return (ph, ph, pw, pw)


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
    """Convert a fully sharpened ``nn.Sequential`` into a :class:`SpikingNetwork`.

    Args:
        model: an ``nn.Sequential`` (nested Sequentials allowed) of the modules in the table
            of :mod:`whetstone.conversion.convert`; BatchNorm layers must be in eval mode.
        example_input: optional batch ``(N, ...)`` the model takes (its values are not used
            beyond one sample, which runs through the converted network to check that the
            shape fits). Its batch-free shape is recorded as ``metadata["input_shape"]``
            (:attr:`SpikingNetwork.input_shape`), so NIR export and the cost counts need no
            shape from the user.
        force: convert even when some sharpenable layer is below sharpness 1 (a warning is
            issued; the result is the model at sharpness 1).

    Returns:
        The network; ``metadata`` records the source, the threshold convention ``">="``,
        the per-layer sharpness, for every primitive the module index it came from, and the
        ``readout`` (``"decode"``, ``"affine"``, ``"conv2d"``, ``"spikes"``, ...; see the
        module doc).

    Raises:
        ValueError: not fully sharp (without ``force``); an ``example_input`` the network
            cannot take (its shape is named); an unsupported module (its index and type are
            named); a BatchNorm not directly after a Linear/Conv2d, in training mode or
            without running statistics; a MaxPool2d over real values; an Upsample that is not
            nearest or has no integer scale_factor.
    """
    if not isinstance(model, nn.Sequential):
        raise ConversionError(f"to_spiking converts nn.Sequential models, got "
                              f"{type(model).__name__}")
    sharpness = _check_sharp(model, force)
    layers: list[Primitive] = []
    origin: list[str] = []
    binary = False  # is the current activation a spike map?

    def emit(prim: Primitive, name: str) -> None:
        layers.append(prim)
        origin.append(name)

    for name, m in _walk(model):
        where = f"module {name} ({type(m).__name__})"
        if isinstance(m, nn.Linear):
            bias = _numpy(m.bias) if m.bias is not None else np.zeros(m.out_features, np.float32)
            emit(Affine(_numpy(m.weight), bias), name)
            binary = False
        elif isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros":
                raise ConversionError(f"{where}: padding_mode {m.padding_mode!r} is not "
                                      "supported (only 'zeros')")
            bias = (_numpy(m.bias) if m.bias is not None
                    else np.zeros(m.out_channels, np.float32))
            emit(Conv2d(_numpy(m.weight), bias, stride=_pair(m.stride), padding=conv_padding(m),
                        dilation=_pair(m.dilation), groups=m.groups), name)
            binary = False
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            target = Affine if isinstance(m, nn.BatchNorm1d) else Conv2d
            prev = layers[-1] if layers else None
            if not isinstance(prev, target):
                raise ConversionError(
                    f"{where}: a {type(m).__name__} must directly follow a "
                    f"{'Linear' if target is Affine else 'Conv2d'} to be folded; it follows "
                    f"{origin[-1] + ' (' + prev.kind + ')' if prev is not None else 'nothing'}")
            if m.training:
                raise ConversionError(f"{where}: BatchNorm in training mode; call model.eval() "
                                      "so its running statistics are what gets folded")
            try:
                w, b = fold_batchnorm(prev.weight, prev.bias, m)
            except ValueError as exc:
                raise ConversionError(f"{where}: {exc}") from exc
            if isinstance(prev, Conv2d):
                layers[-1] = Conv2d(w, b, stride=prev.stride, padding=prev.padding,
                                    dilation=prev.dilation, groups=prev.groups)
            else:
                layers[-1] = Affine(w, b)
            origin[-1] = f"{origin[-1]}+{name}"
        elif isinstance(m, Sharpenable):
            emit(Threshold(float(m.threshold)), name)
            binary = True
        elif isinstance(m, nn.MaxPool2d):
            if not binary:
                raise ConversionError(
                    f"{where}: max-pooling of real values has no spiking equivalent; only "
                    "max-pooling of spikes (after a sharpenable activation) converts, to OR")
            _check_pool(m, where)
            if _pair(m.dilation) != (1, 1):
                raise ConversionError(f"{where}: dilation {m.dilation} is not supported")
            ph, pw = _pair(m.padding)
            emit(SumPool2d(_pair(m.kernel_size), _pair(m.stride), (ph, ph, pw, pw), 1.0), name)
            emit(Threshold(0.5), name)
        elif isinstance(m, nn.AvgPool2d):
            _check_pool(m, where)
            ph, pw = _pair(m.padding)
            kh, kw = _pair(m.kernel_size)
            if (ph or pw) and not m.count_include_pad:
                raise ConversionError(f"{where}: count_include_pad=False with padding is not "
                                      "supported")
            divisor = m.divisor_override or kh * kw
            emit(SumPool2d((kh, kw), _pair(m.stride), (ph, ph, pw, pw), 1.0 / divisor), name)
            binary = False
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise ConversionError(f"{where}: only Flatten(start_dim=1, end_dim=-1) is "
                                      f"supported, got ({m.start_dim}, {m.end_dim})")
            emit(Flatten(), name)
        elif isinstance(m, nn.Unflatten):
            if m.dim != 1 or isinstance(m.unflattened_size, (list, tuple)) and any(
                    isinstance(v, tuple) for v in m.unflattened_size):
                raise ConversionError(f"{where}: only Unflatten(dim=1, sizes) with integer "
                                      f"sizes is supported, got dim={m.dim}, "
                                      f"sizes={m.unflattened_size}")
            try:
                emit(Unflatten(tuple(m.unflattened_size)), name)
            except ValueError as exc:
                raise ConversionError(f"{where}: {exc} (an inferred -1 size is not "
                                      "supported)") from exc
        elif isinstance(m, nn.Upsample):
            emit(Upsample2d(_upsample_scale(m, where)), name)
        elif isinstance(m, _DROPPED):
            continue
        elif isinstance(m, SoftmaxDecode):
            emit(Decode(_numpy(m.key)), name)
            binary = False
        else:
            raise ConversionError(f"{where}: module type {type(m).__name__} is not supported "
                                  "by to_spiking")
    metadata = {
        "source": "whetstone.conversion.to_spiking",
        "whetstone_version": __version__,
        "threshold_convention": ">=",
        "sharpness": sharpness,
        "forced": bool(force and any(s < 1.0 for s in sharpness)),
        "origin": origin,
    }
    net = SpikingNetwork(layers, metadata)
    net.metadata["readout"] = net.readout
    if example_input is not None:
        net.metadata["input_shape"] = _checked_input_shape(net, example_input)
    return net


def _checked_input_shape(net: SpikingNetwork, example: Tensor | np.ndarray) -> list[int]:
    """The batch-free shape of ``example`` (a batch ``(N, ...)``), after one of its samples ran
    through ``net``; ``ConversionError`` naming the shape when the network cannot take it."""
    if isinstance(example, bool) or not hasattr(example, "shape"):
        raise ConversionError(f"example_input must be a batch (a tensor or array of shape "
                              f"(N, ...)), got {type(example).__name__}")
    shape = tuple(int(s) for s in example.shape)
    if len(shape) < 2 or shape[0] < 1:
        raise ConversionError(f"example_input must be a batch of shape (N, ...) with N >= 1, "
                              f"got shape {shape}")
    sample = np.zeros((1, *shape[1:]), dtype=np.float32)
    try:
        run_network(net, sample)
    except (ValueError, RuntimeError) as exc:
        raise ConversionError(f"example_input of shape {shape} does not fit the network: "
                              f"{exc}") from exc
    return list(shape[1:])


def _upsample_scale(m: nn.Upsample, where: str) -> tuple[int, int]:
    """The integer ``(sh, sw)`` of a nearest ``nn.Upsample``; ``ConversionError`` otherwise."""
    if m.mode not in ("nearest", "nearest-exact"):
        raise ConversionError(f"{where}: mode {m.mode!r} is not supported; only nearest "
                              "upsampling (mode='nearest') converts exactly (it copies spikes)")
    if m.scale_factor is None:
        raise ConversionError(f"{where}: size={m.size!r} without scale_factor is not "
                              "supported (the scale depends on the input size); give an "
                              "integer scale_factor")
    factor = m.scale_factor
    pair = (factor, factor) if isinstance(factor, (int, float)) else tuple(factor)
    if len(pair) != 2 or any(float(v) != int(v) or int(v) < 1 for v in pair):
        raise ConversionError(f"{where}: scale_factor {factor!r} is not supported; nearest "
                              "upsampling converts for integer factors >= 1 over (N, C, H, W) "
                              "only (one or two of them)")
    return int(pair[0]), int(pair[1])


def _check_pool(m: nn.MaxPool2d | nn.AvgPool2d, where: str) -> None:
    if m.ceil_mode:
        raise ConversionError(f"{where}: ceil_mode=True is not supported")
    if isinstance(m, nn.MaxPool2d) and m.return_indices:
        raise ConversionError(f"{where}: return_indices=True is not supported")
