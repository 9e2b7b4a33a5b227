"""Compile a :class:`~whetstone.runtime.SpikingNetwork` into numba kernel calls.

:func:`compile_network` turns a network into a :class:`FastNetwork` (cached per network
object and dtype, while it lives); calling it on a batch ``x`` ``(N, ...)`` builds, once per
input shape and dtype, a *plan*: one step per layer, where an ``Affine``, ``Conv2d`` or
``SumPool2d`` whose only reader is a ``Threshold`` is **fused** with it (one kernel call
writes the spikes; the real values are never stored). Steps:

===========================  ==============================================================
layer                        fast path (numba, :mod:`.dense`, :mod:`.conv`, :mod:`.pool`)
===========================  ==============================================================
Affine / Decode over spikes  gather: ``y = b + sum_{i fired} W^T[i, :]``
Affine over real inputs      ``y = b + sum_{x_i != 0} x_i W^T[i, :]`` (pixels: zeros skipped)
Conv2d (groups = 1)          event-driven, channels-last (:mod:`.conv`), spikes or values
SumPool2d + Threshold        window counts of spikes, thresholded (OR pool)
Threshold (alone)            ``z = 1[x >= theta]`` (numpy, in the internal layout)
Flatten                      a free reshape (the next Affine's columns are permuted)
anything else                the numpy reference kernel of that layer (Add, Concat,
                             Unflatten, Upsample2d, grouped convolutions, average pools,
                             ...), its inputs converted to the reference layout: exact,
                             slower; graph networks run through it at every merge
===========================  ==============================================================

Arithmetic. A **float network** runs in ``dtype``: float32 (the default: float32 weights,
thresholds and accumulators) or float64 (the reference's precision; the sums are taken in
another order than the reference's BLAS, so an output can differ from the reference's in the
last bits and a spike only when a neuron's value lies within that rounding of its
threshold). An **integer network** (:func:`whetstone.quantization.to_integer`: integer
weights, thresholds and inputs) is computed in integers: weights in their stored dtype
(int8 / int16), accumulators int32 where ``max_o (sum_i |W[o, i]| max|x_i| + |b_o|) < 2^31``
(``max|x_i|`` is 1 for spikes and the input dtype's largest magnitude for the first layer),
int64 otherwise; every sum is exact, so spikes and outputs are bit-identical to the
reference's. Its real-valued outputs are returned as int64 (a layer with float weights in
it, e.g. a dequantized readout, is accumulated in float64).

Batches are split in chunks of ``batch_size``; within a chunk the samples run in parallel
(numba ``prange``, ``numba.get_num_threads()`` threads); a single sample runs the serial
kernels, except the large convolutions, whose output rows run in parallel
(:data:`ROW_PARALLEL_MIN_MACS`).

First call. numba compiles each kernel for the argument types it meets (``cache=True``:
once per machine, stored beside the module or in ``NUMBA_CACHE_DIR``). Measured on the busy
2-core machine, a new process with an empty cache: 21 s for the dense kernels of a float
and an integer network (batch 1 and batches), 51 s for the convolutional ones (mnist-cnn
shapes); with the cache filled, 0.9 s and 1.4 s.

Threading layer. Unless ``NUMBA_THREADING_LAYER`` is set (or numba's parallel backend
already started), importing this module selects numba's ``workqueue`` layer: measured on the
2-core machine while other processes kept both cores busy, starting one parallel region
cost 8 ms with the ``omp`` layer (libgomp's default wait policy; 16 us with
``OMP_WAIT_POLICY=passive``) against 84 us with ``workqueue``, and the engine starts one
region per layer and batch chunk. ``workqueue`` must not be entered from several Python
threads at once (numba's restriction).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..network import INPUT, SpikingNetwork
from ..primitives import Affine, Conv2d, Decode, Flatten, Primitive, SumPool2d, Threshold
from ..simulate import Context, kernel_for
from . import chain as chain_k
from . import conv as conv_k
from . import dense as dense_k
from . import pool as pool_k
from .layout import Meta, flatten_perm, to_hwc, to_internal, to_reference

if TYPE_CHECKING:
    from ...progress import Progress

def _choose_threading_layer() -> None:
    """Select numba's ``workqueue`` threading layer unless the user chose one or numba's
    parallel backend already started (see the module doc)."""
    import os

    import numba
    from numba.np.ufunc import parallel

    if "NUMBA_THREADING_LAYER" not in os.environ and not getattr(parallel, "_is_initialized",
                                                                 True):
        numba.config.THREADING_LAYER = "workqueue"


_choose_threading_layer()

Step = Callable[[dict[int, np.ndarray]], None]
"""One step of a plan: reads its sources from the values and writes its output there."""

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
ROW_PARALLEL_MIN_MACS = 4_000_000
"""A convolution of a single sample runs its output rows in parallel when its dense
multiply-accumulate count ``kh kw Cin Cout H' W'`` is at least this (smaller ones are not
worth a parallel region's start, which costs far more on a busy machine)."""
INT32_LIMIT = 2**31


def is_integer_network(net: SpikingNetwork) -> bool:
    """``net.is_integer`` where the network defines it, else whether every weighted layer
    (``Affine``, ``Conv2d``) holds integer weights (and there is one)."""
    flag = getattr(net, "is_integer", None)
    if flag is not None:
        return bool(flag)
    weights = [layer.weight for layer in net.layers if isinstance(layer, (Affine, Conv2d))]
    return bool(weights) and all(np.issubdtype(w.dtype, np.integer) for w in weights)


def _threads() -> int:
    """Threads numba runs parallel loops on now."""
    import numba

    return int(numba.get_num_threads())


def _own(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A writable C-contiguous copy in ``dtype`` (the primitives' arrays are read-only, and
    numba compiles read-only arrays as another type: one type for every kernel argument)."""
    return np.array(arr, dtype=dtype, order="C", copy=True)


def _magnitude(dtype: np.dtype) -> int:
    """Largest ``|x|`` of an integer dtype (1 for bool)."""
    if dtype == np.bool_:
        return 1
    info = np.iinfo(dtype)
    return max(abs(int(info.min)), int(info.max))


@dataclass
class _Arith:
    """Weight, accumulator and threshold dtypes of one weighted layer."""

    weight: np.dtype
    acc: np.dtype


class _Planner:
    """Builds the steps of one network for one input shape and dtype (see the module doc)."""

    def __init__(self, net: SpikingNetwork, dtype: np.dtype, integer: bool,
                 input_shape: tuple[int, ...], input_dtype: np.dtype) -> None:
        self.net, self.dtype, self.integer = net, dtype, integer
        self.shapes = net.shapes(input_shape)
        self.input_dtype = input_dtype
        self.metas: dict[int, Meta] = {INPUT: Meta(
            "spikes" if input_dtype == np.bool_ else "real", "ref", tuple(input_shape))}
        self.steps: list[tuple[str, Step, tuple[int, ...], int]] = []
        self.fused: dict[int, int] = {}  # threshold index -> the layer it is fused into
        self.accumulators: dict[int, str] = {}  # weighted layer -> its accumulator dtype
        # affine steps by step position: (W^T, b, theta or None, spikes input, accumulator)
        self.dense: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None, bool,
                                    np.dtype]] = {}
        self.consumers = net.consumers()

    # -- helpers -------------------------------------------------------------------------
    def fusable_threshold(self, i: int) -> int | None:
        """The Threshold that is layer ``i``'s only reader and reads only it, else None."""
        readers = self.consumers[i]
        if len(readers) == 1:
            t = readers[0]
            if isinstance(self.net.layers[t], Threshold) and self.net.sources(t) == (i,):
                return t
        return None

    def arith(self, weight: np.ndarray, bias: np.ndarray, src: Meta, fan: np.ndarray
              ) -> _Arith:
        """Dtypes of a weighted layer: ``fan`` is ``sum |W|`` per output."""
        if self.integer and np.issubdtype(weight.dtype, np.integer) or (
                self.integer and np.all(weight == np.round(weight))
                and np.all(bias == np.round(bias)) and src.kind == "spikes"):
            if src.kind == "spikes":
                xmax = 1
            elif np.issubdtype(self.input_dtype, np.integer) or self.input_dtype == np.bool_:
                xmax = _magnitude(self.input_dtype)
            else:
                raise ValueError("an integer network takes integer inputs (e.g. uint8 "
                                 f"pixels), got {self.input_dtype}")
            bound = float(np.max(fan * xmax + np.abs(bias))) if fan.size else 0.0
            acc = np.dtype(np.int32) if bound < INT32_LIMIT else np.dtype(np.int64)
            wdtype = weight.dtype if np.issubdtype(weight.dtype, np.integer) else (
                np.dtype(np.int32) if np.max(np.abs(weight), initial=0) < INT32_LIMIT
                else np.dtype(np.int64))
            return _Arith(wdtype, acc)
        acc = np.dtype(np.float64) if self.integer else self.dtype
        return _Arith(acc, acc)

    def theta_for(self, t: int, meta: Meta, acc: np.dtype) -> np.ndarray:
        """Threshold ``t``'s theta, broadcast to ``meta``'s shape, in its layout and dtype."""
        theta = np.asarray(self.net.layers[t].theta)  # type: ignore[attr-defined]
        if not (self.integer and np.issubdtype(theta.dtype, np.integer)):
            theta = theta.astype(np.float64 if self.integer else acc)
        return _own(to_internal(theta, meta), theta.dtype)

    @staticmethod
    def real_input(value: np.ndarray, acc: np.dtype) -> np.ndarray:
        """A real input row block in the dtype the values kernels read."""
        if acc.kind == "i":
            if value.dtype.kind not in "iub":
                raise ValueError("an integer network takes integer inputs (e.g. uint8 "
                                 f"pixels), got {value.dtype}")
            return value if value.dtype != np.bool_ else value.view(np.uint8)
        return value.astype(acc, copy=False)

    # -- planning ------------------------------------------------------------------------
    def plan(self) -> list[tuple[str, Step, tuple[int, ...], int]]:
        for i, layer in enumerate(self.net.layers):
            if i in self.fused:
                continue
            srcs = self.net.sources(i)
            src = self.metas[srcs[0]]
            if isinstance(layer, (Affine, Decode)) and len(src.shape) == 1 and \
                    src.layout in ("ref", "flat"):
                self.affine(i, layer, srcs[0], src)
            elif isinstance(layer, Conv2d) and layer.groups == 1:
                self.conv(i, layer, srcs[0], src)
            elif isinstance(layer, SumPool2d) and src.kind == "spikes" and \
                    self.fusable_threshold(i) is not None:
                self.pool(i, layer, srcs[0], src)
            elif isinstance(layer, Threshold):
                self.threshold(i, layer, srcs[0], src)
            elif isinstance(layer, Flatten):
                self.flatten(i, srcs[0], src)
            else:
                self.fallback(i, layer, srcs)
        return self.steps

    def affine(self, i: int, layer: Affine | Decode, j: int, src: Meta) -> None:
        weight = np.asarray(layer.weight)
        bias = np.asarray(layer.bias)
        if src.perm is not None:
            weight = weight[:, src.perm]
        ar = self.arith(weight, bias, src, np.abs(weight.astype(np.float64)).sum(axis=1))
        self.accumulators[i] = ar.acc.name
        wt = _own(weight.T, ar.weight)
        b = _own(bias, ar.acc)
        t = self.fusable_threshold(i)
        spikes = src.kind == "spikes"
        n_out = wt.shape[1]
        if t is not None:
            self.fused[t] = i
            out_meta = Meta("spikes", "ref", (n_out,))
            theta = self.theta_for(t, out_meta, ar.acc)
            kernels = (dense_k.affine_spikes_fire, dense_k.affine_spikes_fire_par) if spikes \
                else (dense_k.affine_values_fire, dense_k.affine_values_fire_par)

            self.dense[len(self.steps)] = (wt, b, theta, spikes, ar.acc)

            def step(vals: dict[int, np.ndarray]) -> None:
                x = vals[j] if spikes else self.real_input(vals[j], ar.acc)
                z = np.empty((len(x), n_out), np.uint8)
                kernels[len(x) > 1](x, wt, b, theta, z)
                vals[t] = z

            self.metas[t] = out_meta
            self.steps.append((f"{i}+{t} {layer.kind}+Threshold", step, (j,), t))
            return
        kernels = (dense_k.affine_spikes_out, dense_k.affine_spikes_out_par) if spikes \
            else (dense_k.affine_values_out, dense_k.affine_values_out_par)
        self.dense[len(self.steps)] = (wt, b, None, spikes, ar.acc)

        def step_out(vals: dict[int, np.ndarray]) -> None:
            x = vals[j] if spikes else self.real_input(vals[j], ar.acc)
            y = np.empty((len(x), n_out), ar.acc)
            kernels[len(x) > 1](x, wt, b, y)
            vals[i] = y

        self.metas[i] = Meta("real", "ref", (n_out,))
        self.steps.append((f"{i} {layer.kind}", step_out, (j,), i))

    def dense_chain(self) -> tuple[str, Step, tuple[int, ...], int] | None:
        """One step for the whole network when it is a chain of affine layers (see
        :mod:`.chain`): an optional leading Flatten of the input, then affine steps, the
        first over real inputs, the others over spikes, every one but the last fused with
        its Threshold, of one weight dtype (integer weights are cast to the narrowest of
        them when every value fits), one accumulator and one threshold dtype."""
        steps = self.steps
        start = 1 if steps and steps[0][0].endswith("Flatten") and steps[0][2] == (INPUT,) \
            else 0
        if not self.net.is_chain or len(steps) - start < 2 or \
                any(k not in self.dense for k in range(start, len(steps))):
            return None
        specs = [self.dense[k] for k in range(start, len(steps))]
        if specs[0][3] or not all(spec[3] for spec in specs[1:]) or \
                any(spec[2] is None for spec in specs[:-1]):
            return None
        if len({spec[4] for spec in specs}) != 1 or len({spec[2].dtype for spec in specs
                                                          if spec[2] is not None}) != 1:
            return None
        wdtype = min((spec[0].dtype for spec in specs), key=lambda d: d.itemsize)
        wts = []
        for spec in specs:
            w = spec[0]
            if w.dtype != wdtype:
                if not (np.issubdtype(wdtype, np.integer) and np.issubdtype(w.dtype, np.integer)
                        and np.iinfo(wdtype).min <= w.min(initial=0)
                        and w.max(initial=0) <= np.iinfo(wdtype).max):
                    return None
                w = w.astype(wdtype)
            wts.append(w)
        acc_dtype = specs[0][4]
        dims = np.array([wts[0].shape[0], *(w.shape[1] for w in wts)], np.int64)
        woff = np.cumsum([0, *(w.size for w in wts)]).astype(np.int64)
        wflat = np.concatenate([w.ravel() for w in wts]).astype(wdtype)
        boff = np.cumsum([0, *dims[1:]]).astype(np.int64)
        bflat = np.concatenate([spec[1] for spec in specs]).astype(acc_dtype)
        fire_last = specs[-1][2] is not None
        theta_dtype = specs[0][2].dtype  # type: ignore[union-attr]
        tflat = np.concatenate([spec[2] if spec[2] is not None else
                                np.zeros(len(spec[1]), theta_dtype) for spec in specs]
                               ).astype(theta_dtype)
        n_out = int(dims[-1])
        first_src = steps[start][2][0]
        target = steps[-1][3]
        convert = self.real_input

        def step(vals: dict[int, np.ndarray]) -> None:
            x = vals[INPUT]
            n = len(x)
            x = convert(x.reshape(n, -1), acc_dtype)
            y = np.empty((n, n_out) if not fire_last else (n, 1), acc_dtype)
            z = np.empty((n, n_out) if fire_last else (n, 1), np.uint8)
            (chain_k.chain_par if n > 1 else chain_k.chain)(
                x, wflat, woff, dims, bflat, boff, tflat, fire_last, y, z)
            vals[target] = z if fire_last else y

        assert first_src in (INPUT, 0)
        return (f"{start}..{len(self.net.layers) - 1} dense chain (one call)", step,
                (INPUT,), target)

    def conv(self, i: int, layer: Conv2d, j: int, src: Meta) -> None:
        weight = np.asarray(layer.weight)  # (Cout, Cin, kh, kw)
        bias = np.asarray(layer.bias)
        cout, cin, kh, kw = weight.shape
        ar = self.arith(weight, bias, src,
                        np.abs(weight.astype(np.float64)).reshape(cout, -1).sum(axis=1))
        self.accumulators[i] = ar.acc.name
        w2 = _own(weight.transpose(2, 3, 1, 0).reshape(kh * kw * cin, cout), ar.weight)
        b = _own(bias, ar.acc)
        _, ho, wo = self.shapes[i]
        top, _, left, _ = layer.padding
        geo = np.array([kh, kw, *layer.stride, top, left, *layer.dilation, ho, wo], np.int64)
        spikes = src.kind == "spikes"
        rows_parallel = kh * kw * cin * cout * ho * wo >= ROW_PARALLEL_MIN_MACS
        # serial for one sample on one thread; rows in parallel for one sample on several;
        # samples in parallel for a batch
        kernels = (conv_k.conv_spikes, conv_k.conv_spikes_rows_par, conv_k.conv_spikes_par) \
            if spikes else (conv_k.conv_values, conv_k.conv_values_rows_par,
                            conv_k.conv_values_par)
        t = self.fusable_threshold(i)
        out_meta = Meta("spikes" if t is not None else "real", "hwc", self.shapes[i])
        theta = self.theta_for(t, out_meta, ar.acc) if t is not None \
            else np.zeros((1, 1, 1), ar.acc)
        fire = t is not None
        target = t if t is not None else i

        def step(vals: dict[int, np.ndarray]) -> None:
            x = to_hwc(vals[j], src)
            if not spikes:
                x = self.real_input(x, ar.acc)
            n = len(x)
            # the unused output is a placeholder (n, 1, 1, 1)
            z = np.empty((n, ho, wo, cout) if fire else (n, 1, 1, 1), np.uint8)
            y = np.empty((n, 1, 1, 1) if fire else (n, ho, wo, cout), ar.acc)
            kernels[2 if n > 1 else int(rows_parallel and _threads() > 1)](
                x, w2, b, geo, theta, z, y, fire)
            vals[target] = z if fire else y

        if t is not None:
            self.fused[t] = i
        self.metas[target] = out_meta
        name = f"{i}+{t} Conv2d+Threshold" if fire else f"{i} Conv2d"
        self.steps.append((name, step, (j,), target))

    def pool(self, i: int, layer: SumPool2d, j: int, src: Meta) -> None:
        t = self.fusable_threshold(i)
        assert t is not None
        c, ho, wo = self.shapes[i]
        top, _, left, _ = layer.padding
        geo = np.array([*layer.kernel, *layer.stride, top, left, ho, wo], np.int64)
        out_meta = Meta("spikes", "hwc", self.shapes[i])
        theta = _own(to_internal(np.asarray(self.net.layers[t].theta,  # type: ignore[attr-defined]
                                            dtype=np.float64), out_meta), np.dtype(np.float64))
        divisor = layer.divisor or 0
        scale = float(layer.scale)

        def step(vals: dict[int, np.ndarray]) -> None:
            x = to_hwc(vals[j], src)
            z = np.empty((len(x), ho, wo, c), np.uint8)
            (pool_k.pool_fire_par if len(x) > 1 else pool_k.pool_fire)(
                x, geo, scale, divisor, theta, z)
            vals[t] = z

        self.fused[t] = i
        self.metas[t] = out_meta
        self.steps.append((f"{i}+{t} SumPool2d+Threshold", step, (j,), t))

    def threshold(self, i: int, layer: Threshold, j: int, src: Meta) -> None:
        acc = self.dtype if not self.integer else np.dtype(np.float64)
        theta = self.theta_for(i, src, acc)

        def step(vals: dict[int, np.ndarray]) -> None:
            vals[i] = (vals[j] >= theta).view(np.uint8)

        self.metas[i] = Meta("spikes", src.layout, src.shape, src.perm)
        self.steps.append((f"{i} Threshold", step, (j,), i))

    def flatten(self, i: int, j: int, src: Meta) -> None:
        size = int(np.prod(src.shape, dtype=np.int64))
        if src.layout == "hwc":
            perm: np.ndarray | None = flatten_perm(src.shape)
        else:
            perm = src.perm

        def step(vals: dict[int, np.ndarray]) -> None:
            x = vals[j]
            vals[i] = x.reshape(len(x), -1)

        self.metas[i] = Meta(src.kind, "flat", (size,), perm)
        self.steps.append((f"{i} Flatten", step, (j,), i))

    def fallback(self, i: int, layer: Primitive, srcs: tuple[int, ...]) -> None:
        """The numpy reference kernel, on inputs converted to the reference layout."""
        ctx = Context(np.dtype(np.float64) if self.integer else self.dtype)
        kernel = kernel_for(layer)
        metas = [self.metas[j] for j in srcs]
        shape = self.shapes[i]
        integer = self.integer

        def step(vals: dict[int, np.ndarray]) -> None:
            inputs = [to_reference(vals[j], m) for j, m in zip(srcs, metas, strict=True)]
            out = kernel(layer, inputs, ctx)
            if out.dtype == np.bool_:
                out = out.view(np.uint8)
            elif integer and np.all(out == np.round(out)):
                out = out.astype(np.int64)
            vals[i] = np.ascontiguousarray(out)

        # the kind of the output: spikes when the numpy kernel keeps bool (shape-only
        # primitives and Concat of spikes), real otherwise
        spikes_out = all(m.kind == "spikes" for m in metas) and not isinstance(
            layer, (Affine, Conv2d, SumPool2d, Decode)) and type(layer).__name__ != "Add"
        self.metas[i] = Meta("spikes" if spikes_out else "real", "ref", shape)
        self.steps.append((f"{i} {layer.kind} (numpy)", step, srcs, i))


def _drops(steps: list[tuple[str, Step, tuple[int, ...], int]]) -> list[list[int]]:
    """For each step, the values it reads for the last time (dropped after it runs)."""
    last_read: dict[int, int] = {}
    for k, (_, _, srcs, _) in enumerate(steps):
        for j in srcs:
            last_read[j] = k
    drops: list[list[int]] = [[] for _ in steps]
    for j, k in last_read.items():
        drops[k].append(j)
    return drops


class _Plan:
    """The steps for one input shape and dtype, and how to read the result."""

    def __init__(self, planner: _Planner) -> None:
        self.steps = planner.plan()
        chain = planner.dense_chain()
        self.fast_steps = [chain] if chain is not None else self.steps
        net = planner.net
        self.metas = planner.metas
        self.last = len(net.layers) - 1
        self.thresholds = [i for i, layer in enumerate(net.layers) if isinstance(layer, Threshold)]
        self.integer = planner.integer
        self.dtype = planner.dtype
        self.names = [step[0] for step in self.fast_steps]
        self.accumulators = planner.accumulators
        self.out_dtype = self.dtype
        if self.integer:
            final = self.metas[self.last]
            self.out_dtype = np.dtype(np.float64) if final.kind == "real" and \
                self.accumulators.get(self.last, "int64").startswith("float") else \
                np.dtype(np.int64)
        self.drop = _drops(self.steps)
        self.fast_drop = _drops(self.fast_steps)

    def __call__(self, x: np.ndarray, record: bool, profile: dict[str, float] | None = None
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
        vals: dict[int, np.ndarray] = {INPUT: x}
        keep = set(self.thresholds) if record else ()
        steps, drops = (self.steps, self.drop) if record else (self.fast_steps, self.fast_drop)
        for (name, step, _, _), drop in zip(steps, drops, strict=True):
            if profile is None:
                step(vals)
            else:
                t0 = time.perf_counter()
                step(vals)
                profile[name] = profile.get(name, 0.0) + time.perf_counter() - t0
            for j in drop:
                if j not in keep:
                    vals.pop(j, None)
        meta = self.metas[self.last]
        out = to_reference(vals[self.last], meta).astype(self.out_dtype)
        spikes = [np.ascontiguousarray(to_reference(vals[t], self.metas[t]))
                  for t in self.thresholds] if record else []
        return out, spikes


class FastNetwork:
    """A network compiled for the fast engine; call it on a batch (see the module doc).

    ``dtype``: float32 or float64 for a float network (ignored by an integer network, which
    is computed in integers).
    """

    def __init__(self, net: SpikingNetwork, dtype: Any = np.float32) -> None:
        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise ValueError(f"the fast engine computes float networks in float32 or float64, "
                             f"got {dtype}")
        self.net = net
        self.dtype = dtype
        self.integer = is_integer_network(net)
        self._plans: dict[tuple[tuple[int, ...], str], _Plan] = {}

    def plan(self, x: np.ndarray) -> _Plan:
        """The plan for inputs shaped and typed as ``x`` ``(N, ...)`` (built once)."""
        key = (tuple(x.shape[1:]), x.dtype.str)
        plan = self._plans.get(key)
        if plan is None:
            plan = _Plan(_Planner(self.net, self.dtype, self.integer, key[0], x.dtype))
            self._plans[key] = plan
        return plan

    def steps(self, x: np.ndarray) -> list[str]:
        """The names of the plan's steps for inputs like ``x`` (which layers are fused,
        which fall back to numpy)."""
        return list(self.plan(np.asarray(x)).names)

    def __call__(self, x: np.ndarray, record: bool = False, batch_size: int = 1024,
                 progress: Progress | None = None, profile: dict[str, float] | None = None
                 ) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
        """The network's output for ``x`` ``(N, ...)`` (as :func:`whetstone.runtime.run`),
        with ``record`` also the spikes of every Threshold (bool, reference layout).
        ``profile``: a dict that receives the seconds spent in each step (summed)."""
        x = np.asarray(x)
        if x.ndim < 1:
            raise ValueError("x must be a batch (N, ...)")
        if x.dtype.kind not in "biuf":
            raise ValueError(f"the fast engine takes numeric inputs, got {x.dtype}")
        if x.dtype.kind == "f" and not self.integer:
            x = x.astype(self.dtype, copy=False)
        x = np.ascontiguousarray(x)
        plan = self.plan(x)
        starts: Iterable[int] = range(0, max(len(x), 1), batch_size)
        if progress is not None:
            starts = progress.iterate(starts, desc="spiking network (fast)", unit="batch")
        outs, recs = [], []
        # parallel loops hand out chunks of iterations dynamically (a thread that was
        # descheduled does not hold up the others), about 8 chunks per thread for a batch
        previous = None
        if len(x) > 1:
            import numba

            chunk = max(1, min(len(x), batch_size) // (8 * numba.get_num_threads()))
            previous = numba.set_parallel_chunksize(chunk)
        try:
            for start in starts:
                out, rec = plan(x[start:start + batch_size], record, profile)
                outs.append(out)
                recs.append(rec)
        finally:
            if previous is not None:
                numba.set_parallel_chunksize(previous)
        out = np.concatenate(outs) if len(outs) > 1 else outs[0]
        if not record:
            return out
        return out, [np.concatenate(layer) for layer in zip(*recs, strict=True)]


_compiled: dict[int, tuple[weakref.ref[SpikingNetwork], tuple[int, ...],
                          dict[Any, FastNetwork]]] = {}


def _forget(key: int) -> None:
    _compiled.pop(key, None)


def compile_network(net: SpikingNetwork, dtype: Any = np.float32) -> FastNetwork:
    """The :class:`FastNetwork` of ``net`` in ``dtype`` (float32 or float64), cached while
    ``net`` lives and its layers and sources are the same objects."""
    key = id(net)
    entry = _compiled.get(key)
    fingerprint = (*map(id, net.layers), id(net.inputs))
    if entry is None or entry[0]() is not net or entry[1] != fingerprint:
        entry = (weakref.ref(net), fingerprint, {})
        _compiled[key] = entry
        weakref.finalize(net, _forget, key)
    per_dtype = entry[2]
    fast = per_dtype.get(dtype)
    if fast is None:
        fast = per_dtype[dtype] = FastNetwork(net, dtype)
    return fast


def fast_engine(net: SpikingNetwork, x: np.ndarray, *, record: bool = False,
                dtype: Any = None, batch_size: int = 1024, progress: Progress | None = None,
                ) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """The ``"fast"`` entry of :data:`whetstone.runtime.simulate.ENGINES`: ``dtype`` None is
    float32 (an integer network ignores it)."""
    fast = compile_network(net, np.float32 if dtype is None else dtype)
    return fast(x, record=record, batch_size=batch_size, progress=progress)
