"""Run a :class:`~whetstone.runtime.network.SpikingNetwork` on a numpy batch (numpy only).

One time step, no state: each primitive maps the whole batch ``(N, ...)`` of its inputs to
its output. A graph is evaluated in its layers' (topological) order, and each value is
freed after its last reader ran (:func:`walk`).

Kernels. :data:`KERNELS` maps each primitive type to its kernel, ``kernel(layer, inputs,
ctx) -> output``: ``inputs`` the batches of the layer's sources, ``ctx`` the
:class:`Context` (dtype, affine path). A bool array is a spike map: kernels that compute
real values return ``ctx.dtype``; shape-only kernels and ``Concat`` keep the dtype (spikes
stay bool); ``Threshold`` returns bool. Add a primitive's kernel with
:func:`register_kernel`.

Arithmetic precision. Everything is computed in float64 by default (``dtype`` selects
float32). The torch model runs in float32 and, when it has BatchNorm, computes
``BN(W x + b)`` where the converted network computes the folded ``W' x + b'``; the two
differ by rounding (about 1e-7 relative) whatever the runtime does, and no float32
summation order reproduces torch bit for bit (its order depends on the BLAS kernel). float64
computes the converted network's real value up to ~1e-16 instead: a spike differs from
torch's only when torch's own float32 pre-activation lies within its rounding error of the
threshold (seen: one neuron of 2.56 million, torch 0.49999997 against >= 0.5 here), and the
gather and matmul paths below agree. Measured on the full MNIST test set (10000 images),
trained runs: mnist-dense (3 runs, no BatchNorm) 0 predictions differ from torch in float64
and in float32. whetstone-cnn with 8 folded BatchNorms (runs/cnnq, a weak model: 69.5 %,
3107 images with tied top logits): 4 predictions differ in float64, 3 in float32; each
comes from a single early spike flipped by torch's float32 rounding (a BatchNorm with small
variance scales that rounding up) that cascades through the later layers. So equality with
torch holds for every sample only up to torch's own rounding; float64 is kept because it is
the converted network's exact value, independent of BLAS and summation order. float64 costs
about 2x float32 (0.14 s against 0.07 s for 10000 mnist-dense images; 158 s against 91 s for
10000 CNN images, 1 thread, shared 2-core machine).

Binary inputs. After the first :class:`Threshold` every input is a spike vector. An
:class:`Affine` over spikes is ``W x = sum of the rows of W^T whose input spiked``: the
*gather* path adds only those rows. Which path is faster was measured (float64, 1 thread,
trained weights and real MNIST spikes; numbers in microseconds per call):

====================================  ================  ===========  ===========
layer                                 batch, density    gather       matmul
====================================  ================  ===========  ===========
mnist-dense 256 -> 64                 1, 0.11           33           19
mnist-dense 64 -> 100                 1, 0.20           26           13
mnist-dense 256 -> 64                 256, 0.11         4632         452
mnist-dense 64 -> 100                 256, 0.20         3366         193
mnist-cnn dense 6272 -> 256           1, 0.30           972          1466
mnist-cnn dense 6272 -> 256           1, 0.02           67           1252
====================================  ================  ===========  ===========

For small layers numpy's per-call overhead dominates and the dense matmul wins even for one
sample; for batches the matmul (one BLAS call) wins by 10x or more. Gathering only pays when
the weight matrix is large (the matrix-vector product is memory bound: it reads every
weight) and few rows are read. Hence the ``auto`` rule: gather when ``W`` has at least
``GATHER_MIN_WEIGHTS`` entries and the spikes of the whole batch select fewer than
``GATHER_MAX_ROWS`` times ``in`` rows, else matmul. In float64 both give identical results.
Convolutions use im2col (a strided window view, copied to a matrix) and one matmul per
group, over chunks of the batch to bound memory.

Engines. :func:`run` and :func:`predict` dispatch through :data:`ENGINES` (name ->
:data:`Engine`): ``"numpy"`` is the code above, the reference every other engine is tested
against; ``"fast"`` is the numba engine of :mod:`whetstone.runtime.fast` (the optional extra
``whetstone[fast]``, imported on first use); :func:`register_engine` adds more (the ONNX
export registers ``"onnxruntime"``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .network import INPUT, SpikingNetwork
from .primitives import (
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

GATHER_MIN_WEIGHTS = 65536
"""Smallest ``in * out`` for which ``auto`` considers the gather path (see the module doc)."""

GATHER_MAX_ROWS = 0.5
"""``auto`` gathers when the batch's spike count is below this fraction of ``in``."""

