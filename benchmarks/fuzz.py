"""The long fuzz run: random and mutated files fed to every whetstone file parser.

Parsers (public API): ``whetstone.data.read_idx``, ``whetstone.data.read_cifar_bin``,
``whetstone.runtime.SpikingNetwork.load``, ``whetstone.export.from_nir`` and the training
configuration loader (``TrainConfig.from_toml`` / ``TrainConfig.load``). A case is one file:
a valid seed file (written with the library's own writers) mutated by 1-6 random edits (bit
flips, byte overwrites, insertions, deletions, truncation, repeated or spliced chunks,
zeroed ranges), or random bytes after a seed's first bytes, or plain random bytes; for the
network format also header edits re-signed with a valid sha256 (the format's documented
checksum), so they reach the layer checks.

Outcomes: the parser returns (``ok``), or raises its documented error (``clean``: a
``DatasetError``, ``NetworkFileError``, ``NIRFileError`` naming the file; for the
configuration loader any ``ValueError``), or anything else (``unclean``: another exception, a
documented error that does not name the file, or a case slower than the time bound). A
``from_nir`` read stopped by its time limit counts as a ``hang`` (reported cleanly as
``NIRFileError``); an in-process parser still running after 10 times the bound is stopped by
an alarm and counted as an unclean hang. Cases are deterministic: case ``i`` is generated
from ``random.Random(f"{seed}:{i}")`` (``--replay I`` reruns one and prints the error).

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.fuzz              # 150,000 cases
    python -m benchmarks.fuzz --quick                                   # 2,000 cases
    python -m benchmarks.fuzz --replay 12345

Writes ``benchmarks/results/fuzz.json`` (``fuzz-quick.json`` with ``--quick``) every few
seconds while it runs and at the end.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .common import RESULTS, environment, write_json

TIME_BOUND = 2.0
"""Seconds one case may take (from_nir: its read timeout plus the reader's restart)."""
SHARES = {"read_idx": 0.2, "read_cifar_bin": 0.1, "SpikingNetwork.load": 0.25,
          "config": 0.15, "from_nir": 0.3}
"""Fraction of the cases per parser."""


class _Hang(BaseException):
    """Raised by the alarm when an in-process parser runs far past the time bound."""


# ----------------------------------------------------------------------------- seeds


def _network() -> Any:
    from whetstone.runtime import (
        Affine,
        Conv2d,
        Decode,
        Flatten,
        SpikingNetwork,
        SumPool2d,
        Threshold,
    )

    rng = np.random.default_rng(0)
    f32 = np.float32
    key = np.zeros((3, 6))
    key[0, :2] = key[1, 2:4] = key[2, 4:] = 1
    return SpikingNetwork([
        Conv2d(rng.normal(size=(4, 2, 3, 3)).astype(f32), rng.normal(size=4).astype(f32),
               padding=(1, 1, 1, 1), groups=2),
        Threshold(0.5),
        SumPool2d((2, 2), (2, 2), scale=0.25),
        Threshold(0.25),
        Flatten(),
        Affine(rng.normal(size=(6, 36)).astype(f32), rng.normal(size=6).astype(f32)),
        Threshold(rng.normal(size=6).astype(f32) * 0.1),
        Decode(key),
    ], {"name": "fuzz-seed"})


def _seeds(folder: Path) -> dict[str, list[tuple[bytes, str]]]:
    """Valid files for every parser (bytes, file suffix), written by the library."""
    from whetstone.data import write_idx
    from whetstone.presets import get_preset

    out: dict[str, list[tuple[bytes, str]]] = {}
    rng = np.random.default_rng(1)
    idx = []
    for name, arr in (("a-idx3-ubyte", rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)),
                      ("b-idx1-ubyte.gz", rng.integers(0, 10, 12, dtype=np.uint8)),
                      ("c-idx2.gz", rng.normal(size=(4, 3)).astype(np.float32)),
                      ("d-idx2", rng.integers(-999, 999, (2, 6)).astype(np.int16))):
        write_idx(folder / name, arr)
        idx.append(((folder / name).read_bytes(), ""))
    out["read_idx"] = idx
    recs = rng.integers(0, 256, size=(3, 3073), dtype=np.uint8)
    recs[:, 0] = [1, 9, 4]
    out["read_cifar_bin"] = [(recs.tobytes(), ".bin")]
    net = _network()
    net.save(folder / "net.npz")
    out["SpikingNetwork.load"] = [((folder / "net.npz").read_bytes(), ".npz")]
    toml = ('preset = "mnist-dense"\nepochs = 3\nbatch_size = 64\naugment = "shift"\n\n'
            '[schedule]\nname = "simple"\nstart_epoch = 1\nsteps = 2\n\n'
            '[optimizer]\nname = "adam"\nlr = 0.001\n')
    get_preset("mnist-cnn").merged({"epochs": 2}).save(folder / "config.json")
    out["config"] = [(toml.encode(), ".toml"), ((folder / "config.json").read_bytes(), ".json")]
    try:
        from whetstone.export import to_nir
    except ImportError:  # pragma: no cover - the nir extra is missing
        return out
    nir = []
    for neuron in ("if", "lif", "threshold"):
        to_nir(net, folder / f"net-{neuron}.nir", neuron=neuron, input_shape=(4, 6, 6))
        nir.append(((folder / f"net-{neuron}.nir").read_bytes(), ".nir"))
    out["from_nir"] = nir
    return out


