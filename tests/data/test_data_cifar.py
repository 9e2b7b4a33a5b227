"""CIFAR binary-format reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from whetstone.data import DatasetError, read_cifar_bin


def _records(n: int, label_bytes: int, seed: int = 0) -> tuple[bytes, np.ndarray, np.ndarray]:
    """n records in the official layout; returns (bytes, CHW planes, per-byte labels)."""
    rng = np.random.default_rng(seed)
    planes = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 100, size=(n, label_bytes), dtype=np.uint8)
    recs = np.concatenate([labels, planes.reshape(n, -1)], axis=1)
    return recs.tobytes(), planes, labels


@pytest.mark.parametrize("label_bytes", [1, 2])
def test_reads_official_record_format(tmp_path: Path, label_bytes: int) -> None:
    data, planes, labels = _records(5, label_bytes)
    path = tmp_path / "batch.bin"
    path.write_bytes(data)
    images, y = read_cifar_bin(path, label_bytes=label_bytes)
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8
    assert y.shape == (5,) and y.dtype == np.uint8
    np.testing.assert_array_equal(y, labels[:, -1])  # CIFAR-100: the fine label (2nd byte)
    # HWC: pixel (h, w) channel c is plane c at (h, w).
    np.testing.assert_array_equal(images[2, 7, 11], planes[2, :, 7, 11])
    np.testing.assert_array_equal(images.transpose(0, 3, 1, 2), planes)
    assert images.flags.c_contiguous and images.flags.writeable


@pytest.mark.parametrize("extra", [-1, 1, 3072])
def test_bad_length_names_file(tmp_path: Path, extra: int) -> None:
    data, _, _ = _records(2, 1)
    path = tmp_path / "bad_batch.bin"
    path.write_bytes(data + b"\x00" * extra if extra > 0 else data[:extra])
    with pytest.raises(DatasetError, match="bad_batch.bin"):
        read_cifar_bin(path)


def test_two_label_file_read_with_one_label_byte_fails(tmp_path: Path) -> None:
    data, _, _ = _records(3, 2)
    path = tmp_path / "train.bin"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match="3073-byte"):
        read_cifar_bin(path, label_bytes=1)


def test_empty_and_bad_label_bytes(tmp_path: Path) -> None:
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    with pytest.raises(DatasetError, match="empty.bin"):
        read_cifar_bin(path)
    with pytest.raises(DatasetError, match="label_bytes"):
        read_cifar_bin(path, label_bytes=3)
    with pytest.raises(DatasetError, match="missing.bin"):
        read_cifar_bin(tmp_path / "missing.bin")
