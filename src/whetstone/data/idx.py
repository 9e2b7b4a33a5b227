"""Reading and writing IDX files (the MNIST / Fashion-MNIST container format).

An IDX file is: two zero bytes, one type byte, one byte ``d`` (number of
dimensions), ``d`` big-endian uint32 sizes, then the data row-major and
big-endian. Files may be gzip-compressed; compression is detected from the
gzip magic bytes ``1f 8b``, never from the file name.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np

from whetstone.data.errors import DatasetError

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

    Args:
        data: the file's bytes.
        name: how to name the source in error messages (usually the path).

    Returns:
        A native-byte-order array of the shape stored in the header (e.g.
        ``(N, 28, 28)`` uint8 for MNIST images, ``(N,)`` uint8 for labels).

    Raises:
        DatasetError: bad magic, unknown type byte, zero dimensions, or a data
            length that disagrees with the header (truncated / trailing bytes).
    """
    data = decompress_if_gzip(data, name)
    if len(data) < 4:
        raise DatasetError(f"{name}: not an IDX file (only {len(data)} bytes, header needs 4)")
    if data[0] != 0 or data[1] != 0:
        raise DatasetError(
            f"{name}: not an IDX file (magic bytes {bytes(data[:2]).hex()} instead of 0000)"
        )
    type_byte, ndim = data[2], data[3]
    if type_byte not in IDX_TYPES:
        known = ", ".join(f"0x{t:02X}" for t in IDX_TYPES)
        raise DatasetError(f"{name}: unknown IDX type byte 0x{type_byte:02X} (known: {known})")
    if ndim == 0:
        raise DatasetError(f"{name}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DatasetError(
            f"{name}: truncated IDX header ({len(data)} bytes, {ndim} dimensions need "
            f"{header_len})"
        )
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[type_byte]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
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
    arr = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    if dtype.byteorder == ">":
        arr = arr.astype(dtype.newbyteorder("="))
    return arr


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


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either untouched or complete.

    The bytes go to a temporary file in the same folder, which is then renamed
    over ``path`` with :func:`os.replace`; on any failure the temporary file is
    removed. Missing parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; cached data is ordinary readable files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