# ----------------------------------------------------------------------------- mutation


def mutate(data: bytes, rng: random.Random, donors: list[bytes]) -> bytes:
    """1-6 random edits (positions biased to the first 4 KiB, where headers live)."""
    buf = bytearray(data)

    def pos(extra: int = 0) -> int:
        n = len(buf) + extra
        if n <= 0:
            return 0
        return rng.randrange(min(n, 4096)) if rng.random() < 0.6 else rng.randrange(n)

    for _ in range(rng.randint(1, 6)):
        kind = rng.choice(("flip", "flip", "set", "insert", "delete", "truncate", "repeat",
                           "splice", "zero", "int"))
        if not buf and kind not in ("insert", "splice"):
            continue
        if kind == "flip":
            buf[pos()] ^= 1 << rng.randrange(8)
        elif kind == "set":
            buf[pos()] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif kind == "insert":
            i = pos(1)
            buf[i:i] = rng.randbytes(rng.choice((1, 2, 4, 8, 64)))
        elif kind == "delete":
            i = pos()
            del buf[i:i + rng.choice((1, 2, 4, 16, 256))]
        elif kind == "truncate":
            del buf[rng.randrange(len(buf) + 1):]
        elif kind == "repeat":
            i = pos()
            buf[i:i] = buf[i:i + rng.choice((1, 8, 64, 512))] * rng.randint(1, 3)
        elif kind == "splice":
            donor = rng.choice(donors)
            j = rng.randrange(len(donor) + 1)
            i = pos(1)
            buf[i:i] = donor[j:j + rng.choice((4, 32, 256))]
        elif kind == "zero":
            i = pos()
            n = rng.choice((4, 8, 64, 1024))
            buf[i:i + n] = bytes(len(buf[i:i + n]))
        elif kind == "int":  # an interesting 32-bit value, either byte order
            i = pos()
            value = rng.choice((0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFF, 0x10000))
            raw = value.to_bytes(4, rng.choice(("little", "big")))
            buf[i:i + 4] = raw[:len(buf[i:i + 4])]
    return bytes(buf)


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.15:
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if depth < 3 and roll < 0.25:
        return {rng.choice(("a", "kernel", "stride", "", "weight")): _json_value(rng, depth + 1)
                for _ in range(rng.randint(0, 3))}
    return rng.choice((None, True, False, 0, 1, -1, 2, 3, 2**31, 2**63, 10**400, 0.5, -0.0,
                       1e308, float("inf"), float("nan"), "", "x", "Affine", "Conv2d",
                       [1, 1], [0, 0, 0, 0], [-1, 2], [2**40, 1]))


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _signed_network(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` with ``header`` signed as the format documents: sha256 of the canonical
    header JSON (without ``sha256``), then per array in name order ``\\0name\\0dtype\\0shape\\0``
    and its bytes."""
    import zipfile

    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(arr.tobytes())
    blob = json.dumps({**header, "sha256": h.hexdigest()}, sort_keys=True).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("__header__.npy", _npy(np.frombuffer(blob, dtype=np.uint8)))
        for name, arr in arrays.items():
            zf.writestr(f"{name}.npy", _npy(arr))
    return out.getvalue()


def _network_parts(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays.pop("__header__").tobytes())
    header.pop("sha256")
    return header, arrays


def _edited_header(parts: tuple[dict[str, Any], dict[str, np.ndarray]],
                   rng: random.Random) -> bytes:
    header = json.loads(json.dumps(parts[0]))
    arrays = dict(parts[1])
    for _ in range(rng.randint(1, 3)):
        layer = rng.choice(header["layers"]) if header["layers"] else {}
        where = rng.choice(("param", "param", "param", "new-param", "kind", "arrays",
                            "params", "metadata", "version", "drop-layer", "array-shape"))
        params = layer.get("params")
        if where == "param" and isinstance(params, dict) and params:
            params[rng.choice(sorted(params))] = _json_value(rng)
        elif where == "new-param" and isinstance(params, dict):
            params[rng.choice(("evil", "weight", "kind", ""))] = _json_value(rng)
        elif where in ("kind", "arrays", "params") and layer:
            layer[where] = _json_value(rng)
        elif where in ("metadata", "version"):
            header[where] = _json_value(rng)
        elif where == "drop-layer" and header["layers"]:
            header["layers"].pop(rng.randrange(len(header["layers"])))
        elif where == "array-shape" and arrays:
            key = rng.choice(sorted(arrays))
            arr = arrays[key]
            arrays[key] = rng.choice((arr.reshape(-1), arr.astype(np.float64),
                                      np.full_like(arr, np.nan), arr[..., :0],
                                      np.zeros((2,) * rng.randint(0, 5), np.float32)))
    return _signed_network(header, arrays)


# ----------------------------------------------------------------------------- parsers


@dataclass
class Parser:
    name: str
    read: Callable[[Path], object]
    error: type[Exception]
    names_file: bool  # must its error message name the file?
    bound: float


def _parsers(nir_timeout: float) -> dict[str, Parser]:
    from whetstone.data import DatasetError, read_cifar_bin, read_idx
    from whetstone.presets import TrainConfig
    from whetstone.runtime import NetworkFileError, SpikingNetwork

    def config(path: Path) -> object:
        return TrainConfig.from_toml(path) if path.suffix == ".toml" else TrainConfig.load(path)

    out = {
        "read_idx": Parser("read_idx", read_idx, DatasetError, True, TIME_BOUND),
        "read_cifar_bin": Parser("read_cifar_bin", read_cifar_bin, DatasetError, True,
                                 TIME_BOUND),
        "SpikingNetwork.load": Parser("SpikingNetwork.load", SpikingNetwork.load,
                                      NetworkFileError, True, TIME_BOUND),
        "config": Parser("config", config, ValueError, False, TIME_BOUND),
    }
    try:
        from whetstone.export import NIRFileError, from_nir
    except ImportError:  # pragma: no cover
        return out
    out["from_nir"] = Parser("from_nir", lambda p: from_nir(p, timeout=nir_timeout),
                             NIRFileError, True, nir_timeout + 5.0)
    return out


# ----------------------------------------------------------------------------- the run


@dataclass
class Tally:
    cases: int = 0
    ok: int = 0
    clean: int = 0
    unclean: int = 0
    hangs: int = 0
    max_seconds: float = 0.0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    unclean_kinds: dict[str, int] = field(default_factory=dict)


class Fuzzer:
    """Generates case ``i`` deterministically and runs it."""

    def __init__(self, seed: int, folder: Path, nir_timeout: float) -> None:
        self.seed = seed
        self.folder = folder
        self.seeds = _seeds(folder)
        self.parsers = _parsers(nir_timeout)
        self.order = [name for name in SHARES if name in self.parsers]
        weights = np.array([SHARES[n] for n in self.order])
        self.cumulative = np.cumsum(weights / weights.sum())
        self.donors = [b for seeds in self.seeds.values() for b, _ in seeds]
        self.network_parts = _network_parts(self.seeds["SpikingNetwork.load"][0][0])
        check = folder / "resigned.npz"
        check.write_bytes(_signed_network(*self.network_parts))
        self.parsers["SpikingNetwork.load"].read(check)  # the documented checksum is right

    def case(self, i: int) -> tuple[Parser, bytes, str, str]:
        """Parser, bytes, file suffix and generator of case ``i``."""
        rng = random.Random(f"{self.seed}:{i}")
        pick = int(np.searchsorted(self.cumulative, rng.random(), side="right"))
        name = self.order[min(pick, len(self.order) - 1)]
        seed, suffix = rng.choice(self.seeds[name])
        roll = rng.random()
        if name == "SpikingNetwork.load" and roll < 0.25:
            return self.parsers[name], _edited_header(self.network_parts, rng), suffix, "header"
        if roll < 0.75:
            data, how = mutate(seed, rng, self.donors), "mutated"
            if name == "read_idx" and rng.random() < 0.2:
                data, how = gzip.compress(data, mtime=0), "mutated-gzipped"
        elif roll < 0.92:
            data = seed[:rng.choice((2, 4, 8, 16, 64, 512))] + rng.randbytes(rng.choice(
                (0, 1, 16, 100, 1000, 5000)))
            how = "magic+random"
        else:
            data, how = rng.randbytes(rng.choice((0, 1, 3, 8, 64, 3073, 4096))), "random"
        return self.parsers[name], data, suffix, how

    def run_one(self, i: int) -> tuple[str, str, float, str]:
        """``(parser, outcome, seconds, detail)``; outcome ok / clean / hang / unclean-*."""
        parser, data, suffix, how = self.case(i)
        path = self.folder / f"case{suffix}"
        path.write_bytes(data)
        in_process = parser.name != "from_nir" and hasattr(signal, "setitimer")
        if in_process:
            signal.setitimer(signal.ITIMER_REAL, 10 * parser.bound)
        start = time.perf_counter()
        outcome, detail = "ok", how
        try:
            parser.read(path)
        except _Hang:
            outcome, detail = "unclean-hang", f"{how}: still running after {10 * parser.bound} s"
        except parser.error as exc:
            text = str(exc)
            if parser.names_file and str(path) not in text:
                outcome, detail = "unclean-unnamed", f"{how}: {type(exc).__name__}: {text[:300]}"
            elif parser.name == "from_nir" and "did not finish within" in text:
                outcome = "hang"
            else:
                outcome, detail = "clean", f"{type(exc).__name__}|{_reason(text, path)}"
        except Exception as exc:  # noqa: BLE001 - what the benchmark counts
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            outcome = "unclean-exception"
            detail = (f"{how}: {type(exc).__name__}: {str(exc)[:300]} "
                      f"({Path(frame.filename).name}:{frame.lineno})")
        finally:
            if in_process:
                signal.setitimer(signal.ITIMER_REAL, 0)
        seconds = time.perf_counter() - start
        if seconds > parser.bound and outcome in ("ok", "clean"):
            outcome, detail = "unclean-slow", f"{how}: {seconds:.2f} s"
        return parser.name, outcome, seconds, detail


def _reason(message: str, path: Path) -> str:
    """The problem a message states, without the path and numbers (for a histogram)."""
    text = message.replace(str(path), "").lstrip(": ")
    text = re.sub(r"0x[0-9a-fA-F]+|\d+|'[^']*'|\([^)]*\)", "_", text)
    return ":".join(text.split(":")[:3])[:90]


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cases", type=int, default=150_000,
                   help="cases to run (default 150,000: about 13 min on one core, half of\n"
                        "it in from_nir reads stopped by their 2 s time limit)")
    p.add_argument("--quick", action="store_true", help="2,000 cases, results in fuzz-quick.json")
    p.add_argument("--seed", type=int, default=0, help="master seed of the case generator")
    p.add_argument("--nir-timeout", type=float, default=2.0,
                   help="from_nir's time limit per read (seconds)")
    p.add_argument("--replay", type=int, default=None, metavar="I",
                   help="run case I only and print its outcome (and traceback)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    cases = 2_000 if args.quick else args.cases
    out = args.out or RESULTS / ("fuzz-quick.json" if args.quick else "fuzz.json")
    if hasattr(signal, "SIGALRM"):  # POSIX: stop an in-process parser that runs away
        signal.signal(signal.SIGALRM, _alarm)
    folder = Path(tempfile.mkdtemp(prefix="whetstone-fuzz-"))
    try:
        fuzzer = Fuzzer(args.seed, folder, args.nir_timeout)
        if args.replay is not None:
            parser, data, _, how = fuzzer.case(args.replay)
            print(f"case {args.replay}: {parser.name}, {how}, {len(data)} bytes")
            print(fuzzer.run_one(args.replay))
            path = folder / "replay"
            path.write_bytes(data)
            try:
                parser.read(path)
            except Exception:  # noqa: BLE001
                traceback.print_exc()
            return
        _run(fuzzer, cases, out, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(fuzzer: Fuzzer, cases: int, out: Path, args: argparse.Namespace) -> None:
    tallies = {name: Tally() for name in fuzzer.order}
    examples: list[dict[str, Any]] = []
    started = time.perf_counter()
    env = environment()
    last_write = 0.0

    def write(done: bool) -> None:
        total = sum(t.cases for t in tallies.values())
        write_json(out, {
            "benchmark": "fuzz",
            "done": done,
            "cases_requested": cases,
            "cases": total,
            "unclean": sum(t.unclean for t in tallies.values()),
            "hangs": sum(t.hangs for t in tallies.values()),
            "seconds": round(time.perf_counter() - started, 1),
            "seed": args.seed,
            "nir_timeout": args.nir_timeout,
            "time_bound": TIME_BOUND,
            "shares": {n: SHARES[n] for n in fuzzer.order},
            "parsers": {n: {**t.__dict__, "max_seconds": round(t.max_seconds, 3),
                            "seconds": round(t.seconds, 1),
                            "reasons": dict(sorted(t.reasons.items(), key=lambda kv: -kv[1])
                                            [:25])}
                        for n, t in tallies.items()},
            "unclean_examples": examples,
            **env,
        })

    for i in range(cases):
        name, outcome, seconds, detail = fuzzer.run_one(i)
        t = tallies[name]
        t.cases += 1
        t.seconds += seconds
        t.max_seconds = max(t.max_seconds, seconds)
        if outcome == "ok":
            t.ok += 1
        elif outcome == "clean":
            t.clean += 1
            kind, reason = detail.split("|", 1)
            t.errors[kind] = t.errors.get(kind, 0) + 1
            t.reasons[reason] = t.reasons.get(reason, 0) + 1
        elif outcome == "hang":
            t.hangs += 1
        else:
            t.unclean += 1
            t.unclean_kinds[outcome] = t.unclean_kinds.get(outcome, 0) + 1
            if outcome == "unclean-hang":
                t.hangs += 1
            if len(examples) < 50:
                examples.append({"case": i, "parser": name, "outcome": outcome,
                                 "detail": detail})
            print(f"case {i} {name}: {outcome}: {detail}", file=sys.stderr, flush=True)
        now = time.perf_counter()
        if now - last_write > 10.0:
            write(False)
            last_write = now
            total_unclean = sum(x.unclean for x in tallies.values())
            print(f"{i + 1}/{cases} cases, {total_unclean} unclean, "
                  f"{sum(x.hangs for x in tallies.values())} hangs, {now - started:.0f} s",
                  flush=True)
    write(True)
    print(json.dumps({n: {"cases": t.cases, "unclean": t.unclean, "hangs": t.hangs}
                      for n, t in tallies.items()}, indent=1))
    print(f"wrote {out}")


def section() -> list[str]:
    """The BENCHMARKS.md section (``benchmarks.report``)."""
    from .report import _env_line, _load

    results = _load("fuzz.json")
    if not results:
        return []
    r = results[0]
    state = "" if r["done"] else f" (partial: {r['cases']:,} of {r['cases_requested']:,})"
    lines = [
        "## Fuzzing the file parsers", "",
        f"{r['cases']:,} random and mutated files{state} fed to `read_idx`, the CIFAR reader, "
        "`SpikingNetwork.load`, `from_nir` and the configuration loader (goal: 0 unclean "
        f"failures in at least 100,000 cases): **{r['unclean']} unclean** (an exception other "
        "than the parser's documented error naming the file, or a case over the time bound "
        f"of {r['time_bound']:.0f} s), {r['hangs']} read{'s' if r['hangs'] != 1 else ''} "
        "stopped by `from_nir`'s "
        f"{r['nir_timeout']:.0f} s time limit (reported as `NIRFileError`), in "
        f"{r['seconds'] / 60:.1f} min.", "",
        "| parser | cases | read | documented error | unclean | hangs | slowest case (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, t in r["parsers"].items():
        lines.append(f"| `{name}` | {t['cases']:,} | {t['ok']:,} | {t['clean']:,} | "
                     f"{t['unclean']} | {t['hangs']} | {t['max_seconds']:.2f} |")
    return [*lines, "", f"- {_env_line(r)}", ""]


if __name__ == "__main__":
    main()
