"""onnxruntime as an engine of :func:`whetstone.runtime.run`: :func:`run_onnx`.

The network's ONNX model (:func:`~whetstone.export.onnx.build_model`) is built in memory and
loaded into one ``onnxruntime.InferenceSession`` (CPU) per network, real type, input shape
and type, ``record`` flag and thread count; the sessions are cached while the network lives
(a weak reference: collecting the network drops them) and rebuilt when its layers, sources
or integer metadata change.

Results. An integer network gives exactly the reference's integers (int64) and spikes. A
float network in float64 computes the same real values as the reference up to the summation
order of the matrix products (last-bit differences in real readouts; spikes differ only for
a pre-activation within that rounding of its threshold); in float32 it differs from the
float64 reference where float32 rounding decides, as the numpy engine in float32 does.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ...runtime import SpikingNetwork
from .builder import FLOAT64, dtype_bound
from .model import WORKSPACE_PROP, build_model, integer_input, real_dtype

if TYPE_CHECKING:
    from ...progress import Progress


@dataclass
class _Entry:
    """The sessions of one network, with what they were built from: its layers (kept alive
    here, so that an identity check cannot match a new object at a reused address), sources,
    ``metadata["integer"]`` (the object and its JSON) and whether it is an integer network.
    ``sessions``: settings -> ``(InferenceSession, input name, most samples per call)``."""

    layers: tuple[Any, ...]
    inputs: Any
    integer_meta: Any
    integer_json: str
    integer: bool
    sessions: dict[tuple[Any, ...], tuple[Any, str, int | None]] = field(default_factory=dict)

    def matches(self, net: SpikingNetwork) -> bool:
        """Whether ``net`` still has these layers, sources and integer metadata (an identity
        check per layer; the metadata by identity, else by its JSON)."""
        layers = net.layers
        if len(layers) != len(self.layers) or any(
                a is not b for a, b in zip(self.layers, layers, strict=True)):
            return False
        inputs = net.inputs
        if inputs is not self.inputs and (inputs is None or self.inputs is None
                                          or tuple(inputs) != tuple(self.inputs)):
            return False
        meta = net.metadata.get("integer")
        return meta is self.integer_meta or _json(meta) == self.integer_json


WORKSPACE_BYTES = 256 * 2**20
"""Most bytes of im2col matrices one session call may build (float64 and wide integer
convolutions): :func:`run_onnx` splits a batch into calls of at most
``WORKSPACE_BYTES // (bytes per sample)`` samples."""

_ENTRIES: dict[int, _Entry] = {}
_REFS: dict[int, weakref.ref[SpikingNetwork]] = {}


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the onnxruntime engine needs onnxruntime: pip install "
                          "'whetstone[onnx]'") from exc
    return onnxruntime


def _entry(net: SpikingNetwork) -> _Entry:
    """The cache entry of ``net``, new when it changed since its sessions were built."""
    key = id(net)
    entry = _ENTRIES.get(key)
    ref = _REFS.get(key)
    if entry is None or ref is None or ref() is not net or not entry.matches(net):
        meta = net.metadata.get("integer")
        inputs = None if net.inputs is None else list(net.inputs)
        entry = _Entry(tuple(net.layers), inputs, meta, _json(meta), net.is_integer)
        _ENTRIES[key] = entry
        _REFS[key] = weakref.ref(net, lambda _r, k=key: (_ENTRIES.pop(k, None),
                                                          _REFS.pop(k, None)))
    return entry


