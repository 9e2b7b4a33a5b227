"""The HDF5 side of :func:`whetstone.export.from_nir`, run as a separate process.

h5py (the HDF5 C library) can loop forever, or crash, on a corrupted file; a thread cannot
stop C code, so :mod:`whetstone.export.nir_graph` runs this script in a child process
(``python _hdf5_worker.py``: only numpy and h5py are imported, never whetstone or torch)
and kills it when one read runs past its time limit.

Protocol, on the child's stdin and stdout (lengths big-endian, no pickle):

- the child first writes ``READY`` (5 bytes) once its imports are done;
- request: 4-byte length, then UTF-8 JSON ``{"path": str, "max_bytes": int,
  "timeout": float}``; where ``signal.alarm`` exists the child also arms an alarm of
  ``timeout + 5`` seconds around the read, whose default action ends the process even
  inside C code, so a child stuck in a read cannot outlive its parent;
- response: 8-byte length, then a payload: 4-byte length, UTF-8 JSON, then the raw bytes
  of every array. The JSON is ``{"error": str}`` or ``{"ok": tree}``, where ``tree`` is the
  ``"node"`` group of the file as ``nir.serialization.hdf2dict`` reads it, encoded as
  ``{"d": {key: tree}}`` (group), ``{"s": str}`` (string), ``{"a": [dtype, shape, offset,
  nbytes], "scalar": bool}`` (numeric array or numpy scalar, bytes at ``offset`` in the raw
  part) or ``{"t": [str, ...], "shape": [...]}`` (array of strings).

Bounds: groups nest at most :data:`MAX_DEPTH` deep, at most :data:`MAX_ITEMS` groups and
datasets in all, and the datasets' declared sizes (``size * itemsize``) together at most
``max_bytes`` (the caller passes ``1032 * file size + 1 MiB``: deflate expands at most
1032-fold, so no honest file declares more). Anything else in the file (links to nowhere,
named datatypes, compound or reference dtypes) is an error.
"""

from __future__ import annotations

import json
import math
import signal
import struct
import sys
from typing import Any, BinaryIO

MAX_DEPTH = 32
MAX_ITEMS = 100_000
READY = b"READY"


class _Limits:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.items = 0

    def add(self, nbytes: int, what: str) -> None:
        self.items += 1
        self.bytes += nbytes
        if self.items > MAX_ITEMS:
            raise ValueError(f"more than {MAX_ITEMS} groups and datasets")
        if self.bytes > self.max_bytes:
            raise ValueError(f"{what}: datasets declare {self.bytes} bytes, more than a file "
                             f"of this size can hold ({self.max_bytes})")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, found {type(value).__name__}")


def _encode(value: Any, chunks: list[bytes], offset: list[int]) -> dict[str, Any]:
    import numpy as np

    if isinstance(value, (bytes, str)):
        return {"s": _text(value)}
    scalar = isinstance(value, np.generic)
    if scalar and value.dtype.kind in "SUO":
        return {"s": _text(value.item())}
    arr = np.asarray(value)
    if arr.dtype.kind in "SUO":
        return {"t": [_text(v) for v in arr.reshape(-1).tolist()], "shape": list(arr.shape)}
    if arr.dtype.kind not in "biufc" or arr.dtype.fields is not None:
        raise ValueError(f"unsupported dataset dtype {arr.dtype}")
    raw = np.ascontiguousarray(arr).tobytes()
    entry = {"a": [arr.dtype.str, list(arr.shape), offset[0], len(raw)], "scalar": scalar}
    chunks.append(raw)
    offset[0] += len(raw)
    return entry


def _walk(group: Any, depth: int, limits: _Limits, chunks: list[bytes],
          offset: list[int]) -> dict[str, Any]:
    import h5py

    if depth > MAX_DEPTH:
        raise ValueError(f"groups nested deeper than {MAX_DEPTH}")
    out: dict[str, Any] = {}
    for key in group.keys():
        item = group.get(key)
        name = f"{group.name}/{key}"
        if isinstance(item, h5py.Group):
            limits.add(0, name)
            out[key] = _walk(item, depth + 1, limits, chunks, offset)
        elif isinstance(item, h5py.Dataset):
            dtype = item.dtype
            if dtype.kind not in "biufcSO" or dtype.fields is not None:
                raise ValueError(f"{name}: unsupported dataset dtype {dtype}")
            size = 1
            for dim in item.shape or ():
                size *= int(dim)
            limits.add(size * max(dtype.itemsize, 1), name)
            out[key] = _encode(item[()], chunks, offset)
        else:
            raise ValueError(f"{name}: neither a group nor a dataset ({type(item).__name__})")
    return {"d": out}


def read_tree(path: str, max_bytes: int) -> tuple[dict[str, Any], list[bytes]]:
    """The ``"node"`` group of the HDF5 file at ``path``, encoded (see the module doc)."""
    import h5py

    chunks: list[bytes] = []
    with h5py.File(path, "r") as f:
        node = f.get("node")
        if not isinstance(node, h5py.Group):
            raise ValueError("no 'node' group: not a NIR file")
        tree = _walk(node, 0, _Limits(max_bytes), chunks, [0])
    return tree, chunks


def _respond(out: BinaryIO, message: dict[str, Any], chunks: list[bytes]) -> None:
    head = json.dumps(message).encode("utf-8")
    body = [struct.pack(">I", len(head)), head, *chunks]
    out.write(struct.pack(">Q", sum(len(b) for b in body)))
    for part in body:
        out.write(part)
    out.flush()


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        more = stream.read(n - len(data))
        if not more:
            return None
        data += more
    return data


def main() -> None:
    """Serve read requests on stdin/stdout until stdin closes."""
    import h5py  # noqa: F401  (imported before READY, so no read pays for it)
    import numpy  # noqa: F401

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(READY)
    stdout.flush()
    while True:
        size = _read_exact(stdin, 4)
        if size is None:
            return
        request = _read_exact(stdin, struct.unpack(">I", size)[0])
        if request is None:
            return
        alarm = getattr(signal, "alarm", None)
        try:
            args = json.loads(request.decode("utf-8"))
            limit = float(args.get("timeout", 60.0))
            if alarm is not None and math.isfinite(limit):
                alarm(min(math.ceil(max(limit, 0.0)) + 5, 2**31 - 1))
            tree, chunks = read_tree(str(args["path"]), int(args["max_bytes"]))
        except Exception as exc:  # every failure goes back to the caller as text
            _respond(stdout, {"error": f"{type(exc).__name__}: {exc}"}, [])
        else:
            _respond(stdout, {"ok": tree}, chunks)
        finally:
            if alarm is not None:
                alarm(0)


if __name__ == "__main__":
    main()
