"""A spiking network: an ordered list of primitives plus metadata, saved without pickle.

File format (one ``.npz``, written by :func:`numpy.savez`, read with ``allow_pickle=False``):

- ``__header__``: UTF-8 JSON as a ``uint8`` array::

      {"format": "whetstone-spiking-network", "version": 1,
       "layers": [{"kind": "Affine", "params": {...}, "arrays": {"weight": "0.weight", ...}}],
       "metadata": {...}, "sha256": "<hex>"}

- one array per primitive array field, named ``"{layer index}.{field}"``.

``sha256`` covers the header without it (canonical JSON) and every array's name, dtype,
shape and bytes, so any change to the arrays or the layer list is detected on load. Files
are written to a temporary file in the same folder, then moved into place (``os.replace``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NetworkFileError
from .primitives import PRIMITIVES, Decode, Primitive, Threshold

FORMAT = "whetstone-spiking-network"
VERSION = 1
_HEADER = "__header__"


@dataclass
class SpikingNetwork:
    """Primitives applied in order to a batch ``(N, ...)``; see :func:`whetstone.runtime.run`.

    ``metadata`` is free-form JSON (conversion writes the source, the threshold convention
    and the origin of every primitive).
    """

    layers: list[Primitive]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layers = list(self.layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Primitive) or type(layer) not in PRIMITIVES.values():
                raise TypeError(f"layer {i} is {type(layer).__name__}, not a runtime primitive")

    @property
    def num_classes(self) -> int | None:
        """Number of classes when the network ends with a :class:`Decode`, else ``None``."""
        last = self.layers[-1] if self.layers else None
        return int(last.key.shape[0]) if isinstance(last, Decode) else None

    @property
    def spiking_layers(self) -> int:
        """Number of :class:`Threshold` primitives (entries of ``run(..., record=True)``)."""
        return sum(isinstance(layer, Threshold) for layer in self.layers)

    def __repr__(self) -> str:
        inner = ", ".join(_describe(layer) for layer in self.layers)
        return f"SpikingNetwork([{inner}])"

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
        header = {"format": FORMAT, "version": VERSION, "layers": specs,
                  "metadata": self.metadata}
        try:
            header["sha256"] = _digest(header, arrays)
        except TypeError as exc:
            raise ValueError(f"network metadata must be JSON-serialisable: {exc}") from exc
        blob = json.dumps(header, sort_keys=True).encode("utf-8")
        arrays[_HEADER] = np.frombuffer(blob, dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SpikingNetwork:
        """Read a network written by :meth:`save`.

        Raises:
            NetworkFileError: (a ``ValueError``) when the file is not such a network, is
                truncated or corrupted, fails its checksum, or has an unknown version.
            FileNotFoundError: when ``path`` does not exist.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such spiking network file")

        def fail(problem: str) -> NetworkFileError:
            return NetworkFileError(f"{path}: {problem}")

        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
            raise fail(f"not a readable spiking network file (truncated or corrupted?): "
                       f"{type(exc).__name__}: {exc}") from exc
        if _HEADER not in arrays:
            raise fail(f"no {_HEADER} entry; not a whetstone spiking network file")
        try:
            header = json.loads(arrays.pop(_HEADER).tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise fail(f"corrupted header: {exc}") from exc
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            found = header.get("format") if isinstance(header, dict) else None
            raise fail(f"wrong format {found!r}; expected {FORMAT!r}")
        if header.get("version") != VERSION:
            raise fail(f"unsupported format version {header.get('version')!r}; "
                       f"this whetstone reads version {VERSION}")
        expected = header.pop("sha256", None)
        try:
            actual = _digest(header, arrays)
        except TypeError as exc:
            raise fail(f"corrupted header: {exc}") from exc
        if expected != actual:
            raise fail(f"checksum mismatch (sha256 {actual} != recorded {expected}): "
                       "the file was modified or corrupted")
        layers = []
        try:
            for i, spec in enumerate(header["layers"]):
                kind = spec["kind"]
                if kind not in PRIMITIVES:
                    raise fail(f"layer {i}: unknown primitive {kind!r}")
                parts = {name: arrays[key] for name, key in spec["arrays"].items()}
                layers.append(PRIMITIVES[kind].from_parts(spec["params"], parts))
        except NetworkFileError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise fail(f"invalid layer description: {type(exc).__name__}: {exc}") from exc
        return cls(layers, header.get("metadata", {}))


def _digest(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    """sha256 of the canonical header JSON and every array (name, dtype, shape, bytes)."""
    h = hashlib.sha256()
    h.update(json.dumps(header, sort_keys=True).encode("utf-8"))
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _describe(layer: Primitive) -> str:
    shapes: Iterable[str] = (f"{k}={float(v)}" if v.ndim == 0 else f"{k}={tuple(v.shape)}"
                             for k, v in layer.arrays().items())
    params = (f"{k}={v}" for k, v in layer.params().items())
    return f"{layer.kind}({', '.join([*shapes, *params])})"
