"""Safe file writing and model weights: temp file then rename, safetensors (no pickle).

Weights files are safetensors written byte for byte deterministically (the same tensors and
metadata always give the same bytes) and carry a content checksum, ``sha256`` in the header
metadata, that :func:`load_weights` verifies:

    sha256( for each tensor, in name order: name, 0x00, dtype, 0x00, shape, 0x00, raw bytes )

with ``dtype`` the safetensors code (``F32``...), ``shape`` the comma-joined sizes and the raw
bytes little-endian, row-major. The checksum identifies a model: derived files record it
(:data:`MODEL_HASH_KEY`) and are rebuilt when the model they came from changed.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from ..files import atomic_write_bytes, atomic_write_text, file_mode

__all__ = [
    "CHECKSUM_KEY", "MODEL_HASH_KEY", "WeightsFileError", "atomic_write_bytes",
    "atomic_write_text", "file_mode", "load_tensors", "load_weights", "save_tensors",
    "save_weights", "serialize_tensors", "state_tensors", "tensors_sha256",
]

CHECKSUM_KEY = "sha256"
"""Header metadata key of a weights file's content checksum (:func:`tensors_sha256`)."""

MODEL_HASH_KEY = "model_sha256"
"""Key under which a derived file (spiking network, statistics) records its model's checksum."""

_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL"}


class WeightsFileError(ValueError):
    """A weights file cannot be used: unreadable, tampered with (checksum mismatch), or not the
    model's tensors. The message names the file and the problem."""


def _raw(tensor: torch.Tensor) -> bytes:
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """Content checksum of named tensors (see the module docstring for the byte stream)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        code = _DTYPES.get(t.dtype)
        if code is None:
            raise TypeError(f"tensor {name!r}: dtype {t.dtype} cannot be saved")
        digest.update(f"{name}\0{code}\0{','.join(map(str, t.shape))}\0".encode())
        digest.update(_raw(t))
    return digest.hexdigest()


def serialize_tensors(tensors: Mapping[str, torch.Tensor],
                      metadata: Mapping[str, str] | None = None) -> bytes:
    """The safetensors bytes of ``tensors`` with ``metadata``, deterministically.

    The header is JSON with sorted keys and no spaces, padded with spaces to a multiple of 8
    bytes; tensors are laid out by decreasing element size, then name (every tensor aligned to
    its element size). Any safetensors reader loads the result.
    """
    if sys.byteorder != "little":  # pragma: no cover - safetensors is little-endian
        raise RuntimeError("writing safetensors needs a little-endian machine")
    order = sorted(tensors, key=lambda n: (-tensors[n].element_size(), n))
    header: dict[str, object] = {}
    chunks: list[bytes] = []
    offset = 0
    for name in order:
        t = tensors[name]
        if t.dtype not in _DTYPES:
            raise TypeError(f"tensor {name!r}: dtype {t.dtype} cannot be saved")
        raw = _raw(t)
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def save_tensors(tensors: Mapping[str, torch.Tensor], path: Path,
                 metadata: Mapping[str, str] | None = None) -> str:
    """Save named tensors as a checksummed safetensors file, atomically; returns the checksum
    (:func:`tensors_sha256`, also stored under :data:`CHECKSUM_KEY`)."""
    checksum = tensors_sha256(tensors)
    meta = {**(metadata or {}), CHECKSUM_KEY: checksum}
    atomic_write_bytes(Path(path), serialize_tensors(tensors, meta))
    return checksum


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and header metadata of a safetensors file, its checksum verified.

    Raises :class:`WeightsFileError` if the file is unreadable or its tensors do not match the
    recorded checksum (a flipped byte). A file without a checksum (written by whetstone before
    0.2) loads with a warning.
    """
    path = Path(path)
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            metadata = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsFileError(f"{path}: not a readable safetensors file ({exc})") from exc
    recorded = metadata.get(CHECKSUM_KEY)
    if recorded is None:
        warnings.warn(f"{path}: no content checksum (written before whetstone 0.2); "
                      "its integrity cannot be verified", stacklevel=2)
    elif tensors_sha256(tensors) != recorded:
        raise WeightsFileError(f"{path}: content checksum mismatch: the tensors changed after "
                               "the file was written (corrupted or edited)")
    return tensors, metadata


def state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` (buffers included: sharpness, key) detached on the CPU."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> str:
    """Save ``model.state_dict()`` as checksummed safetensors, atomically; returns the model's
    checksum (:func:`tensors_sha256`)."""
    return save_tensors(state_tensors(model), Path(path), metadata)


def load_weights(model: nn.Module, path: Path) -> str:
    """Load safetensors weights into ``model``; returns their checksum.

    Any mismatch (unreadable file, checksum, missing or unexpected tensors, shapes, NaN) is a
    :class:`WeightsFileError` naming the file.
    """
    path = Path(path)
    tensors, metadata = load_tensors(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise WeightsFileError(f"{path}: weights do not match the model: missing {missing}, "
                               f"unexpected {unexpected}")
    for name, value in tensors.items():
        if value.shape != expected[name].shape:
            raise WeightsFileError(f"{path}: {name} has shape {tuple(value.shape)}, the model "
                                   f"expects {tuple(expected[name].shape)}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise WeightsFileError(f"{path}: {name} holds NaN or infinite values")
    model.load_state_dict(tensors)
    return metadata.get(CHECKSUM_KEY) or tensors_sha256(tensors)