def _session(net: SpikingNetwork, entry: _Entry, input_shape: tuple[int, ...],
             real: np.dtype, in_dtype: np.dtype, record: bool, threads: int | None
             ) -> tuple[Any, str, int | None]:
    """``(session, input name, most samples per call)`` of ``entry`` for these settings, built
    on first use; the last bounds the im2col matrices of a call by :data:`WORKSPACE_BYTES`
    (``None``: no im2col)."""
    key = (real.str, in_dtype.str, input_shape, record, threads)
    found = entry.sessions.get(key)
    if found is None:
        ort = _onnxruntime()
        model = build_model(net, dtype=real, input_shape=input_shape, input_dtype=in_dtype,
                            record=record)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 0 if threads is None else int(threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        sess = ort.InferenceSession(model.SerializeToString(), options,
                                    providers=["CPUExecutionProvider"])
        props = {p.key: p.value for p in model.metadata_props}
        per_sample = int(props.get(WORKSPACE_PROP, "0"))
        most = WORKSPACE_BYTES // per_sample if per_sample else None
        found = entry.sessions[key] = (sess, sess.get_inputs()[0].name, most)
    return found


def session(net: SpikingNetwork, input_shape: tuple[int, ...], *,
            dtype: Any = None, input_dtype: Any = None, record: bool = False,
            threads: int | None = None) -> Any:
    """The cached ``onnxruntime.InferenceSession`` of ``net`` for these settings (built on
    first use; arguments as in :func:`~whetstone.export.onnx.build_model`). ``threads``:
    onnxruntime's intra-op threads (``None``: its default, one per physical core)."""
    entry = _entry(net)
    real = real_dtype(net, dtype)
    in_dtype = integer_input(net, input_dtype)[0] if entry.integer else real
    return _session(net, entry, tuple(int(d) for d in input_shape), real, in_dtype,
                    bool(record), threads)[0]


def _integer_x(net: SpikingNetwork, x: np.ndarray) -> np.ndarray:
    """``x`` as the integer network's input type, checked against the input bound its
    accumulators were sized for."""
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
        raise ValueError(f"an integer network takes integer inputs (e.g. uint8 pixels: "
                         f"whetstone.quantization.integer_inputs converts), got {x.dtype}")
    dtype, bound = integer_input(net, None)
    if x.dtype == dtype and bound >= dtype_bound(dtype):  # every value fits
        return x
    if x.size:
        lo, hi = int(x.min()), int(x.max())
        info = np.iinfo(dtype)
        if lo < info.min or hi > info.max or max(abs(lo), abs(hi)) > bound:
            raise ValueError(f"integer inputs span [{lo}, {hi}]; the network reads {dtype} "
                             f"inputs of magnitude at most {bound} (metadata['integer']"
                             f"['input_max'])")
    return x.astype(dtype, copy=False)


def run_onnx(
    net: SpikingNetwork,
    x: np.ndarray,
    record: bool = False,
    dtype: type[np.floating] | np.dtype | str | None = None,
    batch_size: int = 1024,
    threads: int | None = None,
    progress: Progress | None = None,
) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """:func:`whetstone.runtime.run` computed by onnxruntime: the readout's values ``(N, ...)``
    as ``dtype`` (int64 for an integer network), and with ``record=True`` the spikes of every
    ``Threshold`` (bool arrays, layer order).

    ``dtype``: float32 (default for a float network: the fast case) or float64; an integer
    network is computed in integers (``dtype`` must be ``None`` or float64, as for the
    reference). ``batch_size`` bounds the samples per session call, ``threads`` sets
    onnxruntime's intra-op threads (``None``: its default). The session is built once per
    network and settings (see the module doc).

    Raises:
        ValueError: a float input for an integer network, or integers beyond its input
            bound; ``dtype`` other than float32 / float64.
        ImportError: onnx or onnxruntime is missing (``pip install 'whetstone[onnx]'``).
    """
    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError("x must be a batch (N, ...)")
    entry = _entry(net)
    if entry.integer:
        if dtype is not None and np.dtype(dtype) != FLOAT64:
            raise ValueError(f"an integer network is computed exactly in integers; dtype must "
                             f"be None or float64, not {np.dtype(dtype)}")
        x = _integer_x(net, x)
        real, out_dtype = FLOAT64, np.dtype(np.int64)
    else:
        real = out_dtype = real_dtype(net, dtype)
        x = x.astype(real, copy=False)
    sess, name, most = _session(net, entry, x.shape[1:], real, x.dtype, bool(record), threads)
    batch_size = max(1, int(batch_size) if most is None else min(int(batch_size), max(1, most)))
    if progress is None and len(x) <= batch_size:  # one call (the latency path)
        got = sess.run(None, {name: np.ascontiguousarray(x)})
        out = got[0].astype(out_dtype, copy=False)
        return (out, got[1:]) if record else out
    outs: list[np.ndarray] = []
    spikes: list[list[np.ndarray]] = []
    starts: Iterable[int] = range(0, max(len(x), 1), batch_size)
    if progress is not None:
        starts = progress.iterate(starts, desc="spiking network (onnxruntime)", unit="batch")
    for start in starts:
        got = sess.run(None, {name: np.ascontiguousarray(x[start:start + batch_size])})
        outs.append(got[0])
        spikes.append(got[1:])
    out = (np.concatenate(outs) if len(outs) > 1 else outs[0]).astype(out_dtype, copy=False)
    if not record:
        return out
    return out, [np.concatenate(layer) for layer in zip(*spikes, strict=True)]


def onnx_engine(net: SpikingNetwork, x: np.ndarray, *, record: bool = False,
                dtype: Any = None, batch_size: int = 1024, progress: Progress | None = None,
                **options: Any) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """The ``"onnxruntime"`` engine of :func:`whetstone.runtime.run` (its engine signature;
    ``options`` may hold ``threads``): :func:`run_onnx`."""
    threads = options.pop("threads", None)
    if options:
        raise TypeError(f"the onnxruntime engine takes no option(s) {', '.join(options)}")
    return run_onnx(net, x, record=record, dtype=dtype, batch_size=batch_size,
                    threads=threads, progress=progress)


def clear_sessions() -> None:
    """Drop every cached session."""
    _ENTRIES.clear()
    _REFS.clear()
