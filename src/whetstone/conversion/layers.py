"""The converters of the torch modules whetstone knows (registered in
:data:`~whetstone.conversion.registry.CONVERTERS`; the table of
:mod:`whetstone.conversion.convert` says what each becomes)."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from ..nn.activations import Sharpenable
from ..nn.decode import SoftmaxDecode
from ..runtime import (
    Affine,
    Conv2d,
    Decode,
    Flatten,
    SumPool2d,
    Threshold,
    Unflatten,
    Upsample2d,
)
from .fold import fold_batchnorm
from .registry import ConversionError, ConversionState, register_converter

DROPPED = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)
"""Modules that are the identity in eval mode: they emit nothing."""


def numpy_copy(t: Any) -> np.ndarray:
    """A tensor's values as a new numpy array (detached, on the CPU)."""
    return t.detach().cpu().numpy().copy()


def pair(v: Any) -> tuple[int, int]:
    """``v`` or ``(v, v)`` as a pair of ints."""
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
    ph, pw = pair(conv.padding)
    return (ph, ph, pw, pw)


@register_converter(nn.Linear)
def linear(m: nn.Linear, state: ConversionState, name: str) -> None:
    """``Affine(W, b)`` (zero bias when ``bias=None``)."""
    bias = numpy_copy(m.bias) if m.bias is not None else np.zeros(m.out_features, np.float32)
    state.emit(Affine(numpy_copy(m.weight), bias), name, binary=False)


@register_converter(nn.Conv2d)
def conv2d(m: nn.Conv2d, state: ConversionState, name: str) -> None:
    """``Conv2d`` with the padding explicit per side (zero padding only)."""
    if m.padding_mode != "zeros":
        raise ConversionError(f"{state.where(m, name)}: padding_mode {m.padding_mode!r} is not "
                              "supported (only 'zeros')")
    bias = numpy_copy(m.bias) if m.bias is not None else np.zeros(m.out_channels, np.float32)
    state.emit(Conv2d(numpy_copy(m.weight), bias, stride=pair(m.stride),
                      padding=conv_padding(m), dilation=pair(m.dilation), groups=m.groups),
               name, binary=False)


@register_converter(nn.BatchNorm1d, nn.BatchNorm2d)
def batchnorm(m: nn.BatchNorm1d | nn.BatchNorm2d, state: ConversionState, name: str) -> None:
    """Folded into the ``Affine`` / ``Conv2d`` that produced its input (eval mode, running
    stats), when nothing else reads that layer's output."""
    where = state.where(m, name)
    target = Affine if isinstance(m, nn.BatchNorm1d) else Conv2d
    index = state.current
    prev = state.layers[index] if index >= 0 else None
    if not isinstance(prev, target):
        follows = f"{state.origin[index]} ({prev.kind})" if prev is not None else "nothing"
        raise ConversionError(
            f"{where}: a {type(m).__name__} must directly follow a "
            f"{'Linear' if target is Affine else 'Conv2d'} to be folded; it follows {follows}")
    if not state.foldable:
        raise ConversionError(
            f"{where}: the output of {state.origin[index]} is also read elsewhere, so the "
            "BatchNorm cannot be folded into it (only a Linear / Conv2d whose output nothing "
            "but the BatchNorm reads)")
    if m.training:
        raise ConversionError(f"{where}: BatchNorm in training mode; call model.eval() "
                              "so its running statistics are what gets folded")
    try:
        w, b = fold_batchnorm(prev.weight, prev.bias, m)
    except ValueError as exc:
        raise ConversionError(f"{where}: {exc}") from exc
    if isinstance(prev, Conv2d):
        state.replace(index, Conv2d(w, b, stride=prev.stride, padding=prev.padding,
                                    dilation=prev.dilation, groups=prev.groups), name)
    else:
        state.replace(index, Affine(w, b), name)


@register_converter(Sharpenable)
def sharpenable(m: Sharpenable, state: ConversionState, name: str) -> None:
    """``Threshold(theta)``: the activation at sharpness 1, ``z = 1[x >= theta]``."""
    state.emit(Threshold(float(m.threshold)), name, binary=True)


def _check_pool(m: nn.MaxPool2d | nn.AvgPool2d, where: str) -> None:
    if m.ceil_mode:
        raise ConversionError(f"{where}: ceil_mode=True is not supported")
    if isinstance(m, nn.MaxPool2d) and m.return_indices:
        raise ConversionError(f"{where}: return_indices=True is not supported")


@register_converter(nn.MaxPool2d)
def max_pool2d(m: nn.MaxPool2d, state: ConversionState, name: str) -> None:
    """Over spikes: ``SumPool2d(scale=1)`` then ``Threshold(0.5)``, a logical OR."""
    where = state.where(m, name)
    if not state.binary:
        raise ConversionError(
            f"{where}: max-pooling of real values has no spiking equivalent; only "
            "max-pooling of spikes (after a sharpenable activation) converts, to OR")
    _check_pool(m, where)
    if pair(m.dilation) != (1, 1):
        raise ConversionError(f"{where}: dilation {m.dilation} is not supported")
    ph, pw = pair(m.padding)
    state.emit(SumPool2d(pair(m.kernel_size), pair(m.stride), (ph, ph, pw, pw), 1.0), name)
    state.emit(Threshold(0.5), name, binary=True)


