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
    labels = rng.integers(0, 10 if label_bytes == 1 else 20, size=(n, label_bytes),
                          dtype=np.uint8)
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


@pytest.mark.parametrize(("label_bytes", "byte", "value", "kind"),
                         [(1, 0, 10, "label 10"), (2, 0, 20, "coarse label 20"),
                          (2, 1, 100, "fine label 100")])
def test_label_out_of_range_names_file(tmp_path: Path, label_bytes: int, byte: int,
                                       value: int, kind: str) -> None:
    data, _, _ = _records(3, label_bytes)
    recs = bytearray(data)
    recs[(3072 + label_bytes) * 2 + byte] = value  # the third record
    path = tmp_path / "labels.bin"
    path.write_bytes(bytes(recs))
    with pytest.raises(DatasetError, match=f"record 2 has {kind}, out of range") as info:
        read_cifar_bin(path, label_bytes=label_bytes)
    assert str(path) in str(info.value)


def test_num_classes_narrows_the_label_range(tmp_path: Path) -> None:
    data, _, labels = _records(4, 1)
    path = tmp_path / "b.bin"
    path.write_bytes(data)
    top = int(labels.max())
    assert read_cifar_bin(path, num_classes=top + 1)[1].max() == top
    with pytest.raises(DatasetError, match="out of range"):
        read_cifar_bin(path, num_classes=top)


def test_random_bytes_are_not_cifar10(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "random.bin"
    path.write_bytes(rng.integers(0, 256, size=50 * 3073, dtype=np.uint8).tobytes())
    with pytest.raises(DatasetError, match="not a CIFAR-10 binary file"):
        read_cifar_bin(path)
