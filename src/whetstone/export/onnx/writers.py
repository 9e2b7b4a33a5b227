"""The ONNX writers: one function per runtime primitive, in a table users can extend.

:func:`~whetstone.export.onnx.build_model` walks the network in its layers' order and calls,
for every primitive, the writer registered for its type in :data:`ONNX_WRITERS`:
``writer(builder, spec) -> Value``, which appends the primitive's nodes to the
:class:`~whetstone.export.onnx.builder.OnnxBuilder` and returns the value it computes. A
primitive with no writer is refused with
:class:`~whetstone.export.onnx.builder.ONNXExportError` naming the layer and its type::

    from whetstone.export.onnx import Value, register_onnx_writer

    @register_onnx_writer(MyPrimitive)
    def _(builder, spec):
        x = builder.cast(spec.inputs[0], builder.real)
        return Value(builder.node("Neg", [x.name], f"{spec.index}_neg"), x.dtype, spec.out)

Operators (``N`` the batch; every shape below is the graph's, batch first):

=================  ==============================================  ===========================
primitive          float network (``real`` = float32 / float64)    integer network
=================  ==============================================  ===========================
``Affine``         ``MatMul(x, W^T) + b``                          ``MatMulInteger`` (int32)
                                                                   of 8-bit ``x`` and ``W``
                                                                   (:func:`int8_route`: int8
                                                                   ``W``, or ``W + 128`` with
                                                                   zero point 128 where int8
                                                                   would saturate); else
                                                                   ``Cast`` to the accumulator
                                                                   (int32 / int64), ``MatMul``
``Conv2d``         float32: ``Conv`` (pads, strides, dilations,    float32 ``Conv``, exact
                   group); float64: im2col (``Pad``, one           when every sum stays within
                   ``Slice`` per kernel offset, ``Concat``,        ``2^24`` (8-bit networks),
                   ``Reshape``, grouped ``MatMul``): onnxruntime   ``Cast`` to the
                   has no float64 ``Conv`` on the CPU; ``+ b``     accumulator; else
                                                                   ``ConvInteger`` (same
                                                                   routes as ``Affine``), else
                                                                   im2col with an integer
                                                                   ``MatMul`` (no integer
                                                                   ``Conv``); ``+ b``
``SumPool2d``      window sum (``Reshape`` + ``ReduceSum`` when    the same in the
                   stride = kernel, else a ``Slice`` per offset    accumulator type (scale 1)
                   and ``Add``), then ``Div`` by the divisor
                   ``d`` (``scale = 1/d``) or ``Mul`` by ``scale``
``Threshold``      ``GreaterOrEqual(x, theta)`` (bool; ties fire)  the same in integers
``Decode``         ``MatMul(a, 4K - 2) - (2K - 1).sum(1)``         as ``Affine`` (int8 weights)
``Flatten``        ``Flatten(axis=1)``                             the same
``Unflatten``      ``Reshape(0, *sizes, ...)``                     the same
``Upsample2d``     ``Unsqueeze``, ``Expand``, ``Reshape``          the same (any type)
                   (``y[i, j] = x[i // sh, j // sw]``; ``Resize``
                   has no float64 / bool kernel on the CPU)
``Add``            ``Add`` chain, left to right, in ``real``       ``Add`` in the accumulator
``Concat``         ``Concat(axis=1)`` (bool stays bool)            the same
=================  ==============================================  ===========================

onnxruntime's CPU kernels (1.32, measured): ``MatMul`` has float, double, int32, int64;
``Gemm`` float and double; ``Conv`` float only (no double, no integers), ``ConvInteger`` and
``MatMulInteger`` 8-bit operands with int32 results; ``Sum`` has no integer kernel (hence
``Add`` chains). No integer layer falls back to float64; the float32 ``Conv`` of an integer
layer is used only where it is exact (sums within ``2^24``).

Spikes are ``bool`` between layers and are cast (once per value and type) to what their
reader takes: ``real`` for float layers, ``uint8`` for ``MatMulInteger`` / ``ConvInteger``,
the accumulator type otherwise. Integer accumulators follow a bound on every value
(:attr:`Value.bound`): ``int32`` when the largest possible ``|sum|`` (``sum_i |W_oi| m_i +
|b_o|``, ``m_i`` the bound of the input) is below ``2^31``, else ``int64`` (also when
:func:`whetstone.quantization.to_integer` recorded ``int64``). Every integer operator is
exact, so an integer network gives the same integers in any runtime and summation order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

from ...runtime import (
    Add,
    Affine,
    Concat,
    Conv2d,
    Decode,
    Flatten,
    Primitive,
    SumPool2d,
    Threshold,
    Unflatten,
    Upsample2d,
)
from .builder import (
    BOOL,
    EXACT_FLOAT32,
    EXACT_FLOAT64,
    FLOAT32,
    FLOAT64,
    INT8,
    INT32,
    INT64,
    UINT8,
    LayerSpec,
    OnnxBuilder,
    ONNXExportError,
    Value,
    dtype_bound,
    integer_type_for,
)

OnnxWriter = Callable[[OnnxBuilder, LayerSpec], Value]
"""``writer(builder, spec) -> Value``: the value of the primitive's output."""

