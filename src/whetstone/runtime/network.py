"""A spiking network: primitives in topological order, their sources, and metadata, saved
without pickle.

Graph. ``layers[i]`` reads the outputs of ``inputs[i]``, a tuple of earlier layer indices
(``-1`` is the network input); ``inputs=None`` is a chain, ``inputs[i] = (i - 1,)``. The
network's output is the output of its last layer. Every other layer's output must be read
by a later layer, and each primitive gets as many inputs as its
:attr:`~whetstone.runtime.primitives.Primitive.arity` says (one; two or more for ``Add``
and ``Concat``).

File format (one ``.npz``, written by :func:`numpy.savez`, read with ``allow_pickle=False``):

- ``__header__``: UTF-8 JSON as a ``uint8`` array::

      {"format": "whetstone-spiking-network", "version": 1,
       "layers": [{"kind": "Affine", "params": {...}, "arrays": {"weight": "0.weight", ...}}],
       "metadata": {...}, "sha256": "<hex>"}

  Version 2 (graphs) adds ``"inputs": [[-1], [0], [1, 0], ...]``, one list of source
  indices per layer. A chain is written as version 1, exactly as before graphs existed, so
  older readers still read every chain; both versions are read.
- one array per primitive array field, named ``"{layer index}.{field}"``.

``sha256`` covers the header without it (canonical JSON) and every array's name, dtype,
shape and bytes, so any change to the arrays or the layer list is detected on load. Files
are written to a temporary file in the same folder, then moved into place (``os.replace``).

Members are stored uncompressed (``ZIP_STORED``), one ``.npy`` each: ``__header__.npy``
(``uint8``, 1-D) and ``"{layer index}.{field}.npy"`` (``float32`` or ``float64``, C order) for
exactly the fields of each layer's primitive. :meth:`SpikingNetwork.load` refuses anything
else before reading array data (see its docstring for the bounds).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import struct
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write_with
from .errors import NetworkFileError
from .primitives import (
    PRIMITIVES,
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

FORMAT = "whetstone-spiking-network"
VERSION = 2
"""The newest format version, written for graphs; chains are written as version 1."""
CHAIN_VERSION = 1
VERSIONS = (1, 2)
"""Format versions :meth:`SpikingNetwork.load` reads."""
MAX_SOURCES = 4096
"""Most sources one layer may read (a bound for the header parser)."""
INPUT = -1
"""The source index of the network input in :attr:`SpikingNetwork.inputs`."""
_HEADER = "__header__"
_NPY = ".npy"

MAX_MEMBERS = 100_000
"""Most members a network file may have (its end record is checked before the directory is
read, so a forged member count costs nothing)."""
_NPY_HEAD_MAX = 4096
"""Most bytes of a member's ``.npy`` magic and header (numpy writes 128 for these arrays)."""
_MAX_NDIM = 8
_ARRAY_DTYPES = frozenset(np.dtype(f"{order}{kind}{size}") for order in "<>"
                          for kind, sizes in (("f", (4, 8)), ("i", (1, 2, 4, 8)))
                          for size in sizes)
_END = struct.Struct("<4s4H2LH")  # end of central directory record, 22 bytes
_END64_LOCATOR = struct.Struct("<4sLQL")  # zip64 end of central directory locator, 20 bytes
_END64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record, 56 bytes

READOUTS: tuple[str, ...] = ("decode", "affine", "conv2d", "pool", "spikes", "identity",
                             "add", "concat")
"""The kinds of :attr:`SpikingNetwork.readout`."""

SHAPE_ONLY: tuple[type[Primitive], ...] = (Flatten, Unflatten, Upsample2d)
"""Primitives that only move or copy values (a reshape, nearest upsampling): they never
decide what kind of values a network outputs."""

_READOUT_OF: dict[type[Primitive], str] = {
    Decode: "decode", Affine: "affine", Conv2d: "conv2d", SumPool2d: "pool",
    Threshold: "spikes", Add: "add", Concat: "concat",
}