if TYPE_CHECKING:
    from ..progress import Progress

_IM2COL_BYTES = 32 * 2**20  # bound on the im2col matrix of one chunk

BinaryAffine = Literal["auto", "gather", "matmul"]

_cache: weakref.WeakKeyDictionary[Primitive, dict[str, tuple[np.ndarray, ...]]] = (
    weakref.WeakKeyDictionary()
)


def _prepared(layer: Primitive, dtype: np.dtype,
              make: Callable[[np.dtype], tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """``make(dtype)``: the layer's arrays cast to ``dtype`` in the layout its kernel uses,
    computed once per layer and dtype (cached while the layer lives)."""
    per_layer = _cache.setdefault(layer, {})
    key = np.dtype(dtype).str
    if key not in per_layer:
        per_layer[key] = make(np.dtype(dtype))
    return per_layer[key]


def _affine_arrays(layer: Affine | Decode, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """``W^T`` ``(in, out)`` and ``b`` ``(out,)`` in ``dtype`` (cached)."""
    wt, b = _prepared(layer, dtype, lambda d: (
        np.ascontiguousarray(layer.weight.T, dtype=d), np.asarray(layer.bias, dtype=d)))
    return wt, b


def _conv_arrays(layer: Conv2d, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The weight as ``(G, Cg kh kw, Cout / G)`` and ``b`` ``(Cout,)`` in ``dtype`` (cached)."""
    def make(d: np.dtype) -> tuple[np.ndarray, ...]:
        cout, cg, kh, kw = layer.weight.shape
        g = layer.groups
        w = layer.weight.reshape(g, cout // g, cg * kh * kw).transpose(0, 2, 1)
        return np.ascontiguousarray(w, dtype=d), np.asarray(layer.bias, dtype=d)

    w, b = _prepared(layer, dtype, make)
    return w, b


def affine(layer: Affine | Decode, x: np.ndarray, binary: bool, dtype: np.dtype,
           method: BinaryAffine = "auto") -> np.ndarray:
    """``y = x W^T + b``: ``(N, in) -> (N, out)``. Binary ``x`` may use the gather path."""
    wt, b = _affine_arrays(layer, dtype)
    if x.ndim != 2 or x.shape[1] != wt.shape[0]:
        raise ValueError(f"expects inputs of shape (N, {wt.shape[0]}), got {x.shape}")
    gather = binary and (method == "gather" or (
        method == "auto" and wt.size >= GATHER_MIN_WEIGHTS
        and np.count_nonzero(x) < GATHER_MAX_ROWS * wt.shape[0]))
    if gather:
        out = np.empty((len(x), wt.shape[1]), dtype=dtype)
        for n, row in enumerate(x):
            out[n] = wt[np.flatnonzero(row)].sum(axis=0)
        out += b
        return out
    return x.astype(dtype, copy=False) @ wt + b


def _windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
             padding: tuple[int, int, int, int], dilation: tuple[int, int] = (1, 1)
             ) -> np.ndarray:
    """Strided view ``(N, C, H', W', kh, kw)`` of the zero-padded ``x`` ``(N, C, H, W)``."""
    top, bottom, left, right = padding
    if any(padding):
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    span = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
    if x.shape[2] < span[0] or x.shape[3] < span[1]:
        raise ValueError(f"input {x.shape[2:]} (padded) smaller than the window {span}")
    view = sliding_window_view(x, span, axis=(2, 3))
    return view[:, :, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]


def conv2d(layer: Conv2d, x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """im2col convolution: ``(N, Cin, H, W) -> (N, Cout, H', W')`` (see :class:`Conv2d`)."""
    if x.ndim != 4 or x.shape[1] != layer.in_channels:
        raise ValueError(f"expects inputs of shape (N, {layer.in_channels}, H, W), got {x.shape}")
    w, b = _conv_arrays(layer, dtype)  # (G, K, Cout/G), (Cout,)
    g, k, _ = w.shape
    kh, kw = layer.weight.shape[2:]
    x = x.astype(dtype, copy=False)
    view = _windows(x, (kh, kw), layer.stride, layer.padding, layer.dilation)
    n, _, ho, wo = view.shape[:4]
    out = np.empty((n, ho, wo, layer.weight.shape[0]), dtype=dtype)
    chunk = max(1, _IM2COL_BYTES // max(1, ho * wo * g * k * np.dtype(dtype).itemsize))
    for start in range(0, n, chunk):
        part = view[start:start + chunk]  # (n', C, H', W', kh, kw)
        cols = part.transpose(0, 2, 3, 1, 4, 5).reshape(-1, g, k)  # copies: (n' H' W', G, K)
        res = np.concatenate([cols[:, i] @ w[i] for i in range(g)], axis=1) if g > 1 \
            else cols[:, 0] @ w[0]
        out[start:start + chunk] = res.reshape(len(part), ho, wo, -1)
    out += b
    return out.transpose(0, 3, 1, 2)


def sum_pool2d(layer: SumPool2d, x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``(N, C, H, W) -> (N, C, H', W')``: window sums times ``scale`` (divided by
    :attr:`SumPool2d.divisor` when the scale is ``1 / d``: torch's average pooling)."""
    if x.ndim != 4:
        raise ValueError(f"expects inputs of shape (N, C, H, W), got {x.shape}")
    view = _windows(x.astype(dtype, copy=False), layer.kernel, layer.stride, layer.padding)
    out = view.sum(axis=(-2, -1))
    if layer.scale == 1.0:
        return out
    divisor = layer.divisor
    return out / dtype.type(divisor) if divisor else out * dtype.type(layer.scale)


def upsample2d(layer: Upsample2d, x: np.ndarray) -> np.ndarray:
    """Nearest upsampling ``(N, C, H, W) -> (N, C, H sh, W sw)``,
    ``y[n, c, i, j] = x[n, c, i // sh, j // sw]`` (copies: the dtype is kept, bool stays bool).
    """
    if x.ndim != 4:
        raise ValueError(f"expects inputs of shape (N, C, H, W), got {x.shape}")
    sh, sw = layer.scale
    return np.repeat(np.repeat(x, sh, axis=2), sw, axis=3)


def unflatten(layer: Unflatten, x: np.ndarray) -> np.ndarray:
    """``(N, D, ...) -> (N, *sizes, ...)`` with ``prod(sizes) = D`` (a C-order reshape)."""
    want = int(np.prod(layer.sizes))
    if x.ndim < 2 or x.shape[1] != want:
        raise ValueError(f"expects inputs of shape (N, {want}, ...) to split into "
                         f"{layer.sizes}, got {x.shape}")
    return x.reshape(len(x), *layer.sizes, *x.shape[2:])


@dataclass(frozen=True)
class Context:
    """What every kernel gets besides its layer and inputs: the ``dtype`` of real values and
    the path of affine layers over spikes (``"auto"``, ``"gather"``, ``"matmul"``)."""

    dtype: np.dtype
    binary_affine: BinaryAffine = "auto"


Kernel = Callable[[Primitive, Sequence[np.ndarray], Context], np.ndarray]
"""``kernel(layer, inputs, ctx) -> output``: one batch ``(N, ...)`` per source in
``inputs``, the output batch ``(N, ...)`` (see the module doc for dtypes)."""

KERNELS: dict[type[Primitive], Kernel] = {}
"""Primitive type -> its kernel; fill with :func:`register_kernel`."""

_K = TypeVar("_K", bound=Callable[..., np.ndarray])


def register_kernel(*primitive_types: type[Primitive]) -> Callable[[_K], _K]:
    """Decorator: register the function as the kernel of ``primitive_types`` (replacing any
    earlier entry for exactly those types)."""
    if not primitive_types or not all(isinstance(t, type) and issubclass(t, Primitive)
                                      for t in primitive_types):
        raise TypeError("register_kernel takes one or more Primitive subclasses")

    def decorate(fn: _K) -> _K:
        for primitive_type in primitive_types:
            KERNELS[primitive_type] = fn
        return fn

    return decorate


@register_kernel(Affine, Decode)
def _affine_kernel(layer: Affine | Decode, xs: Sequence[np.ndarray], ctx: Context
                   ) -> np.ndarray:
    x = xs[0]
    return affine(layer, x, x.dtype == np.bool_, ctx.dtype, ctx.binary_affine)


@register_kernel(Conv2d)
def _conv_kernel(layer: Conv2d, xs: Sequence[np.ndarray], ctx: Context) -> np.ndarray:
    return conv2d(layer, xs[0], ctx.dtype)


@register_kernel(SumPool2d)
def _pool_kernel(layer: SumPool2d, xs: Sequence[np.ndarray], ctx: Context) -> np.ndarray:
    return sum_pool2d(layer, xs[0], ctx.dtype)


@register_kernel(Flatten)
def _flatten_kernel(layer: Flatten, xs: Sequence[np.ndarray], ctx: Context) -> np.ndarray:
    """``(N, ...) -> (N, prod(...))``, C order."""
    return xs[0].reshape(len(xs[0]), -1)


@register_kernel(Unflatten)
def _unflatten_kernel(layer: Unflatten, xs: Sequence[np.ndarray], ctx: Context
                      ) -> np.ndarray:
    return unflatten(layer, xs[0])


@register_kernel(Upsample2d)
def _upsample_kernel(layer: Upsample2d, xs: Sequence[np.ndarray], ctx: Context
                     ) -> np.ndarray:
    return upsample2d(layer, xs[0])


@register_kernel(Threshold)
def _threshold_kernel(layer: Threshold, xs: Sequence[np.ndarray], ctx: Context
                      ) -> np.ndarray:
    """``z = 1[x >= theta]`` as bool."""
    (theta,) = _prepared(layer, ctx.dtype, lambda d: (np.asarray(layer.theta, dtype=d),))
    return xs[0] >= theta


@register_kernel(Add)
def _add_kernel(layer: Add, xs: Sequence[np.ndarray], ctx: Context) -> np.ndarray:
    """``x_1 + x_2 + ...`` in ``ctx.dtype``, left to right (spikes count as 0.0 / 1.0)."""
    if any(x.shape != xs[0].shape for x in xs):
        raise ValueError(f"Add expects inputs of equal shape, got "
                         f"{', '.join(str(x.shape) for x in xs)}")
    out = xs[0].astype(ctx.dtype, copy=True)
    for x in xs[1:]:
        out += x
    return out


@register_kernel(Concat)
def _concat_kernel(layer: Concat, xs: Sequence[np.ndarray], ctx: Context) -> np.ndarray:
    """``[x_1; x_2; ...]`` along axis 1 (bool when every input is spikes, else ``dtype``)."""
    if any(x.ndim != xs[0].ndim or x.ndim < 2 or x.shape[2:] != xs[0].shape[2:] for x in xs):
        raise ValueError(f"Concat expects inputs (N, C_k, ...) that agree after axis 1, got "
                         f"{', '.join(str(x.shape) for x in xs)}")
    if all(x.dtype == np.bool_ for x in xs):
        return np.concatenate(xs, axis=1)
    return np.concatenate([x.astype(ctx.dtype, copy=False) for x in xs], axis=1)


def kernel_for(layer: Primitive) -> Kernel:
    """The kernel of ``layer``'s type (or of its nearest registered base class)."""
    for cls in type(layer).__mro__:
        fn = KERNELS.get(cls)
        if fn is not None:
            return fn
    raise TypeError(f"no kernel registered for primitive {type(layer).__name__} "
                    "(register_kernel adds one)")


def walk(net: SpikingNetwork, x: np.ndarray, ctx: Context
         ) -> Iterator[tuple[int, list[np.ndarray], np.ndarray]]:
    """Evaluate ``net`` on one batch ``x`` ``(N, ...)``, yielding ``(i, inputs, output)``
    for every layer in order. Each value is dropped once its last reader has run (the
    yielded arrays stay valid for the caller).

    Raises:
        ValueError: a layer cannot take its inputs (the message names the layer).
    """
    last_read = {INPUT: -1}
    for i in range(len(net.layers)):
        for j in net.sources(i):
            last_read[j] = i
    values: dict[int, np.ndarray] = {INPUT: x}
    for i, layer in enumerate(net.layers):
        sources = net.sources(i)
        inputs = [values[j] for j in sources]
        try:
            out = kernel_for(layer)(layer, inputs, ctx)
        except ValueError as exc:
            raise ValueError(f"layer {i} ({layer.kind}): {exc}") from exc
        for j in set(sources):
            if last_read[j] == i:
                del values[j]
        values[i] = out
        yield i, inputs, out


Engine = Callable[..., Any]
"""``engine(net, x, *, record, dtype, batch_size, progress) -> output``: one way to compute
:func:`run`. ``x`` is the whole input ``(N, ...)``; ``dtype`` is ``None`` for the engine's
own default (numpy: float64); ``batch_size`` bounds the samples processed at once;
``record=True`` asks for the spikes of every :class:`Threshold` as well (an engine that
cannot record raises :class:`NotImplementedError` naming itself). Returns what :func:`run`
returns."""

ENGINES: dict[str, Engine] = {}
"""Engine name -> engine (:data:`Engine`). ``"numpy"`` is the reference (this module);
``"fast"`` the numba engine (:mod:`whetstone.runtime.fast`, the ``whetstone[fast]``
extra, imported on first use); others register themselves with :func:`register_engine`."""


def register_engine(name: str, fn: Engine) -> Engine:
    """Make ``fn`` available as ``run(..., engine=name)`` (replacing an earlier entry of that
    name); returns ``fn``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"an engine name is a non-empty str, got {name!r}")
    if not callable(fn):
        raise TypeError(f"engine {name!r} must be callable, got {type(fn).__name__}")
    ENGINES[name] = fn
    return fn


_fast: Engine | None = None
"""The numba engine once imported (see :func:`_fast_engine`)."""


def _fast_engine(net: SpikingNetwork, x: np.ndarray, **kwargs: object
                 ) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """The numba engine, imported on first use (``pip install whetstone[fast]``)."""
    global _fast
    if _fast is None:
        try:
            import numba  # noqa: F401
        except ImportError as exc:
            raise ImportError("engine 'fast' needs numba: pip install whetstone[fast]"
                              ) from exc
        from .fast import fast_engine

        _fast = fast_engine
    return _fast(net, x, **kwargs)


def _onnxruntime_engine(net: SpikingNetwork, x: np.ndarray, **kwargs: object
                        ) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """onnxruntime on the network's ONNX model (:func:`whetstone.export.onnx.run_onnx`),
    imported on first use (``pip install whetstone[onnx]``)."""
    from ..export.onnx import onnx_engine

    return onnx_engine(net, x, **kwargs)  # type: ignore[arg-type]


def engine_for(name: str) -> Engine:
    """The engine registered as ``name``.

    Raises:
        ValueError: no engine has that name (the message lists the registered ones).
    """
    fn = ENGINES.get(name)
    if fn is None:
        raise ValueError(f"unknown engine {name!r}; registered engines: "
                         f"{', '.join(sorted(ENGINES))}")
    return fn


def run(
    net: SpikingNetwork,
    x: np.ndarray,
    record: bool = False,
    dtype: type[np.floating] | np.dtype | None = None,
    batch_size: int = 1024,
    binary_affine: BinaryAffine = "auto",
    progress: Progress | None = None,
    engine: str = "numpy",
) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """Apply the network (a chain or a graph) to the batch ``x`` ``(N, ...)``.

    Returns the last primitive's output as ``dtype``: the values of the network's readout
    (:attr:`~whetstone.runtime.SpikingNetwork.readout`): decode logits ``(N, C)``, the real
    values of an affine ``(N, out)`` or convolutional ``(N, C, H, W)`` readout, or the final
    spikes as 0.0 / 1.0; and with ``record=True`` also the spikes of every
    :class:`Threshold` in layer order, each a bool array ``(N, ...)`` (True where the neuron
    fired). ``batch_size`` bounds the samples processed at once (memory); ``binary_affine``
    forces the gather or matmul path for affine layers over spikes (results are identical in
    float64; numpy engine only). ``progress`` (a :class:`whetstone.progress.Progress`) shows
    a bar over the batches.

    An integer network (:attr:`SpikingNetwork.is_integer`, from
    :func:`whetstone.quantization.to_integer`) takes integer inputs ``x`` and returns int64:
    its arithmetic is exact, so the result does not depend on the engine or the summation
    order.

    ``engine`` picks the implementation (:data:`ENGINES`): ``"numpy"``, the reference
    (``dtype`` default float64), or ``"fast"`` (numba, ``dtype`` default float32; see
    :mod:`whetstone.runtime.fast`), or any registered with :func:`register_engine`.

    Raises:
        ValueError: unknown ``engine``, or ``binary_affine`` given to another engine.
        ImportError: ``engine="fast"`` without numba (``pip install whetstone[fast]``).
        NotImplementedError: ``record=True`` with an engine that cannot record.
    """
    fn = engine_for(engine)
    if engine != "numpy":
        if binary_affine != "auto":
            raise ValueError(f"binary_affine is an option of the numpy engine, not {engine!r}")
        return fn(net, x, record=record, dtype=dtype, batch_size=batch_size,
                  progress=progress)
    return fn(net, x, record=record, dtype=dtype, batch_size=batch_size,
              binary_affine=binary_affine, progress=progress)


def _numpy_engine(
    net: SpikingNetwork,
    x: np.ndarray,
    *,
    record: bool = False,
    dtype: type[np.floating] | np.dtype | None = None,
    batch_size: int = 1024,
    binary_affine: BinaryAffine = "auto",
    progress: Progress | None = None,
) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """The reference engine: the kernels of :data:`KERNELS`, layer by layer (see :func:`run`).
    An integer network is computed in float64, exactly (see :func:`_check_integer_run`), and
    its output returned as int64."""
    x = np.asarray(x)
    integer = net.is_integer
    if integer:
        _check_integer_run(x, np.float64 if dtype is None else dtype)
    ctx = Context(np.dtype(np.float64 if dtype is None else dtype), binary_affine)
    if x.ndim < 1:
        raise ValueError("x must be a batch (N, ...)")
    outs: list[np.ndarray] = []
    spikes: list[list[np.ndarray]] = []
    starts: Iterable[int] = range(0, max(len(x), 1), batch_size)
    if progress is not None:
        starts = progress.iterate(starts, desc="spiking network (numpy)", unit="batch")
    for start in starts:
        out, rec = _run_batch(net, x[start:start + batch_size], record, ctx)
        outs.append(out)
        spikes.append(rec)
    out = np.concatenate(outs) if len(outs) > 1 else outs[0]
    if integer:
        out = out.astype(np.int64)
    if not record:
        return out
    return out, [np.concatenate(layer) for layer in zip(*spikes, strict=True)]


def _check_integer_run(x: np.ndarray, dtype: type[np.floating] | np.dtype) -> None:
    """An integer network takes integer inputs and is computed in float64, where every
    partial sum is an integer below ``2^53`` (:func:`whetstone.quantization.to_integer`
    checks the bound), hence exact in any summation order."""
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
        raise ValueError(f"an integer network takes integer inputs (e.g. uint8 pixels: "
                         f"whetstone.quantization.integer_inputs converts), got {x.dtype}")
    if np.dtype(dtype) != np.float64:
        raise ValueError(f"an integer network is computed exactly in float64, not "
                         f"{np.dtype(dtype)}")


ENGINES["numpy"] = _numpy_engine
ENGINES["fast"] = _fast_engine
ENGINES["onnxruntime"] = _onnxruntime_engine


def _run_batch(net: SpikingNetwork, x: np.ndarray, record: bool, ctx: Context
               ) -> tuple[np.ndarray, list[np.ndarray]]:
    recorded: list[np.ndarray] = []
    out = x
    for i, _, out in walk(net, x, ctx):
        if record and isinstance(net.layers[i], Threshold):
            recorded.append(out)
    return out.astype(ctx.dtype, copy=False), recorded


def predict(net: SpikingNetwork, x: np.ndarray, batch_size: int = 1024,
            engine: str = "numpy", dtype: type[np.floating] | np.dtype | None = None
            ) -> np.ndarray:
    """Argmax of the readout's scores over axis 1 (first maximum on ties, as
    ``torch.argmax``), computed by ``engine`` in ``dtype`` (see :func:`run`): class indices
    ``(N,)`` for a decode or an affine readout (classes, Q-values: the greedy action),
    per-pixel classes ``(N, H, W)`` for a convolutional readout ``(N, C, H, W)``.

    Raises:
        ValueError: the network's readout is ``"spikes"`` or ``"identity"`` (a binary or
            unprocessed output has no scores to rank: use :func:`run`), or its output has no
            axis 1.
    """
    if net.readout in ("spikes", "identity"):
        what = "binary spikes" if net.readout == "spikes" else "its input, reshaped"
        raise ValueError(f"predict needs real-valued scores, but the network's readout is "
                         f"{net.readout!r} (its output is {what}); use run() for its output")
    scores = run(net, x, batch_size=batch_size, engine=engine, dtype=dtype)
    assert isinstance(scores, np.ndarray)
    if scores.ndim < 2:
        raise ValueError(f"predict takes the argmax over axis 1; the output has shape "
                         f"{scores.shape}")
    return scores.argmax(axis=1)
