"""Seed files and a corpus of malformed files for the parser fuzz tests.

Everything is generated here, into a folder the caller gives (``tmp_path``): no binary
blobs in the repository. :data:`SEEDS` builds one valid file per parser; :data:`CORPUS`
builds the hand-made malformed files (the zip bomb posing as ``spiking.npz``, a member
declaring 8 TB, an IDX header whose dimensions overflow int64, random bytes posing as
CIFAR-10, the NIR file whose one changed byte made h5py loop forever, ...), each with the
parser it targets.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whetstone.data import read_cifar_bin, read_idx
from whetstone.data.idx import idx_bytes
from whetstone.runtime import (
    Affine,
    Conv2d,
    Decode,
    Flatten,
    SpikingNetwork,
    SumPool2d,
    Threshold,
)
from whetstone.runtime.network import _digest

# ----------------------------------------------------------------------------- seeds


def small_network() -> SpikingNetwork:
    """Conv -> spikes -> OR-pool -> spikes -> flatten -> dense -> spikes -> decode, on
    ``(2, 6, 6)`` inputs (symmetric padding, so NIR can hold it too)."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    key = np.zeros((3, 6))
    key[0, :2] = key[1, 2:4] = key[2, 4:] = 1
    return SpikingNetwork([
        Conv2d(rng.normal(size=(3, 2, 3, 3)).astype(f32), rng.normal(size=3).astype(f32),
               padding=(1, 1, 1, 1)),
        Threshold(0.5),
        SumPool2d((2, 2), (2, 2)),
        Threshold(0.5),
        Flatten(),
        Affine(rng.normal(size=(6, 27)).astype(f32), rng.normal(size=6).astype(f32)),
        Threshold(rng.normal(size=6).astype(f32) * 0.1),
        Decode(key),
    ], {"name": "fuzz-seed"})


def network_file(path: Path) -> Path:
    small_network().save(path)
    return path


def idx_file(path: Path) -> Path:
    path.write_bytes(idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)))
    return path


def idx_gz_file(path: Path) -> Path:
    data = idx_bytes(np.arange(3 * 5, dtype=np.int16).reshape(3, 5) - 7)
    path.write_bytes(gzip.compress(data, mtime=0))
    return path


def cifar_file(path: Path) -> Path:
    rng = np.random.default_rng(0)
    recs = rng.integers(0, 256, size=(2, 3073), dtype=np.uint8)
    recs[:, 0] = [3, 9]
    path.write_bytes(recs.tobytes())
    return path


def nir_file(path: Path) -> Path:
    from whetstone.export import to_nir

    to_nir(small_network(), path, input_shape=(2, 6, 6))
    return path


def config_json_file(path: Path) -> Path:
    from whetstone.presets import get_preset

    get_preset("mnist-dense").merged({"epochs": 2}).save(path)
    return path


def config_toml_file(path: Path) -> Path:
    path.write_text('preset = "mnist-dense"\nepochs = 3\nbatch_size = 64\n\n'
                    '[schedule]\nname = "simple"\nstart_epoch = 1\nsteps = 2\n')
    return path


def load_config(path: Path) -> object:
    """The configuration loader as the CLI uses it: a TOML recipe (``preset`` plus settings,
    ``whetstone train --config``) or a run folder's ``config.json``."""
    from whetstone.presets import TrainConfig

    if path.suffix == ".toml":
        return TrainConfig.from_toml(path)
    return TrainConfig.load(path)


@dataclass(frozen=True)
class Parser:
    """A parser under test: the reader, the one error type it may raise, and its seeds."""

    name: str
    read: Callable[[Path], object]
    error: type[Exception]
    seeds: tuple[Callable[[Path], Path], ...]
    suffix: str


def _nir_error() -> type[Exception]:
    from whetstone.export import NIRFileError

    return NIRFileError


def _read_nir(path: Path) -> object:
    from whetstone.export import from_nir

    return from_nir(path, timeout=NIR_TIMEOUT)


