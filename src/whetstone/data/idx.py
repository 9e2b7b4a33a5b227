"""Reading and writing IDX files (the MNIST / Fashion-MNIST container format).

An IDX file is: two zero bytes, one type byte, one byte ``d`` (number of
dimensions), ``d`` big-endian uint32 sizes, then the data row-major and
big-endian. Files may be gzip-compressed; compression is detected from the
gzip magic bytes ``1f 8b``, never from the file name.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from whetstone.data.errors import DatasetError
from whetstone.files import atomic_write_bytes

__all__ = [
    "IDX_TYPES",
    "atomic_write_bytes",
    "decompress_if_gzip",
    "idx_bytes",
    "parse_idx",
    "read_idx",
    "write_idx",
]

#: IDX type byte -> big-endian numpy dtype of the stored data.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"
_DEFLATE_MAX_RATIO = 1032
"""Deflate's largest expansion: one compressed byte yields at most 1032 bytes."""


def decompress_if_gzip(data: bytes | bytearray, name: str) -> bytes | bytearray:
    """Return ``data`` gunzipped when it starts with the gzip magic, else unchanged.

    Raises:
        DatasetError: the gzip stream is truncated or corrupt (``name`` is quoted).
    """
    if bytes(data[:2]) != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{name}: corrupt or truncated gzip data ({exc})") from exc