ONNX_WRITERS: dict[type[Primitive], OnnxWriter] = {}
"""Primitive type -> writer; fill with :func:`register_onnx_writer`."""

_W = TypeVar("_W", bound=OnnxWriter)


def register_onnx_writer(*primitive_types: type[Primitive]) -> Callable[[_W], _W]:
    """Decorator: register the function as the ONNX writer of ``primitive_types`` (replacing
    any earlier entry for exactly those types)."""
    if not primitive_types or not all(isinstance(t, type) and issubclass(t, Primitive)
                                      for t in primitive_types):
        raise TypeError("register_onnx_writer takes one or more runtime Primitive subclasses")

    def decorate(fn: _W) -> _W:
        for primitive_type in primitive_types:
            ONNX_WRITERS[primitive_type] = fn
        return fn

    return decorate


def writer_for(layer: Primitive, where: str) -> OnnxWriter:
    """The writer of ``layer``'s type (or of its nearest registered base class).

    Raises:
        ONNXExportError: no writer is registered (names the layer and its type).
    """
    for cls in type(layer).__mro__:
        fn = ONNX_WRITERS.get(cls)
        if fn is not None:
            return fn
    raise ONNXExportError(f"{where}: no ONNX writer for primitive {type(layer).__name__} "
                          "(whetstone.export.onnx.register_onnx_writer adds one)")


def _hint(spec: LayerSpec) -> str:
    return f"{spec.index}_{spec.layer.kind.lower()}"


def _is_int_array(arr: np.ndarray) -> bool:
    return bool(np.issubdtype(np.asarray(arr).dtype, np.integer))


def _fits_int8(arr: np.ndarray) -> bool:
    a = np.asarray(arr)
    return a.size == 0 or (int(a.min()) >= -128 and int(a.max()) <= 127)


INT16_MAX = 2**15 - 1


def int8_route(x: Value, weight: np.ndarray, fan_in: int, acc: np.dtype) -> str | None:
    """How ``MatMulInteger`` / ``ConvInteger`` can compute ``W x`` exactly, or ``None`` (then
    an integer ``MatMul`` does):

    - ``"signed"``: ``x`` as ``uint8`` (spikes, pixels) or ``int8``, ``W`` as ``int8``, when
      ``2 m max|W| <= 2^15 - 1`` (``m`` the bound of ``x``). onnxruntime's x86 kernels for
      8-bit times signed 8-bit (AVX2, AVX-512 without VNNI) add *pairs* of products in
      saturating int16 (``vpmaddubsw``), measured: 255 * 127 + 255 * 127 saturates and the
      sum is wrong. Spikes (``m = 1``) are always safe, pixels with weights up to 64 too.
    - ``"unsigned"``: ``x`` as ``uint8``, ``W + 128`` as ``uint8`` with the weight zero point
      128, when every partial sum ``fan_in m 255`` fits int32: the unsigned kernels widen to
      16 bits before multiplying (no saturation; measured exact for pixels against 8-bit
      weights), and the zero point is subtracted in int32.

    Both require an ``int32`` accumulator and weights in ``[-128, 127]``.
    """
    if acc != INT32 or not _fits_int8(weight):
        return None
    if x.dtype == BOOL:
        small = UINT8
    elif x.dtype in (UINT8, INT8):
        small = x.dtype
    else:
        return None
    m = x.bound if x.bound is not None else dtype_bound(small)
    top = int(np.abs(np.asarray(weight, dtype=np.int64)).max(initial=0))
    if 2 * m * top <= INT16_MAX:
        return "signed"
    if small == UINT8 and fan_in * m * 255 < 2**31:
        return "unsigned"
    return None