NIR_TIMEOUT = 1.5
"""``from_nir``'s time limit in the fuzz tests (a valid seed reads in milliseconds)."""


def parsers() -> dict[str, Parser]:
    """Every fuzzed parser by name (``from_nir`` only when ``nir`` is installed)."""
    from whetstone.data import DatasetError
    from whetstone.runtime import NetworkFileError

    out = {
        "read_idx": Parser("read_idx", read_idx, DatasetError, (idx_file, idx_gz_file), ""),
        "read_cifar_bin": Parser("read_cifar_bin", read_cifar_bin, DatasetError,
                                 (cifar_file,), ".bin"),
        "SpikingNetwork.load": Parser("SpikingNetwork.load", SpikingNetwork.load,
                                      NetworkFileError, (network_file,), ".npz"),
        "config": Parser("config", load_config, ValueError,
                         (config_toml_file, config_json_file), ""),
    }
    try:
        import nir  # noqa: F401
    except ImportError:
        return out
    out["from_nir"] = Parser("from_nir", _read_nir, _nir_error(), (nir_file,), ".nir")
    return out


TIME_BOUND = 2.0
"""Seconds one case may take (from_nir: :data:`NIR_TIME_BOUND`)."""
NIR_TIME_BOUND = NIR_TIMEOUT + 4.5
"""from_nir's read is bounded by :data:`NIR_TIMEOUT`; this adds the restart of its reader
process after a read it had to kill."""


def check_case(parser: Parser, path: Path) -> None:
    """Run ``parser`` on ``path``: it returns, or raises its own error type naming the file,
    within the time bound. Any other exception propagates (the fuzz test fails)."""
    bound = NIR_TIME_BOUND if parser.name == "from_nir" else TIME_BOUND
    start = time.perf_counter()
    try:
        parser.read(path)
    except parser.error as exc:
        if parser.name != "config":  # ValueError is its documented error; see the report
            assert str(path) in str(exc), f"{parser.name}: error does not name the file: {exc}"
    elapsed = time.perf_counter() - start
    assert elapsed < bound, f"{parser.name} took {elapsed:.2f} s on {path}"


# ----------------------------------------------------------------------------- zip writing


@dataclass(frozen=True)
class Member:
    """One zip member as written, sizes as *declared* (they need not be true)."""

    name: str
    data: bytes  # the bytes stored in the archive (compressed, for deflate)
    method: int = zipfile.ZIP_STORED
    declared_size: int | None = None  # uncompressed size in the directory (default len)
    declared_csize: int | None = None  # compressed size in the directory (default len)
    crc: int | None = None  # default: crc32 of data
    flags: int = 0


def zip_bytes(members: list[Member]) -> bytes:
    """A zip archive written by hand, so sizes, methods and flags can lie. Sizes above
    4 GiB get zip64 extra fields in the central directory (where zipfile reads them)."""
    out = io.BytesIO()
    central = []
    for m in members:
        name = m.name.encode()
        size = len(m.data) if m.declared_size is None else m.declared_size
        csize = len(m.data) if m.declared_csize is None else m.declared_csize
        crc = zlib.crc32(m.data) if m.crc is None else m.crc
        offset = out.tell()
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, m.flags, m.method, 0, 0, crc,
                              min(csize, 0xFFFFFFFF), min(size, 0xFFFFFFFF),
                              len(name), 0))
        out.write(name)
        out.write(m.data)
        extra = b""
        usize = size
        if usize >= 0xFFFFFFFF or csize >= 0xFFFFFFFF:
            extra = struct.pack("<2H2Q", 1, 16, usize, csize)
            csize = usize = 0xFFFFFFFF
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 45, 45, m.flags, m.method,
                                   0, 0, crc, csize, usize, len(name), len(extra), 0, 0, 0,
                                   0, offset) + name + extra)
    start = out.tell()
    for entry in central:
        out.write(entry)
    size = out.tell() - start
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), size,
                          start, 0))
    return out.getvalue()