@dataclass
class SpikingNetwork:
    """Primitives applied to a batch ``(N, ...)``; see :func:`whetstone.runtime.run`.

    ``layers`` are in topological order; ``inputs[i]`` are the sources of ``layers[i]``
    (earlier indices, ``-1`` = the network input), ``None`` for a chain (see the module
    doc). Sources that describe a chain are stored as ``None``. ``metadata`` is free-form
    JSON (conversion writes the source, the threshold convention, the origin of every
    primitive and the ``readout``). :attr:`readout` itself is always derived from the
    layers, so it holds for networks built by hand or read from a file.

    Raises:
        TypeError: a layer is not a runtime primitive, or a source is not an int.
        ValueError: ``inputs`` has the wrong length, a source is not an earlier layer or
            ``-1``, a primitive gets the wrong number of inputs, or a layer's output is
            never read (each names the layer).
    """

    layers: list[Primitive]
    metadata: dict[str, Any] = field(default_factory=dict)
    inputs: list[tuple[int, ...]] | None = None

    def __post_init__(self) -> None:
        self.layers = list(self.layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Primitive) or type(layer) not in PRIMITIVES.values():
                raise TypeError(f"layer {i} is {type(layer).__name__}, not a runtime primitive")
        self.inputs = _checked_sources(self.layers, self.inputs)

    @property
    def is_integer(self) -> bool:
        """True for an integer network (:func:`whetstone.quantization.to_integer`): every
        ``Affine`` / ``Conv2d`` weight and bias and every ``Threshold`` holds an integer dtype
        (a ``Decode`` is integer by construction, its weights ``4K - 2``), so that the whole
        network is integer arithmetic on integer inputs."""
        arrays = [arr for layer in self.layers if not isinstance(layer, Decode)
                  for arr in layer.arrays().values()]
        return bool(arrays) and all(np.issubdtype(a.dtype, np.integer) for a in arrays)

    @property
    def is_chain(self) -> bool:
        """Whether every layer reads the one before it (the first reads the input)."""
        return self.inputs is None

    def sources(self, i: int) -> tuple[int, ...]:
        """The source indices of layer ``i`` (``-1``: the network input)."""
        return (i - 1,) if self.inputs is None else self.inputs[i]

    def consumers(self) -> dict[int, list[int]]:
        """Source index (``-1`` included) -> the layers that read it, in order (a layer
        reading a source twice is listed twice)."""
        out: dict[int, list[int]] = {j: [] for j in range(-1, len(self.layers))}
        for i in range(len(self.layers)):
            for j in self.sources(i):
                out[j].append(i)
        return out

    def shapes(self, input_shape: Iterable[int]) -> list[tuple[int, ...]]:
        """The batch-free output shape of every layer for the batch-free ``input_shape``
        (from each primitive's :meth:`~whetstone.runtime.primitives.Primitive.output_shape`).

        Raises:
            ValueError: a layer's inputs do not fit it (names the layer and the shapes).
        """
        first = tuple(int(s) for s in input_shape)
        out: list[tuple[int, ...]] = []
        for i, layer in enumerate(self.layers):
            ins = [first if j == INPUT else out[j] for j in self.sources(i)]
            try:
                out.append(layer.output_shape(*ins))
            except ValueError as exc:
                raise ValueError(f"layer {i} ({layer.kind}): {exc}") from exc
        return out

    @property
    def num_classes(self) -> int | None:
        """Number of classes when the network ends with a :class:`Decode`, else ``None``."""
        last = self.layers[-1] if self.layers else None
        return int(last.key.shape[0]) if isinstance(last, Decode) else None

    @property
    def readout_index(self) -> int | None:
        """Index of the readout: going back from the last layer through shape-only
        primitives (``Flatten``, ``Unflatten``, ``Upsample2d``, which copy values unchanged)
        along their source, the first one that is not shape-only; ``None`` when that walk
        reaches the network input."""
        i = len(self.layers) - 1
        while i >= 0 and isinstance(self.layers[i], SHAPE_ONLY):
            i = self.sources(i)[0]
        return None if i < 0 else i

    @property
    def readout(self) -> str:
        """What the network's output is, from the primitive at :attr:`readout_index`:

        - ``"decode"``: a :class:`Decode`: class logits ``(N, C)``,
          ``(4K - 2) a - (2K - 1).sum(1)`` of the binary output population ``a``;
        - ``"affine"``: an :class:`Affine` with no ``Threshold`` after it: the real values
          ``y = W z + b`` ``(N, out)`` (a reconstruction, regression targets, Q-values);
        - ``"conv2d"``: a :class:`Conv2d` with no ``Threshold`` after it: real values
          ``(N, C, H, W)``; a 1x1 convolution is the per-pixel affine readout
          ``y[:, i, j] = W z[:, i, j] + b`` (e.g. per-pixel class scores);
        - ``"pool"``: a :class:`SumPool2d` with no ``Threshold`` after it (real averages);
        - ``"spikes"``: a :class:`Threshold`: the output is binary;
        - ``"add"`` / ``"concat"``: a merge of a graph network (a sum of its inputs, their
          concatenation);
        - ``"identity"``: only shape-only primitives (or none).

        The decode is the readout of the N-hot population code: a fixed affine map of the
        last spikes, like an ``"affine"`` readout whose weights come from the key.
        """
        index = self.readout_index
        return "identity" if index is None else _READOUT_OF[type(self.layers[index])]

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """Batch-free input shape ``(C, H, W)`` or ``(D,)``, from ``metadata["input_shape"]``
        (conversion records it when given an example input or a run's dataset); ``None``
        when unknown."""
        shape = self.metadata.get("input_shape")
        return None if shape is None else tuple(int(s) for s in shape)

    @property
    def spiking_layers(self) -> int:
        """Number of :class:`Threshold` primitives (entries of ``run(..., record=True)``)."""
        return sum(isinstance(layer, Threshold) for layer in self.layers)

    def __repr__(self) -> str:
        inner = ", ".join(_describe(layer) for layer in self.layers)
        if self.inputs is None:
            return f"SpikingNetwork([{inner}])"
        return f"SpikingNetwork([{inner}], inputs={[list(s) for s in self.inputs]})"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the network to ``path`` (one ``.npz``, atomically, no pickle)."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        specs = []
        for i, layer in enumerate(self.layers):
            names = {}
            for name, arr in layer.arrays().items():
                names[name] = f"{i}.{name}"
                arrays[f"{i}.{name}"] = np.ascontiguousarray(arr)
            specs.append({"kind": layer.kind, "params": layer.params(), "arrays": names})
        header: dict[str, Any] = {"format": FORMAT, "version": CHAIN_VERSION,
                                  "layers": specs, "metadata": self.metadata}
        if self.inputs is not None:
            header["version"] = VERSION
            header["inputs"] = [list(src) for src in self.inputs]
        try:
            header["sha256"] = _digest(header, arrays)
        except TypeError as exc:
            raise ValueError(f"network metadata must be JSON-serialisable: {exc}") from exc
        blob = json.dumps(header, sort_keys=True).encode("utf-8")
        arrays[_HEADER] = np.frombuffer(blob, dtype=np.uint8)
        atomic_write_with(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SpikingNetwork:
        """Read a network written by :meth:`save`, bounded in memory and time.

        The archive is checked before any array is read: its end-of-central-directory
        record (at most :data:`MAX_MEMBERS` members, no archive comment), then every member:
        the names must be exactly ``__header__.npy`` and the ``"{i}.{field}.npy"`` that the
        header's layer list defines, stored uncompressed (``ZIP_STORED``, as
        :func:`numpy.savez` writes them) and unencrypted, their declared sizes together
        within the file's size, and each ``.npy`` header's dtype (``uint8`` for the header,
        ``float32``/``float64`` or ``int8``..``int64`` for arrays) and
        shape must account for exactly the declared
        member size. So a file can make :meth:`load` allocate no more than its own size (plus
        a copy per array while the primitives are built), and a compressed "zip bomb" or a
        member declaring terabytes is refused before anything is decompressed.

        Raises:
            NetworkFileError: (a ``ValueError``) when the file is not such a network, is
                truncated or corrupted, fails its checksum, has an unknown version, or breaks
                any of the bounds above; the message names the file and the problem.
            FileNotFoundError: when ``path`` does not exist.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such spiking network file")

        def fail(problem: str) -> NetworkFileError:
            return NetworkFileError(f"{path}: {problem}")

        try:
            with path.open("rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                _check_end_record(fh, size, fail)
                with zipfile.ZipFile(fh) as zf:
                    header, arrays = _read_members(zf, size, fail)
        except NetworkFileError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
                KeyError, IndexError, NotImplementedError, RuntimeError, struct.error,
                OverflowError) as exc:
            raise fail(f"not a readable spiking network file (truncated or corrupted?): "
                       f"{type(exc).__name__}: {exc}") from exc
        expected = header.pop("sha256", None)
        try:
            actual = _digest(header, arrays)
        except (TypeError, ValueError, RecursionError) as exc:
            raise fail(f"corrupted header: {exc}") from exc
        if expected != actual:
            raise fail(f"checksum mismatch (sha256 {actual} != recorded {expected}): "
                       "the file was modified or corrupted")
        layers = []
        for i, spec in enumerate(header["layers"]):
            parts = {name: arrays.pop(key) for name, key in spec["arrays"].items()}
            try:
                layers.append(PRIMITIVES[spec["kind"]].from_parts(spec["params"], parts))
            except (KeyError, TypeError, ValueError, OverflowError, AttributeError,
                    IndexError, RecursionError) as exc:
                raise fail(f"invalid layer {i} ({spec['kind']}): {type(exc).__name__}: {exc}"
                           ) from exc
        inputs = header.get("inputs")
        metadata = header.get("metadata", {})
        if not isinstance(metadata, dict):
            raise fail(f"metadata must be a JSON object, got {type(metadata).__name__}")
        shape = metadata.get("input_shape")
        if shape is not None and not (
                isinstance(shape, list) and 0 < len(shape) <= 8
                and all(type(s) is int and 0 < s < 2**31 for s in shape)):
            raise fail(f"metadata input_shape must be a list of 1 to 8 positive integers, "
                       f"got {str(shape)[:80]}")
        try:
            return cls(layers, metadata, None if inputs is None else [tuple(s) for s in inputs])
        except (TypeError, ValueError) as exc:
            raise fail(f"invalid graph: {exc}") from exc


def _check_end_record(fh: Any, size: int, fail: Callable[[str], NetworkFileError]) -> None:
    """Check the zip end-of-central-directory record (and its zip64 form) before
    :class:`zipfile.ZipFile` reads the directory: it must end the file (no archive comment,
    as :func:`numpy.savez` writes), list at most :data:`MAX_MEMBERS` members, and have a
    directory no larger than the file."""
    if size < _END.size:
        raise fail(f"only {size} bytes: not a zip archive (an .npz is a zip archive)")
    fh.seek(size - _END.size)
    sig, _, _, _, members, cd_size, cd_offset, comment = _END.unpack(fh.read(_END.size))
    if sig != b"PK\x05\x06" or comment != 0:
        raise fail("no zip end-of-central-directory record at the end of the file "
                   "(truncated, or not an .npz written by whetstone)")
    if (members == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF) \
            and size >= _END.size + _END64_LOCATOR.size:
        fh.seek(size - _END.size - _END64_LOCATOR.size)
        loc_sig, _, end64_offset, _ = _END64_LOCATOR.unpack(fh.read(_END64_LOCATOR.size))
        if loc_sig == b"PK\x06\x07":
            if end64_offset > size - _END64.size:
                raise fail(f"zip64 end record offset {end64_offset} lies outside the file")
            fh.seek(end64_offset)
            fields = _END64.unpack(fh.read(_END64.size))
            if fields[0] != b"PK\x06\x06":
                raise fail("corrupted zip64 end-of-central-directory record")
            members, cd_size = fields[7], fields[8]
    if members > MAX_MEMBERS:
        raise fail(f"the zip directory lists {members} members; a network file has at most "
                   f"{MAX_MEMBERS}")
    if cd_size > size:
        raise fail(f"the zip directory declares {cd_size} bytes, more than the file's {size}")


def _read_members(zf: zipfile.ZipFile, size: int, fail: Callable[[str], NetworkFileError]
                  ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The checked header (``sha256`` still in it) and the arrays by key.

    Member sizes, compression, names and ``.npy`` headers are all checked before any array
    data is read (see :meth:`SpikingNetwork.load`).
    """
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise fail(f"{len(infos)} zip members; a network file has at most {MAX_MEMBERS}")
    by_name: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        name = info.filename
        if name in by_name:
            raise fail(f"member {name!r} appears twice")
        if info.flag_bits & 0x1:
            raise fail(f"member {name!r} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise fail(f"member {name!r} is compressed (method {info.compress_type}, "
                       f"{info.compress_size} bytes declaring {info.file_size}); network files "
                       "store members uncompressed, as numpy.savez writes them")
        by_name[name] = info
        total += info.file_size
    if total > size:
        raise fail(f"the members declare {total} bytes in all, more than the file's {size} "
                   "bytes")
    if _HEADER + _NPY not in by_name:
        raise fail(f"no {_HEADER} entry; not a whetstone spiking network file")
    raw = _read_npy(zf, by_name[_HEADER + _NPY], fail, header=True)
    header, keys = _parse_header(raw, fail)
    expected = {_HEADER + _NPY, *(key + _NPY for key in keys)}
    unexpected, missing = sorted(set(by_name) - expected), sorted(expected - set(by_name))
    if unexpected or missing:
        raise fail(f"members do not match the layer list: unexpected {unexpected}, "
                   f"missing {missing}")
    arrays = {key: _read_npy(zf, by_name[key + _NPY], fail, header=False) for key in keys}
    return header, arrays


def _parse_header(raw: np.ndarray, fail: Callable[[str], NetworkFileError]
                  ) -> tuple[dict[str, Any], list[str]]:
    """Decode and check the header JSON; returns it and the array keys its layers define
    (``"{i}.{field}"`` for each array field of each layer's primitive, in order)."""
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise fail(f"corrupted header: {type(exc).__name__}: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise fail(f"wrong format {found!r}; expected {FORMAT!r}")
    version = header.get("version")
    if type(version) is not int or version not in VERSIONS:
        raise fail(f"unsupported format version {version!r}; this whetstone reads versions "
                   f"{', '.join(map(str, VERSIONS))}")
    layers = header.get("layers")
    if not isinstance(layers, list):
        raise fail(f"corrupted header: 'layers' is {type(layers).__name__}, not a list")
    _check_header_inputs(header, version, len(layers), fail)
    keys: list[str] = []
    for i, spec in enumerate(layers):
        if not isinstance(spec, dict) or set(spec) != {"kind", "params", "arrays"}:
            raise fail(f"layer {i}: expected an object with kind, params and arrays")
        kind = spec["kind"]
        if not isinstance(kind, str) or kind not in PRIMITIVES:
            raise fail(f"layer {i}: unknown primitive {kind!r}")
        if not isinstance(spec["params"], dict):
            raise fail(f"layer {i} ({kind}): params must be an object")
        fields = PRIMITIVES[kind]._arrays
        want = {name: f"{i}.{name}" for name in fields}
        if spec["arrays"] != want:
            raise fail(f"layer {i} ({kind}): arrays {spec['arrays']!r}, expected {want!r}")
        keys += want.values()
    return header, keys


def _check_header_inputs(header: dict[str, Any], version: int, count: int,
                         fail: Callable[[str], NetworkFileError]) -> None:
    """Version 1 has no ``inputs``; version 2 has one list of at most :data:`MAX_SOURCES`
    integers ``-1 <= s < i`` per layer ``i`` (checked here, before anything is built; the
    arities are checked by :class:`SpikingNetwork`)."""
    inputs = header.get("inputs")
    if version == 1:
        if "inputs" in header:
            raise fail("a version 1 header has no 'inputs' (graphs are version 2)")
        return
    if not isinstance(inputs, list) or len(inputs) != count:
        raise fail(f"a version 2 header needs 'inputs', one list of sources per layer "
                   f"({count}), got {str(inputs)[:80]}")
    for i, src in enumerate(inputs):
        if not isinstance(src, list) or not 0 < len(src) <= MAX_SOURCES or not all(
                type(s) is int and INPUT <= s < i for s in src):
            raise fail(f"layer {i}: inputs must be 1 to {MAX_SOURCES} indices of earlier "
                       f"layers or -1 (the network input), got {str(src)[:80]}")


def _checked_sources(layers: list[Primitive], inputs: Iterable[Iterable[int]] | None
                     ) -> list[tuple[int, ...]] | None:
    """``inputs`` as a list of tuples after the checks of :class:`SpikingNetwork`, or
    ``None`` when they describe a chain."""
    if inputs is None:
        for i, layer in enumerate(layers):
            if layer.arity != 1:
                raise ValueError(f"layer {i} ({layer.kind}) takes two or more inputs; a chain "
                                 "gives each layer one, so pass inputs= (a graph)")
        return None
    sources = [tuple(src) for src in inputs]
    if len(sources) != len(layers):
        raise ValueError(f"inputs has {len(sources)} entries for {len(layers)} layers")
    read = set()
    for i, (layer, src) in enumerate(zip(layers, sources, strict=True)):
        where = f"layer {i} ({layer.kind})"
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in src):
            raise TypeError(f"{where}: sources must be ints, got {src!r}")
        if not all(INPUT <= s < i for s in src):
            raise ValueError(f"{where}: sources {src} must be earlier layers (0 to {i - 1}) or "
                             "-1 (the network input)")
        if layer.arity is None and len(src) < 2:
            raise ValueError(f"{where} takes two or more inputs, got sources {src}")
        if layer.arity is not None and len(src) != layer.arity:
            raise ValueError(f"{where} takes {layer.arity} input(s), got sources {src}")
        read.update(src)
    unread = [i for i in range(len(layers) - 1) if i not in read]
    if unread:
        raise ValueError(f"the outputs of layers {unread} are never read (the network's "
                         "output is its last layer; remove unused layers)")
    sources = [tuple(int(s) for s in src) for src in sources]
    if all(src == (i - 1,) for i, src in enumerate(sources)):
        return None
    return sources


def _read_npy(zf: zipfile.ZipFile, info: zipfile.ZipInfo,
              fail: Callable[[str], NetworkFileError], header: bool) -> np.ndarray:
    """Read one stored ``.npy`` member after checking its header: dtype ``uint8`` 1-D
    (``header``) or ``float32``/``float64``/``int8``..``int64`` (arrays), C order, at most
    8 dimensions, and
    ``len(npy header) + prod(shape) * itemsize == declared member size``."""
    name = info.filename
    with zf.open(info) as member:
        head = member.read(min(info.file_size, _NPY_HEAD_MAX + 16))
        buf = io.BytesIO(head)
        try:
            version = np.lib.format.read_magic(buf)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                    buf, max_header_size=_NPY_HEAD_MAX)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                    buf, max_header_size=_NPY_HEAD_MAX)
            else:
                raise ValueError(f".npy format version {version} (expected 1.0 or 2.0)")
        except (ValueError, SyntaxError, TypeError, KeyError, RecursionError, MemoryError,
                OverflowError) as exc:
            raise fail(f"member {name!r}: bad .npy header: {exc}") from exc
        ok_dtype = dtype == np.uint8 if header else dtype in _ARRAY_DTYPES
        if not ok_dtype or (header and len(shape) != 1):
            want = "uint8 (n,)" if header else "float32, float64 or int8..int64"
            raise fail(f"member {name!r}: .npy holds {dtype} {shape}; expected {want}")
        if fortran or len(shape) > _MAX_NDIM or any(d < 0 for d in shape):
            raise fail(f"member {name!r}: unsupported .npy layout (shape {shape}, "
                       f"fortran_order {fortran})")
        offset = buf.tell()
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes != info.file_size:
            raise fail(f"member {name!r}: .npy header declares {dtype} {shape} "
                       f"({nbytes} bytes) but the member holds {info.file_size - offset}")
        arr = np.empty(shape, dtype=dtype)
        flat = arr.reshape(-1).view(np.uint8)
        pos = len(head) - offset
        flat[:pos] = np.frombuffer(head, dtype=np.uint8, offset=offset)
        while pos < nbytes:
            chunk = member.read(min(1 << 20, nbytes - pos))
            if not chunk:
                raise fail(f"member {name!r} is truncated")
            flat[pos:pos + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            pos += len(chunk)
        member.read()  # at the end: zipfile checks the member's CRC-32
    return arr


def _digest(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    """sha256 of the canonical header JSON and every array (name, dtype, shape, bytes)."""
    h = hashlib.sha256()
    h.update(json.dumps(header, sort_keys=True).encode("utf-8"))
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(arr.reshape(-1).view(np.uint8))  # the bytes of arr.tobytes(), without a copy
    return h.hexdigest()


def _describe(layer: Primitive) -> str:
    shapes: Iterable[str] = (f"{k}={float(v)}" if v.ndim == 0 else f"{k}={tuple(v.shape)}"
                             for k, v in layer.arrays().items())
    params = (f"{k}={v}" for k, v in layer.params().items())
    return f"{layer.kind}({', '.join([*shapes, *params])})"