def integer_product(builder: OnnxBuilder, op: str, x: Value, weight: np.ndarray,
                    route: str, hint: str, **attrs: object) -> str:
    """``op`` (``MatMulInteger`` or ``ConvInteger``) of ``x`` and ``weight`` along ``route``
    (:func:`int8_route`); the int32 result."""
    xa = builder.cast(x, UINT8 if x.dtype == BOOL else x.dtype)
    if route == "signed":
        w = builder.const(np.asarray(weight).astype(INT8), f"{hint}_weight")
        return builder.node(op, [xa.name, w], hint, **attrs)
    w = builder.const((np.asarray(weight, dtype=np.int64) + 128).astype(UINT8), f"{hint}_weight")
    zero = builder.const(np.array(0, dtype=UINT8), f"{hint}_x_zero_point")
    shift = builder.const(np.array(128, dtype=UINT8), f"{hint}_w_zero_point")
    return builder.node(op, [xa.name, w, zero, shift], hint, **attrs)


def _accumulator(spec: LayerSpec, bound: int) -> np.dtype:
    """The integer type of a weighted layer's sums: wide enough for ``bound``, and ``int64``
    when :func:`~whetstone.quantization.to_integer` recorded it."""
    acc = integer_type_for(bound, spec.where)
    return INT64 if spec.accumulator == "int64" else acc


def _weighted_bound(weight: np.ndarray, bias: np.ndarray, in_bound: int) -> int:
    """``max_o (sum_i |W[o, i]| m + |b_o|)`` for inputs ``|x_i| <= m``, in Python integers
    (no overflow)."""
    rows = np.abs(np.asarray(weight, dtype=np.int64)).reshape(len(weight), -1)
    sums = rows.sum(axis=1, dtype=object)
    return max((int(r) * int(in_bound) + abs(int(b))
                for r, b in zip(sums, np.asarray(bias).reshape(-1), strict=True)), default=0)


def _integer_weights(layer: Primitive, x: Value, integer: bool) -> bool:
    """Whether a weighted layer is computed in integers: an integer network's layer with
    integer weights (a ``Decode`` has integer weights ``4K - 2`` by construction) over an
    integer input."""
    weight = getattr(layer, "weight", None)
    if not integer or not x.is_integer or weight is None:
        return False
    return isinstance(layer, Decode) or _is_int_array(weight)


def _dense(builder: OnnxBuilder, spec: LayerSpec, weight: np.ndarray, bias: np.ndarray
           ) -> Value:
    """``y = x W^T + b``: ``(N, in) -> (N, out)``."""
    x, hint = spec.inputs[0], _hint(spec)
    if _integer_weights(spec.layer, x, builder.integer):
        w = np.asarray(weight).astype(np.int64)
        b = np.asarray(bias).astype(np.int64)
        bound = _weighted_bound(w, b, x.bound if x.bound is not None else 0)
        acc = _accumulator(spec, bound)
        route = int8_route(x, w, w.shape[1], acc)
        if route is not None:
            y = integer_product(builder, "MatMulInteger", x, w.T, route, hint)
        else:
            xa = builder.cast(x, acc)
            y = builder.node("MatMul",
                             [xa.name, builder.const(w.T.astype(acc), f"{hint}_weight")], hint)
        return Value(builder.add_bias(y, b, acc, hint), acc, spec.out, bound)
    xa = builder.cast(x, builder.real)
    wt = np.asarray(weight, dtype=np.float64).T.astype(builder.real)
    y = builder.node("MatMul", [xa.name, builder.const(wt, f"{hint}_weight")], hint)
    return Value(builder.add_bias(y, np.asarray(bias, np.float64), builder.real, hint),
                 builder.real, spec.out)


