"""IDX reading/writing: round trips and every kind of corrupt file."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from whetstone.data import DatasetError, read_idx, write_idx
from whetstone.data.idx import atomic_write_bytes, idx_bytes, parse_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (2, 1, 3, 2)])
def test_round_trip(tmp_path: Path, dtype: type, suffix: str, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal(shape) * 100).astype(dtype)
    path = tmp_path / f"a-idx{len(shape)}{suffix}"
    write_idx(path, arr)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype).newbyteorder("=")
    assert back.shape == shape
    np.testing.assert_array_equal(back, arr)
    assert back.flags.writeable
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")


def test_known_header_bytes() -> None:
    data = idx_bytes(np.arange(6, dtype=np.int16).reshape(2, 3))
    assert data[:4] == bytes([0, 0, 0x0B, 2])
    assert data[4:12] == bytes([0, 0, 0, 2, 0, 0, 0, 3])
    assert data[12:16] == bytes([0, 0, 0, 1])  # big-endian 0, 1


def test_gzip_detected_by_magic_not_name(tmp_path: Path) -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz_without_suffix = tmp_path / "images-idx2-ubyte"
    gz_without_suffix.write_bytes(gzip.compress(idx_bytes(arr)))
    raw_with_suffix = tmp_path / "images-idx2-ubyte.gz"
    raw_with_suffix.write_bytes(idx_bytes(arr))
    np.testing.assert_array_equal(read_idx(gz_without_suffix), arr)
    np.testing.assert_array_equal(read_idx(raw_with_suffix), arr)


def _good() -> bytes:
    return idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: b"\x01\x00" + _good()[2:], "magic"),
        (lambda: _good()[:2] + b"\x07" + _good()[3:], "type byte"),
        (lambda: _good()[:-1], "truncated"),
        (lambda: _good() + b"\x00\x00", "trailing"),
        (lambda: _good()[:10], "truncated IDX header"),
        (lambda: b"\x00\x00\x08\x00", "0 dimensions"),
        (lambda: b"\x00", "not an IDX file"),
        (lambda: gzip.compress(_good())[:-12], "gzip"),
        (lambda: b"\x1f\x8b" + b"garbage" * 5, "gzip"),
    ],
    ids=["magic", "type", "short-data", "trailing", "short-header", "ndim0", "tiny",
         "truncated-gzip", "garbage-gzip"],
)
def test_corrupt_files_raise_naming_the_file(tmp_path: Path, make, problem: str) -> None:
    path = tmp_path / "corrupt-file-idx3-ubyte"
    path.write_bytes(make())
    with pytest.raises(DatasetError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert problem in str(info.value)


def test_missing_file_raises_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="nope"):
        read_idx(tmp_path / "nope")


def test_parse_idx_big_endian_values() -> None:
    data = bytes([0, 0, 0x0C, 1, 0, 0, 0, 2]) + (1).to_bytes(4, "big") + (-2).to_bytes(
        4, "big", signed=True
    )
    np.testing.assert_array_equal(parse_idx(data), np.array([1, -2], dtype=np.int32))


def test_unsupported_dtype_rejected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="uint16"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.uint16))
    with pytest.raises(DatasetError, match="dimensions"):
        write_idx(tmp_path / "x", np.array(3, dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "sub" / "file"
    atomic_write_bytes(target, b"old")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_idx(target, np.zeros(4, dtype=np.uint8))
    assert sorted(p.name for p in target.parent.iterdir()) == ["file"]
    assert target.read_bytes() == b"old"


BEYOND = "deflate expands at most 1032-fold"


@pytest.mark.parametrize(
    ("header", "raw_problem", "gz_problem"),
    [
        (bytes([0, 0, 0x0E, 3]) + b"\xff\xff\xff\xff" * 3, "truncated IDX data", BEYOND),
        (bytes([0, 0, 0x08, 8]) + b"\x00\x01\x00\x00" * 8, "truncated IDX data", BEYOND),
        (bytes([0, 0, 0x08, 2]) + b"\x00\x00\x00\x03" * 2, "truncated IDX data",
         "truncated IDX data"),
    ],
    ids=["product-overflows-int64", "product-2^128", "plain-short"],
)
@pytest.mark.parametrize("gz", [False, True])
def test_declared_size_beyond_the_file(tmp_path: Path, header: bytes, raw_problem: str,
                                       gz_problem: str, gz: bool) -> None:
    data = header + bytes(4)
    path = tmp_path / "huge-idx"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DatasetError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert (gz_problem if gz else raw_problem) in str(info.value)


def test_gzip_bomb_reads_only_what_the_header_declares(tmp_path: Path) -> None:
    """A small header followed by megabytes of zeros: refused after reading 64 KiB more."""
    import tracemalloc

    path = tmp_path / "bomb-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 4]) + bytes(4 + (32 << 20))))
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="trailing bytes"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_gzip_of_every_dtype_round_trips_incrementally(tmp_path: Path) -> None:
    arr = np.arange(5 * 7, dtype=np.float64).reshape(5, 7) / 3
    path = tmp_path / "f8-idx2.gz"
    write_idx(path, arr)
    back = read_idx(path)
    np.testing.assert_array_equal(back, arr)
    assert back.flags.writeable and back.dtype == np.float64
