"""Readers for the CIFAR-10 / CIFAR-100 "binary version" files.

Each record is ``label_bytes`` label bytes followed by 3072 pixel bytes: the
32x32 red plane, then green, then blue, each row-major. CIFAR-10 has one label
byte (0-9); CIFAR-100 has two (coarse label 0-19, then fine label 0-99). A file
whose length is not a whole number of records, or with a label out of range, is
not a CIFAR file (random bytes fail the label check with probability
``1 - (10/256)^N`` for N records).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from whetstone.data.errors import DatasetError

__all__ = ["LABEL_RANGES", "PIXEL_BYTES", "parse_cifar_bin", "read_cifar_bin"]

#: Pixel bytes per CIFAR record (3 planes of 32x32).
PIXEL_BYTES = 3 * 32 * 32

#: Number of classes of each label byte, by ``label_bytes``: CIFAR-10 (10), CIFAR-100
#: (20 coarse, then 100 fine).
LABEL_RANGES: dict[int, tuple[int, ...]] = {1: (10,), 2: (20, 100)}


def parse_cifar_bin(
    data: bytes | bytearray, label_bytes: int = 1, name: str = "<bytes>",
    num_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode CIFAR binary records.

    Args:
        data: the concatenated records.
        label_bytes: 1 (CIFAR-10) or 2 (CIFAR-100: coarse then fine; the fine
            label is returned).
        name: how to name the source in error messages.
        num_classes: classes of the returned label (default :data:`LABEL_RANGES`: 10 for
            CIFAR-10, 100 for CIFAR-100's fine label).

    Returns:
        ``(images, labels)``: images ``(N, 32, 32, 3)`` uint8 in HWC order,
        labels ``(N,)`` uint8.

    Raises:
        DatasetError: ``label_bytes`` is not 1 or 2, the length is not a
            positive multiple of the record size, or a label is out of range.
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
    ranges = list(LABEL_RANGES[label_bytes])
    if num_classes is not None:
        ranges[-1] = num_classes
    kinds = ("label",) if label_bytes == 1 else ("coarse label", "fine label")
    title = "CIFAR-10" if label_bytes == 1 else "CIFAR-100"
    for byte, (kind, classes) in enumerate(zip(kinds, ranges, strict=True)):
        column = recs[:, byte]
        bad = np.flatnonzero(column >= classes)
        if bad.size:
            raise DatasetError(
                f"{name}: record {int(bad[0])} has {kind} {int(column[bad[0]])}, out of "
                f"range 0-{classes - 1} ({bad.size} of {len(column)} records): not a "
                f"{title} binary file, or read with the wrong label_bytes"
            )
    labels = recs[:, label_bytes - 1].copy()
    planes = recs[:, label_bytes:].reshape(-1, 3, 32, 32)  # (N, C, H, W)
    images = np.ascontiguousarray(planes.transpose(0, 2, 3, 1))
    return images, labels


def read_cifar_bin(
    path: str | os.PathLike[str], label_bytes: int = 1, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR binary file; see :func:`parse_cifar_bin` for shapes and errors.

    Raises:
        DatasetError: the file cannot be read or is not a CIFAR binary file; the message
            names the file and the problem.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read CIFAR file ({exc})") from exc
    return parse_cifar_bin(data, label_bytes, str(path), num_classes)