def parse_idx(data: bytes | bytearray, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of one IDX file (gzipped or raw) into an array.

    Bounded: the header's shape is checked before any data is copied. The declared data
    size ``prod(shape) * itemsize`` (computed exactly, in Python integers, so it cannot
    overflow) must equal the bytes after the header of a raw file; of a gzipped file it
    must not exceed ``1032 * len(data)`` (deflate expands at most 1032-fold) and the stream
    is decompressed incrementally into one buffer of exactly that size, so a gzip bomb
    costs no more memory than the array it claims to hold.

    Args:
        data: the file's bytes.
        name: how to name the source in error messages (usually the path).

    Returns:
        A native-byte-order array of the shape stored in the header (e.g.
        ``(N, 28, 28)`` uint8 for MNIST images, ``(N,)`` uint8 for labels).

    Raises:
        DatasetError: bad magic, unknown type byte, zero dimensions, a declared size
            larger than the file can hold, or a data length that disagrees with the header
            (truncated / trailing bytes), or corrupt gzip data.
    """
    if bytes(data[:2]) == _GZIP_MAGIC:
        return _parse_gzip_idx(data, name)
    dtype, shape, header_len = _idx_header(bytes(data[:4]), data, name)
    expected = math.prod(shape) * dtype.itemsize
    got = len(data) - header_len
    if got < expected:
        raise DatasetError(
            f"{name}: truncated IDX data: header shape {shape} needs {expected} bytes, "
            f"file has {got}"
        )
    if got > expected:
        raise DatasetError(
            f"{name}: {got - expected} trailing bytes after the IDX data of shape {shape}"
        )
    if not isinstance(data, bytearray):
        data = bytearray(data)  # writable backing store, so torch.from_numpy is warning-free
    return _as_array(data, dtype, shape, header_len)


def _idx_header(head: bytes, rest: bytes | bytearray | None, name: str
                ) -> tuple[np.dtype, tuple[int, ...], int]:
    """Check the 4 fixed header bytes ``head`` and read the sizes from ``rest`` (the whole
    raw file, or ``None`` to get only the dtype and ``ndim`` via the returned shape length
    of ``(0,) * ndim``); returns ``(dtype, shape, header length)``."""
    if len(head) < 4:
        raise DatasetError(f"{name}: not an IDX file (only {len(head)} bytes, header needs 4)")
    if head[0] != 0 or head[1] != 0:
        raise DatasetError(
            f"{name}: not an IDX file (magic bytes {head[:2].hex()} instead of 0000)"
        )
    type_byte, ndim = head[2], head[3]
    if type_byte not in IDX_TYPES:
        known = ", ".join(f"0x{t:02X}" for t in IDX_TYPES)
        raise DatasetError(f"{name}: unknown IDX type byte 0x{type_byte:02X} (known: {known})")
    if ndim == 0:
        raise DatasetError(f"{name}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if rest is None:
        return IDX_TYPES[type_byte], (0,) * ndim, header_len
    if len(rest) < header_len:
        raise DatasetError(
            f"{name}: truncated IDX header ({len(rest)} bytes, {ndim} dimensions need "
            f"{header_len})"
        )
    shape = struct.unpack(f">{ndim}I", bytes(rest[4:header_len]))
    return IDX_TYPES[type_byte], shape, header_len


def _as_array(buf: bytearray, dtype: np.dtype, shape: tuple[int, ...], offset: int
              ) -> np.ndarray:
    arr = np.frombuffer(buf, dtype=dtype, offset=offset).reshape(shape)
    if dtype.byteorder == ">":
        arr = arr.astype(dtype.newbyteorder("="))
    return arr


def _read_gz(gz: gzip.GzipFile, buf: bytearray | memoryview) -> int:
    """Fill ``buf`` from ``gz``; returns the bytes read (fewer only at the end of data)."""
    view = memoryview(buf)
    pos = 0
    while pos < len(view):
        n = gz.readinto(view[pos:pos + (1 << 22)])
        if not n:
            break
        pos += n
    return pos


def _parse_gzip_idx(data: bytes | bytearray, name: str) -> np.ndarray:
    """:func:`parse_idx` of gzipped bytes, decompressed incrementally (see there)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as gz:
            head = bytearray(4)
            n = _read_gz(gz, head)
            dtype, blank, header_len = _idx_header(bytes(head[:n]), None, name)
            header = bytearray(header_len)
            header[:4] = head
            if _read_gz(gz, memoryview(header)[4:]) != header_len - 4:
                raise DatasetError(f"{name}: truncated IDX header (gzipped data ends inside "
                                   f"the sizes of its {len(blank)} dimensions)")
            _, shape, _ = _idx_header(bytes(head), header, name)
            expected = math.prod(shape) * dtype.itemsize
            if expected > _DEFLATE_MAX_RATIO * len(data):
                raise DatasetError(
                    f"{name}: IDX header shape {shape} declares {expected} bytes, more than "
                    f"{len(data)} gzip-compressed bytes can hold (deflate expands at most "
                    f"{_DEFLATE_MAX_RATIO}-fold)"
                )
            buf = bytearray(expected)
            got = _read_gz(gz, buf)
            if got < expected:
                raise DatasetError(
                    f"{name}: truncated IDX data: header shape {shape} needs {expected} "
                    f"bytes, file has {got} (after gunzip)"
                )
            extra = len(gz.read(1 << 16))
            if extra:
                raise DatasetError(
                    f"{name}: {extra}{'+' if extra == 1 << 16 else ''} trailing bytes after "
                    f"the IDX data of shape {shape} (after gunzip)"
                )
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{name}: corrupt or truncated gzip data ({exc})") from exc
    return _as_array(buf, dtype, shape, 0)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (gzipped or raw) from ``path``; see :func:`parse_idx`.

    Raises:
        DatasetError: the file cannot be read or is not a valid IDX file; the
            message names the file and the problem.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        buf = bytearray(size)
        with path.open("rb") as f:
            n = f.readinto(buf)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read IDX file ({exc})") from exc
    if n != size:
        del buf[n:]
    return parse_idx(buf, str(path))


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialize ``array`` (uint8/int8/int16/int32/float32/float64, >=1 dim) as raw IDX."""
    array = np.asarray(array)
    matches = [
        (t, d) for t, d in IDX_TYPES.items()
        if array.dtype.kind == d.kind and array.dtype.itemsize == d.itemsize
    ]
    if not matches:
        raise DatasetError(f"dtype {array.dtype} cannot be stored in an IDX file")
    type_byte, dtype = matches[0]
    if array.ndim == 0 or array.ndim > 255:
        raise DatasetError(f"an IDX file holds 1 to 255 dimensions, not {array.ndim}")
    header = bytes([0, 0, type_byte, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, atomically; gzipped when ``path`` ends in ``.gz``."""
    path = Path(path)
    data = idx_bytes(array)
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=6, mtime=0)
    atomic_write_bytes(path, data)