@register_onnx_writer(Affine)
def write_affine(builder: OnnxBuilder, spec: LayerSpec) -> Value:
    """``y = W x + b``: ``MatMul`` + ``Add`` (``MatMulInteger`` or an integer ``MatMul`` in
    an integer network)."""
    layer = spec.layer
    assert isinstance(layer, Affine)
    return _dense(builder, spec, layer.weight, layer.bias)


@register_onnx_writer(Decode)
def write_decode(builder: OnnxBuilder, spec: LayerSpec) -> Value:
    """``logits = (4K - 2) a - (2K - 1).sum(1)`` as an affine map (int8 weights in an integer
    network)."""
    layer = spec.layer
    assert isinstance(layer, Decode)
    return _dense(builder, spec, layer.weight, layer.bias)


def _pad(builder: OnnxBuilder, x: str, padding: tuple[int, int, int, int], hint: str) -> str:
    """Zero padding ``(top, bottom, left, right)`` of ``(N, C, H, W)``."""
    top, bottom, left, right = padding
    if not any(padding):
        return x
    pads = builder.shape_const((0, 0, top, left, 0, 0, bottom, right))
    return builder.node("Pad", [x, pads], f"{hint}_pad")


def _offset_slice(builder: OnnxBuilder, x: str, start: tuple[int, int],
                  count: tuple[int, int], step: tuple[int, int], hint: str) -> str:
    """``x[:, :, s0 : s0 + (c0 - 1) t0 + 1 : t0, s1 : ... : t1]``: ``count`` rows and columns
    from ``start`` with strides ``step``."""
    ends = tuple(s + (c - 1) * t + 1 for s, c, t in zip(start, count, step, strict=True))
    return builder.node("Slice", [x, builder.shape_const(start), builder.shape_const(ends),
                                  builder.shape_const((2, 3)), builder.shape_const(step)],
                        f"{hint}_slice")


