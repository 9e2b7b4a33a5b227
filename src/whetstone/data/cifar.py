"""Readers for the CIFAR-10 / CIFAR-100 "binary version" files.

Each record is ``label_bytes`` label bytes followed by 3072 pixel bytes: the
32x32 red plane, then green, then blue, each row-major. CIFAR-10 has one label
byte; CIFAR-100 has two (coarse label, then fine label).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from whetstone.data.errors import DatasetError

__all__ = ["PIXEL_BYTES", "parse_cifar_bin", "read_cifar_bin"]

#: Pixel bytes per CIFAR record (3 planes of 32x32).
PIXEL_BYTES = 3 * 32 * 32


def parse_cifar_bin(
    data: bytes | bytearray, label_bytes: int = 1, name: str = "<bytes>"
) -> tuple[np.ndarray, np.ndarray]:
    """Decode CIFAR binary records.

    Args:
        data: the concatenated records.
        label_bytes: 1 (CIFAR-10) or 2 (CIFAR-100: coarse then fine; the fine
            label is returned).
        name: how to name the source in error messages.

    Returns:
        ``(images, labels)``: images ``(N, 32, 32, 3)`` uint8 in HWC order,
        labels ``(N,)`` uint8.

    Raises:
        DatasetError: ``label_bytes`` is not 1 or 2, or the length is not a
            positive multiple of the record size.
    """
    if label_bytes not in (1, 2):
        raise DatasetError(f"{name}: label_bytes must be 1 or 2, not {label_bytes!r}")
    record = label_bytes + PIXEL_BYTES
    if len(data) == 0 or len(data) % record:
        raise DatasetError(
            f"{name}: {len(data)} bytes is not a whole number of {record}-byte CIFAR records "
            f"({label_bytes} label byte(s) + {PIXEL_BYTES} pixels)"
        )
    recs = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    labels = recs[:, label_bytes - 1].copy()
    planes = recs[:, label_bytes:].reshape(-1, 3, 32, 32)  # (N, C, H, W)
    images = np.ascontiguousarray(planes.transpose(0, 2, 3, 1))
    return images, labels


def read_cifar_bin(
    path: str | os.PathLike[str], label_bytes: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR binary file; see :func:`parse_cifar_bin` for shapes and errors."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read CIFAR file ({exc})") from exc
    return parse_cifar_bin(data, label_bytes, str(path))