@register_converter(nn.AvgPool2d)
def avg_pool2d(m: nn.AvgPool2d, state: ConversionState, name: str) -> None:
    """``SumPool2d(scale=1 / divisor)``: exact, real-valued output."""
    where = state.where(m, name)
    _check_pool(m, where)
    ph, pw = pair(m.padding)
    kh, kw = pair(m.kernel_size)
    if (ph or pw) and not m.count_include_pad:
        raise ConversionError(f"{where}: count_include_pad=False with padding is not supported")
    divisor = m.divisor_override or kh * kw
    state.emit(SumPool2d((kh, kw), pair(m.stride), (ph, ph, pw, pw), 1.0 / divisor), name,
               binary=False)


def adaptive_avg_pool(state: ConversionState, where: str, name: str, output_size: Any
                      ) -> None:
    """``SumPool2d`` with windows ``(H / oh, W / ow)`` (stride the same) and
    ``scale = 1 / (kh kw)``: torch's adaptive average pooling when the map divides evenly
    (``output_size = 1``: the mean over the whole map, global average pooling). Needs the
    input shape ``(C, H, W)``, known from the example input. Exact: torch divides each
    window's sum by ``kh kw``, and so does the runtime for this scale
    (:attr:`~whetstone.runtime.SumPool2d.divisor`)."""
    shape = state.shape
    if shape is None:
        raise ConversionError(f"{where}: adaptive average pooling needs the input shape; "
                              "pass example_input to to_spiking")
    if len(shape) != 3:
        raise ConversionError(f"{where}: expects (C, H, W) inputs, got {shape}")
    sizes = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    if len(sizes) != 2:
        raise ConversionError(f"{where}: output_size {output_size!r} is not 2-D")
    out = tuple(shape[1 + k] if v is None else int(v) for k, v in enumerate(sizes))
    if any(o < 1 or shape[1 + k] % o for k, o in enumerate(out)):
        raise ConversionError(f"{where}: output_size {out} does not divide the map "
                              f"{shape[1:]}; only evenly dividing adaptive pooling is exact "
                              "(fixed windows)")
    kernel = (shape[1] // out[0], shape[2] // out[1])
    state.emit(SumPool2d(kernel, kernel, (0, 0, 0, 0), 1.0 / (kernel[0] * kernel[1])), name,
               binary=False)


@register_converter(nn.AdaptiveAvgPool2d)
def adaptive_avg_pool2d(m: nn.AdaptiveAvgPool2d, state: ConversionState, name: str) -> None:
    """``SumPool2d`` over fixed windows (see :func:`adaptive_avg_pool`)."""
    adaptive_avg_pool(state, state.where(m, name), name, m.output_size)


@register_converter(nn.Flatten)
def flatten(m: nn.Flatten, state: ConversionState, name: str) -> None:
    """``Flatten`` of the batch-free shape (``start_dim=1, end_dim=-1`` only)."""
    if m.start_dim != 1 or m.end_dim != -1:
        raise ConversionError(f"{state.where(m, name)}: only Flatten(start_dim=1, end_dim=-1) "
                              f"is supported, got ({m.start_dim}, {m.end_dim})")
    state.emit(Flatten(), name)


@register_converter(nn.Unflatten)
def unflatten(m: nn.Unflatten, state: ConversionState, name: str) -> None:
    """``Unflatten(sizes)``: a reshape of the batch-free shape (``dim=1``, integer sizes)."""
    where = state.where(m, name)
    if m.dim != 1 or isinstance(m.unflattened_size, (list, tuple)) and any(
            isinstance(v, tuple) for v in m.unflattened_size):
        raise ConversionError(f"{where}: only Unflatten(dim=1, sizes) with integer sizes is "
                              f"supported, got dim={m.dim}, sizes={m.unflattened_size}")
    try:
        state.emit(Unflatten(tuple(m.unflattened_size)), name)
    except ValueError as exc:
        raise ConversionError(f"{where}: {exc} (an inferred -1 size is not supported)"
                              ) from exc


@register_converter(nn.Upsample)
def upsample(m: nn.Upsample, state: ConversionState, name: str) -> None:
    """``Upsample2d((sh, sw))``: nearest, integer scale factors (it copies values)."""
    where = state.where(m, name)
    if m.mode not in ("nearest", "nearest-exact"):
        raise ConversionError(f"{where}: mode {m.mode!r} is not supported; only nearest "
                              "upsampling (mode='nearest') converts exactly (it copies spikes)")
    if m.scale_factor is None:
        raise ConversionError(f"{where}: size={m.size!r} without scale_factor is not "
                              "supported (the scale depends on the input size); give an "
                              "integer scale_factor")
    factor = m.scale_factor
    scale = (factor, factor) if isinstance(factor, (int, float)) else tuple(factor)
    if len(scale) != 2 or any(float(v) != int(v) or int(v) < 1 for v in scale):
        raise ConversionError(f"{where}: scale_factor {factor!r} is not supported; nearest "
                              "upsampling converts for integer factors >= 1 over (N, C, H, W) "
                              "only (one or two of them)")
    state.emit(Upsample2d((int(scale[0]), int(scale[1]))), name)


@register_converter(*DROPPED)
def dropped(m: nn.Module, state: ConversionState, name: str) -> None:
    """Nothing: the identity in eval mode."""


@register_converter(SoftmaxDecode)
def softmax_decode(m: SoftmaxDecode, state: ConversionState, name: str) -> None:
    """``Decode(key)``: class logits of the output population."""
    state.emit(Decode(numpy_copy(m.key)), name, binary=False)