def im2col_conv(builder: OnnxBuilder, x: Value, layer: Conv2d, out: tuple[int, ...],
                dtype: np.dtype, hint: str) -> str:
    """A convolution from operators every numeric type has (``Pad``, ``Slice``, ``Concat``,
    ``Reshape``, ``MatMul``), for types ``Conv`` lacks in onnxruntime (float64, int32,
    int64):

    ``cols[n, g, c kh kw + u kw + v, i Wo + j] = xpad[n, g Cg + c, i sh + u dh, j sw + v dw]``,
    ``y[n, g, o, l] = sum_k W[g, o, k] cols[n, g, k, l]``

    with ``W`` the weight ``(Cout, Cg, kh, kw)`` reshaped to ``(G, Cout / G, Cg kh kw)``.
    The ``Slice`` of offset ``(u, v)`` is ``(N, C, Ho, Wo)``; concatenating the ``kh kw``
    slices along axis 2 lays them out as ``(N, C, kh kw, Ho, Wo)``, so one ``Reshape`` gives
    ``cols``. Returns ``(N, Cout, Ho, Wo)`` without the bias.
    """
    cout, cg, kh, kw = layer.weight.shape
    g = layer.groups
    _, ho, wo = out
    builder.workspace = max(builder.workspace,
                            cg * g * kh * kw * ho * wo * np.dtype(dtype).itemsize)
    xin = _pad(builder, builder.cast(x, dtype).name, layer.padding, hint)
    sh, sw = layer.stride
    dh, dw = layer.dilation
    parts = [_offset_slice(builder, xin, (u * dh, v * dw), (ho, wo), (sh, sw), hint)
             for u in range(kh) for v in range(kw)]
    cols = parts[0] if len(parts) == 1 else builder.node("Concat", parts, f"{hint}_cols",
                                                         axis=2)
    cols = builder.node("Reshape", [cols, builder.shape_const((0, g, cg * kh * kw, ho * wo))],
                        f"{hint}_cols")
    w = np.asarray(layer.weight).reshape(g, cout // g, cg * kh * kw)
    if np.issubdtype(dtype, np.floating):
        w = w.astype(np.float64)
    y = builder.node("MatMul", [builder.const(w.astype(dtype), f"{hint}_weight"), cols], hint)
    return builder.node("Reshape", [y, builder.shape_const((0, cout, ho, wo))], f"{hint}_out")


def _conv_attrs(layer: Conv2d) -> dict[str, object]:
    top, bottom, left, right = layer.padding
    return {"kernel_shape": list(layer.weight.shape[2:]), "pads": [top, left, bottom, right],
            "strides": list(layer.stride), "dilations": list(layer.dilation),
            "group": layer.groups}


@register_onnx_writer(Conv2d)
def write_conv2d(builder: OnnxBuilder, spec: LayerSpec) -> Value:
    """Cross-correlation with zero padding (see :class:`~whetstone.runtime.Conv2d`):
    ``Conv`` in float32, im2col in float64; then ``+ b``.

    Integer network: when no sum can exceed ``2^24`` in magnitude (``sum_i |W_oi| m <=
    2^24``: every 8-bit network over spikes or pixels up to ``2^24 / (127 * 255)`` = 518
    weights per output) the float32 ``Conv`` computes it **exactly**: every product and every
    partial sum is an integer of magnitude at most ``2^24``, which float32 holds exactly, so
    no summation order, blocking or fused multiply-add can round; the result is cast to the
    accumulator type. (onnxruntime's ``ConvInteger`` was measured 5x slower than its float
    ``Conv`` on these layers.) Wider sums take ``ConvInteger`` (:func:`int8_route`) or an
    integer im2col.
    """
    layer, x, hint = spec.layer, spec.inputs[0], _hint(spec)
    assert isinstance(layer, Conv2d)
    if _integer_weights(layer, x, builder.integer):
        w = np.asarray(layer.weight).astype(np.int64)
        b = np.asarray(layer.bias).astype(np.int64)
        m = x.bound if x.bound is not None else 0
        bound = _weighted_bound(w, b, m)
        acc = _accumulator(spec, bound)
        route = int8_route(x, w, int(np.prod(w.shape[1:])), acc)
        if _weighted_bound(w, np.zeros(len(w), np.int64), m) <= EXACT_FLOAT32:
            xa = builder.cast(x, FLOAT32)
            y = builder.node("Conv", [xa.name, builder.const(w.astype(FLOAT32),
                                                             f"{hint}_weight")],
                             f"{hint}_float32", **_conv_attrs(layer))
            y = builder.node("Cast", [y], hint, to=builder.elem_type(acc))
        elif route is not None:
            y = integer_product(builder, "ConvInteger", x, w, route, hint, **_conv_attrs(layer))
        else:
            y = im2col_conv(builder, x, layer, spec.out, acc, hint)
        return Value(builder.add_bias(y, b, acc, hint, trailing=2), acc, spec.out, bound)
    real = builder.real
    if real == FLOAT32:
        xa = builder.cast(x, real)
        y = builder.node("Conv", [xa.name,
                                  builder.const(np.asarray(layer.weight, np.float64).astype(real),
                                                f"{hint}_weight"),
                                  builder.const(np.asarray(layer.bias, np.float64).astype(real),
                                                f"{hint}_bias")], hint, **_conv_attrs(layer))
        return Value(y, real, spec.out)
    y = im2col_conv(builder, x, layer, spec.out, real, hint)
    return Value(builder.add_bias(y, np.asarray(layer.bias, np.float64), real, hint, trailing=2),
                 real, spec.out)


def window_sum(builder: OnnxBuilder, x: str, shape: tuple[int, ...], out: tuple[int, ...],
               kernel: tuple[int, int], stride: tuple[int, int],
               padding: tuple[int, int, int, int], hint: str) -> str:
    """``s[n, c, i, j] = sum_{u < kh, v < kw} xpad[n, c, i sh + u, j sw + v]`` for ``x``
    ``(N, C, H, W)`` (numeric): when the windows tile the input (``stride = kernel``) a
    ``Reshape`` to ``(N, C, Ho, kh, Wo, kw)`` and one ``ReduceSum``; else one strided
    ``Slice`` per offset ``(u, v)`` summed with ``Add``."""
    xin = _pad(builder, x, padding, hint)
    c, ho, wo = out
    (kh, kw), (sh, sw) = kernel, stride
    if (kh, kw) == (sh, sw):
        top, bottom, left, right = padding
        if (shape[1] + top + bottom, shape[2] + left + right) != (ho * kh, wo * kw):
            xin = builder.node("Slice", [xin, builder.shape_const((0, 0)),
                                         builder.shape_const((ho * kh, wo * kw)),
                                         builder.shape_const((2, 3))], f"{hint}_crop")
        tiles = builder.node("Reshape", [xin, builder.shape_const((0, c, ho, kh, wo, kw))],
                             f"{hint}_tiles")
        return builder.node("ReduceSum", [tiles, builder.shape_const((3, 5))], hint,
                            keepdims=0)
    total = ""
    for u in range(kh):
        for v in range(kw):
            part = _offset_slice(builder, xin, (u, v), (ho, wo), (sh, sw), hint)
            total = part if not total else builder.node("Add", [total, part], f"{hint}_sum")
    return total


@register_onnx_writer(SumPool2d)
def write_sum_pool2d(builder: OnnxBuilder, spec: LayerSpec) -> Value:
    """Window sum (:func:`window_sum`) times ``scale``: ``Div`` by ``d`` when ``scale`` is
    ``1 / d`` (the correctly rounded mean, as the runtime and torch compute it), else
    ``Mul``. Sums of integers stay integers (the accumulator type); a scaled sum of integers
    is computed in float64 (exact below ``2^53``, then one rounding, as the runtime does)."""
    layer, x, hint = spec.layer, spec.inputs[0], _hint(spec)
    assert isinstance(layer, SumPool2d)
    kh, kw = layer.kernel
    if builder.integer and x.is_integer:
        bound = kh * kw * (x.bound if x.bound is not None else 0)
        acc = integer_type_for(bound, spec.where)
        if layer.scale == 1.0:
            total = window_sum(builder, builder.cast(x, acc).name, x.shape, spec.out,
                               layer.kernel, layer.stride, layer.padding, hint)
            return Value(total, acc, spec.out, bound)
        if bound >= EXACT_FLOAT64:
            raise ONNXExportError(f"{spec.where}: a pooled sum can reach {bound}, beyond the "
                                  "integers float64 holds exactly")
        real = FLOAT64
    else:
        real = builder.real
    total = window_sum(builder, builder.cast(x, real).name, x.shape, spec.out, layer.kernel,
                       layer.stride, layer.padding, hint)
    if layer.scale != 1.0:
        d = layer.divisor
        op, factor = ("Div", float(d)) if d else ("Mul", layer.scale)
        total = builder.node(op, [total, builder.const(np.array(factor, dtype=real),
                                                       f"{hint}_scale")], f"{hint}_scaled")
    return Value(total, real, spec.out)


@register_onnx_writer(Threshold)
def write_threshold(builder: OnnxBuilder, spec: LayerSpec) -> Value:
    """``z = 1[x >= theta]`` (ties fire) as ``GreaterOrEqual``, a bool output. Integer
    thresholds over integers compare in the wider of the two integer types; a real
    threshold compares in ``real`` (float64 over integers in an integer network, exact below
    ``2^53``), with ``theta`` rounded to ``real`` as the runtime rounds it."""
    layer, x, hint = spec.layer, spec.inputs[0], _hint(spec)
    assert isinstance(layer, Threshold)
    theta = np.asarray(layer.theta)
    if x.is_integer and _is_int_array(theta):
        t = theta.astype(np.int64)
        need = max(x.bound if x.bound is not None else 0,
                   int(np.abs(t).max(initial=0)))
        dtype = integer_type_for(need, spec.where)
        if x.dtype == INT64:
            dtype = INT64
    elif x.is_integer and builder.integer:
        if (x.bound or 0) >= EXACT_FLOAT64:
            raise ONNXExportError(f"{spec.where}: inputs up to {x.bound} compared with a real "
                                  "threshold are beyond the integers float64 holds exactly")
        dtype = FLOAT64
    elif x.is_integer:
        dtype = builder.real
    else:
        dtype = x.dtype
    xa = builder.cast(x, dtype)
    th = builder.const(theta.astype(np.float64 if theta.dtype.kind == "f" else np.int64)
                       .astype(dtype), f"{hint}_theta")
    return Value(builder.node("GreaterOrEqual", [xa.name, th], hint), BOOL, spec.out, 1)


@register_onnx_writer(Flatten)
def write_flatten(builder: OnnxBuilder, spec: LayerSpec) -> Value:
    """``Flatten(axis=1)``: ``(N, ...) -> (N, prod(...))``, C order (type kept)."""
    x = spec.inputs[0]
    return Value(builder.node("Flatten", [x.name], _hint(spec), axis=1), x.dtype, spec.out,
                 x.bound)


@register_onnx_writer(Unflatten)
def write_unflatten(builder: OnnxBuilder, spec: LayerSpec) -> Value:
    """``Reshape(x, (0, *sizes, ...))``: ``(N, D, ...) -> (N, *sizes, ...)`` (type kept)."""
    x = spec.inputs[0]
    y = builder.node("Reshape", [x.name, builder.shape_const((0, *spec.out))], _hint(spec))
    return Value(y, x.dtype, spec.out, x.bound)


@register_onnx_writer(Upsample2d)
def write_upsample2d(builder: OnnxBuilder, spec: LayerSpec) -> Value:
    """Nearest upsampling ``y[n, c, i, j] = x[n, c, i // sh, j // sw]``: ``Unsqueeze`` to
    ``(N, C, H, 1, W, 1)``, ``Expand`` to ``(N, C, H, sh, W, sw)``, ``Reshape`` to
    ``(N, C, H sh, W sw)`` (copies: any type, spikes stay bool)."""
    layer, x, hint = spec.layer, spec.inputs[0], _hint(spec)
    assert isinstance(layer, Upsample2d)
    sh, sw = layer.scale
    y = builder.node("Unsqueeze", [x.name, builder.shape_const((3, 5))], f"{hint}_axes")
    y = builder.node("Expand", [y, builder.shape_const((1, 1, 1, sh, 1, sw))],
                     f"{hint}_expand")
    y = builder.node("Reshape", [y, builder.shape_const((0, *spec.out))], hint)
    return Value(y, x.dtype, spec.out, x.bound)


@register_onnx_writer(Add)
def write_add(builder: OnnxBuilder, spec: LayerSpec) -> Value:
    """``x_1 + x_2 + ...`` left to right: in ``real`` (spikes count 0 / 1), or in integers
    wide enough for the sum of the inputs' bounds in an integer network."""
    xs, hint = spec.inputs, _hint(spec)
    if builder.integer and all(x.is_integer for x in xs):
        bound = sum(x.bound if x.bound is not None else 0 for x in xs)
        dtype, out_bound = integer_type_for(bound, spec.where), bound
    else:
        dtype, out_bound = builder.real, None
    total = builder.cast(xs[0], dtype).name
    for x in xs[1:]:
        total = builder.node("Add", [total, builder.cast(x, dtype).name], hint)
    return Value(total, dtype, spec.out, out_bound)


@register_onnx_writer(Concat)
def write_concat(builder: OnnxBuilder, spec: LayerSpec) -> Value:
    """``Concat(axis=1)``: spikes stay bool; else every input as ``real`` (or, in an integer
    network, as an integer type holding them all)."""
    xs, hint = spec.inputs, _hint(spec)
    if all(x.dtype == BOOL for x in xs):
        dtype, bound = BOOL, 1
    elif builder.integer and all(x.is_integer for x in xs):
        bound = max(x.bound if x.bound is not None else 0 for x in xs)
        same = {x.dtype for x in xs}
        dtype = same.pop() if len(same) == 1 else integer_type_for(bound, spec.where)
        if dtype == INT32 and any(x.dtype == INT64 for x in xs):
            dtype = INT64
    else:
        dtype, bound = builder.real, None
    names = [builder.cast(x, dtype).name for x in xs]
    return Value(builder.node("Concat", names, hint, axis=1), dtype, spec.out, bound)