def npy_header(dtype: str, shape: tuple[int, ...]) -> bytes:
    """A ``.npy`` version 1.0 magic and header, padded like numpy's."""
    text = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape!r}, }}"
    pad = 64 - (10 + len(text) + 1) % 64
    text = text + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def signed_members(header: dict, arrays: dict[str, np.ndarray]) -> list[Member]:
    """Members of a network file with ``header`` (re-signed) and ``arrays``, stored."""
    header = {k: v for k, v in header.items() if k != "sha256"}
    header["sha256"] = _digest({k: v for k, v in header.items() if k != "sha256"}, arrays)
    blob = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
    members = [Member("__header__.npy", npy_bytes(blob))]
    members += [Member(f"{k}.npy", npy_bytes(v)) for k, v in arrays.items()]
    return members


def network_parts() -> tuple[dict, dict[str, np.ndarray]]:
    """The header (without ``sha256``) and arrays :meth:`SpikingNetwork.save` writes for
    :func:`small_network`."""
    net = small_network()
    arrays: dict[str, np.ndarray] = {}
    specs = []
    for i, layer in enumerate(net.layers):
        names = {}
        for name, arr in layer.arrays().items():
            names[name] = f"{i}.{name}"
            arrays[f"{i}.{name}"] = np.ascontiguousarray(arr)
        specs.append({"kind": layer.kind, "params": layer.params(), "arrays": names})
    return ({"format": "whetstone-spiking-network", "version": 1, "layers": specs,
             "metadata": net.metadata}, arrays)


def deflate_bomb(prefix: bytes, zeros: int) -> bytes:
    """A raw deflate stream of ``prefix`` then ``zeros`` zero bytes, built in O(output / 1 MiB)
    time: full-flushed 1 MiB blocks of zeros are self-contained, so one is repeated."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    mib = 1 << 20
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(mib)) + c.flush(zlib.Z_FULL_FLUSH)
    rest = c.compress(bytes(zeros % mib)) + c.flush(zlib.Z_FINISH)
    return head + block * (zeros // mib) + rest


# ----------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Case:
    """One malformed file: the parser it targets, how to build it, and a phrase the error
    message must contain (besides the file's path)."""

    parser: str
    build: Callable[[Path], bytes]
    expect: str
    suffix: str = ""


def _zip_bomb(_: Path) -> bytes:
    """A 3 MB archive whose weight member inflates to 3.1 GB: a valid ``.npy`` header for
    775 M float32 then zeros (numpy.load used to inflate it all before any check)."""
    header, arrays = network_parts()
    members = signed_members(header, arrays)
    n = 775_000_000
    prefix = npy_header("<f4", (n,))
    bomb = deflate_bomb(prefix, 4 * n)
    members[1] = Member(members[1].name, bomb, zipfile.ZIP_DEFLATED, len(prefix) + 4 * n,
                        crc=0)
    return zip_bytes(members)


def _member_8tb(deflated: bool) -> Callable[[Path], bytes]:
    def build(_: Path) -> bytes:
        header, arrays = network_parts()
        members = signed_members(header, arrays)
        n = 2 * 10**12
        prefix = npy_header("<f4", (n,))
        if deflated:
            data = zlib.compressobj(9, zlib.DEFLATED, -15)
            body = data.compress(prefix + bytes(1 << 16)) + data.flush()
            members[1] = Member(members[1].name, body, zipfile.ZIP_DEFLATED,
                                len(prefix) + 4 * n, crc=0)
        else:
            members[1] = Member(members[1].name, prefix, declared_size=len(prefix) + 4 * n,
                                declared_csize=len(prefix) + 4 * n)
        return zip_bytes(members)

    return build


def _lying_npy_shape(_: Path) -> bytes:
    header, arrays = network_parts()
    members = signed_members(header, arrays)
    first = arrays["0.weight"]
    members[1] = Member(members[1].name, npy_header("<f4", (10**9,)) + first.tobytes())
    return zip_bytes(members)


def _extra_member(_: Path) -> bytes:
    header, arrays = network_parts()
    return zip_bytes([*signed_members(header, arrays),
                      Member("../../evil.npy", npy_bytes(np.zeros(3)))])


def _duplicate_member(_: Path) -> bytes:
    header, arrays = network_parts()
    members = signed_members(header, arrays)
    return zip_bytes([*members, members[1]])


def _object_member(_: Path) -> bytes:
    header, arrays = network_parts()
    members = signed_members(header, arrays)
    pickled = b"cos\nsystem\n(S'echo pwned'\ntR."
    members[1] = Member(members[1].name, npy_header("|O", (1,)) + pickled)
    return zip_bytes(members)


def _encrypted_member(_: Path) -> bytes:
    header, arrays = network_parts()
    members = signed_members(header, arrays)
    members[1] = Member(members[1].name, members[1].data, flags=0x1)
    return zip_bytes(members)


def _deep_json_header(_: Path) -> bytes:
    blob = np.frombuffer(b"[" * 200_000 + b"]" * 200_000, dtype=np.uint8)
    return zip_bytes([Member("__header__.npy", npy_bytes(blob))])


def _many_members(_: Path) -> bytes:
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0, 0, 0)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, 0, 1)
    end64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 10**9, 10**9, 0, 0)
    return end64 + locator + end


def _resigned(edit: Callable[[dict], None]) -> Callable[[Path], bytes]:
    def build(_: Path) -> bytes:
        header, arrays = network_parts()
        edit(header)
        return zip_bytes(signed_members(header, arrays))

    return build


def _set(layer: int, key: str, value: object) -> Callable[[dict], None]:
    def edit(header: dict) -> None:
        header["layers"][layer]["params"][key] = value

    return edit


def _metadata_list(header: dict) -> None:
    header["metadata"] = [1, 2]


def _idx_overflow(_: Path) -> bytes:
    return bytes([0, 0, 0x0E, 3]) + b"\xff\xff\xff\xff" * 3 + bytes(16)


def _idx_gzip_declares_terabytes(_: Path) -> bytes:
    return gzip.compress(bytes([0, 0, 0x08, 2]) + b"\xff\xff\xff\xff" * 2 + bytes(1 << 16))


def _idx_gzip_bomb_trailing(_: Path) -> bytes:
    """Declares 10 bytes, then inflates to 4 MiB more (read only 64 KiB past the data)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return c.compress(bytes([0, 0, 8, 1, 0, 0, 0, 10]) + bytes(10 + (4 << 20))) + c.flush()


def _cifar_random(_: Path) -> bytes:
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, size=3 * 3073, dtype=np.uint8)
    data[3073] = 200  # the second record's label
    return data.tobytes()


def _nir_hang(tmp: Path) -> bytes:
    """The seed NIR file with one byte changed that makes ``nir.read`` loop forever inside
    the HDF5 library (found by a scan of every offset; HDF5 2.0.0, h5py 3.16): the low byte
    of the size of the first global heap collection (the vlen strings; signature ``GCOL``,
    the 8-byte size follows the signature, version and 3 reserved bytes), 0x00 -> 0xFF, so
    the collection claims 4351 bytes instead of 4096."""
    data = bytearray(nir_file(tmp / "seed-for-hang.nir").read_bytes())
    at = data.find(b"GCOL")
    assert at > 0, "no global heap collection in the seed NIR file"
    data[at + NIR_HANG_OFFSET] = 0xFF
    return bytes(data)


NIR_HANG_OFFSET = 8
"""Where, from the ``GCOL`` signature, :func:`_nir_hang` changes one byte."""
NIR_HANG_HDF5 = "2.0.0"
"""The HDF5 version on which that file hangs ``nir.read`` (others may refuse it instead)."""


def _nir_dataset_bomb(_: Path) -> bytes:
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("version", data="1.0.8")
        node = f.create_group("node")
        node.create_dataset("type", data="NIRGraph")
        node.create_dataset("huge", shape=(10**10,), dtype="f8", chunks=(1 << 16,),
                            compression="gzip")
    return buf.getvalue()


def _nir_deep_groups(_: Path) -> bytes:
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        group = f.create_group("node")
        for i in range(40):
            group = group.create_group(f"g{i}")
    return buf.getvalue()


def _nir_no_node(_: Path) -> bytes:
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("x", data=np.arange(3))
    return buf.getvalue()


def _nir_truncated(tmp: Path) -> bytes:
    data = nir_file(tmp / "seed-for-truncation.nir").read_bytes()
    return data[: len(data) // 2]


def _nir_unsupported_node(tmp: Path) -> bytes:
    import nir

    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([3])}),
               "li": nir.LI(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3)),
               "output": nir.Output(output_type={"output": np.array([3])})},
        edges=[("input", "li"), ("li", "output")])
    path = tmp / "li.nir"
    nir.write(path, graph)
    return path.read_bytes()


CORPUS: dict[str, Case] = {
    "npz-zip-bomb": Case("SpikingNetwork.load", _zip_bomb, "compressed", ".npz"),
    "npz-member-8tb-stored": Case("SpikingNetwork.load", _member_8tb(False),
                                  "more than the file", ".npz"),
    "npz-member-8tb-deflated": Case("SpikingNetwork.load", _member_8tb(True), "compressed",
                                    ".npz"),
    "npz-npy-shape-lies": Case("SpikingNetwork.load", _lying_npy_shape, "declares", ".npz"),
    "npz-extra-member": Case("SpikingNetwork.load", _extra_member, "unexpected", ".npz"),
    "npz-duplicate-member": Case("SpikingNetwork.load", _duplicate_member, "twice", ".npz"),
    "npz-object-dtype": Case("SpikingNetwork.load", _object_member, "float", ".npz"),
    "npz-encrypted": Case("SpikingNetwork.load", _encrypted_member, "encrypted", ".npz"),
    "npz-deep-json": Case("SpikingNetwork.load", _deep_json_header, "corrupted header",
                          ".npz"),
    "npz-billion-members": Case("SpikingNetwork.load", _many_members, "members", ".npz"),
    "npz-groups-zero": Case("SpikingNetwork.load", _resigned(_set(0, "groups", 0)),
                            "layer 0", ".npz"),
    "npz-stride-inf": Case("SpikingNetwork.load", _resigned(_set(0, "stride", 1e309)),
                           "layer 0", ".npz"),
    "npz-unknown-param": Case("SpikingNetwork.load", _resigned(_set(2, "evil", 1)),
                              "layer 2", ".npz"),
    "npz-metadata-list": Case("SpikingNetwork.load", _resigned(_metadata_list), "metadata",
                              ".npz"),
    "idx-dims-overflow-int64": Case("read_idx", _idx_overflow, "truncated IDX data"),
    "idx-gzip-declares-terabytes": Case("read_idx", _idx_gzip_declares_terabytes,
                                        "deflate expands"),
    "idx-gzip-bomb-trailing": Case("read_idx", _idx_gzip_bomb_trailing, "trailing"),
    "cifar-random-bytes": Case("read_cifar_bin", _cifar_random, "out of range", ".bin"),
    "nir-one-byte-hang": Case("from_nir", _nir_hang, "", ".nir"),  # see the test
    "nir-dataset-declares-80gb": Case("from_nir", _nir_dataset_bomb, "more than", ".nir"),
    "nir-deep-groups": Case("from_nir", _nir_deep_groups, "nested deeper", ".nir"),
    "nir-no-node-group": Case("from_nir", _nir_no_node, "node", ".nir"),
    "nir-truncated": Case("from_nir", _nir_truncated, "", ".nir"),
    "nir-unsupported-node": Case("from_nir", _nir_unsupported_node, "not supported", ".nir"),
}
"""The malformed corpus: name -> case (files are built into a temporary folder)."""


def build(name: str, folder: Path) -> Path:
    """Write corpus case ``name`` into ``folder``; returns its path."""
    case = CORPUS[name]
    path = folder / f"{name}{case.suffix}"
    path.write_bytes(case.build(folder))
    return path
