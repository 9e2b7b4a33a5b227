"""Bring a GPU session's results and trained models back through the device tool's ``$OUT``.

A device command returns at most 8 files from ``$OUT``, each at most 16 MiB and 64 MiB
together, no more than 2 folders down. The CNN session writes more than that (every run's
``model.safetensors``: 8.2 MiB per MNIST / Fashion-MNIST CNN, 25.5 MiB per wide CIFAR-10 VGG),
so its export folder (``benchmarks/gpu-cnn.sh`` fills it) travels as:

* ``results.tar.gz``: every file of the export folder except the models (accuracy JSONs,
  each run's ``config.json``, ``summary.json``, ``metrics.jsonl``, logs, plots);
* ``manifest.json``: each model's place in one byte stream (offset, size, sha256);
* ``models.OFFSET.bin``: consecutive pieces of that stream (each model byte-shuffled and
  zlib-compressed, about 15 % smaller), the sharpened (student) models first, seed by seed,
  then the conventional twins.

The first call (``give 1``) carries ``results.tar.gz``, the manifest and as much of the stream
as fits; each later call on the still-warm machine (``give 2``, ``give 3``, ...) carries the
manifest and the next 64 MiB. On this side ``unpack`` takes the folders the calls brought back
(in any order, any subset) and restores every model whose bytes all arrived, checked against
its sha256.

    python -m benchmarks.gpu_bundle pack runs/gpu/export --into runs/gpu/bundle     (device)
    python -m benchmarks.gpu_bundle give runs/gpu/bundle 1 --out "$OUT"              (device)
    python -m benchmarks.gpu_bundle unpack runs/gpu-return/call1 runs/gpu-return/call2 --into .
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
import tarfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

MiB = 1 << 20
FILE_LIMIT = 16 * MiB
"""Largest file the device tool brings back."""
CALL_LIMIT = 64 * MiB
"""Largest total the device tool brings back from one command."""
FILES_PER_CALL = 8
MARGIN = 256 * 1024
"""Kept free under each limit (file system rounding, a log written beside)."""
PIECE = FILE_LIMIT - MARGIN
MANIFEST = "manifest.json"
RESULTS = "results.tar.gz"
STREAM = "models.stream"
FORMAT = "whetstone-gpu-bundle-1"
CODEC = "shuffle4-zlib1"


def _shuffle(data: bytes) -> bytes:
    """Byte planes of 4-byte words (float32 exponents together), the tail as it is."""
    n = len(data) // 4 * 4
    return np.frombuffer(data[:n], np.uint8).reshape(-1, 4).T.tobytes() + data[n:]


def _unshuffle(data: bytes) -> bytes:
    n = len(data) // 4 * 4
    return np.frombuffer(data[:n], np.uint8).reshape(4, -1).T.tobytes() + data[n:]


def encode(data: bytes) -> bytes:
    return zlib.compress(_shuffle(data), 1)


def decode(data: bytes) -> bytes:
    return _unshuffle(zlib.decompress(data))


def _priority(path: str) -> tuple[int, int, str]:
    """Sharpened (student) models first, seed by seed, then the rest (the twins)."""
    seed = re.search(r"-seed(\d+)", path)
    return ("-sharpened-" not in path, int(seed.group(1)) if seed else 1 << 30, path)


def pack(export: Path, into: Path) -> dict[str, Any]:
    """``into/results.tar.gz`` (all but the models), ``into/models.stream`` (the models, encoded,
    in priority order) and ``into/manifest.json``; returns the manifest."""
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    files = sorted(p for p in export.rglob("*") if p.is_file())
    models = sorted((p for p in files if p.suffix == ".safetensors"),
                    key=lambda p: _priority(p.relative_to(export).as_posix()))
    with tarfile.open(into / RESULTS, "w:gz") as tar:
        for p in files:
            if p.suffix != ".safetensors":
                tar.add(p, arcname=p.relative_to(export).as_posix())
    raw = [p.read_bytes() for p in models]
    with ThreadPoolExecutor(8) as pool:  # zlib releases the GIL
        encoded = list(pool.map(encode, raw))
    entries, offset = [], 0
    with open(into / STREAM, "wb") as f:
        for p, data, blob in zip(models, raw, encoded, strict=True):
            f.write(blob)
            entries.append({"path": p.relative_to(export).as_posix(), "offset": offset,
                            "size": len(blob), "raw_size": len(data),
                            "sha256": hashlib.sha256(data).hexdigest()})
            offset += len(blob)
    manifest = {"format": FORMAT, "codec": CODEC, "stream_bytes": offset, "piece_bytes": PIECE,
                "results_bytes": (into / RESULTS).stat().st_size, "files": entries}
    (into / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def call_ranges(manifest: dict[str, Any], manifest_bytes: int,
                call_limit: int = CALL_LIMIT) -> list[list[tuple[int, int]]]:
    """Per call, the ``(offset, length)`` pieces of the stream it carries: the first call also
    carries the results and the manifest, every later one the manifest."""
    calls: list[list[tuple[int, int]]] = []
    offset, total = 0, manifest["stream_bytes"]
    while offset < total or not calls:
        room = call_limit - MARGIN - manifest_bytes - (manifest["results_bytes"] if not calls
                                                       else 0)
        slots = FILES_PER_CALL - (2 if not calls else 1)
        pieces = []
        while offset < total and slots > 0 and room > 0:
            length = min(manifest["piece_bytes"], room, total - offset)
            pieces.append((offset, length))
            offset, room, slots = offset + length, room - length, slots - 1
        if not pieces and offset < total:
            raise SystemExit("gpu_bundle: the results alone fill a call; nothing else fits")
        calls.append(pieces)
    return calls


def give(bundle: Path, call: int, out: Path, call_limit: int = CALL_LIMIT) -> None:
    """Copy call ``call``'s files (1-based) into ``out``."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    calls = call_ranges(manifest, (bundle / MANIFEST).stat().st_size, call_limit)
    if not 1 <= call <= len(calls):
        raise SystemExit(f"gpu_bundle: call {call} of {len(calls)}: nothing left to give")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bundle / MANIFEST, out / MANIFEST)
    if call == 1:
        shutil.copyfile(bundle / RESULTS, out / RESULTS)
    with open(bundle / STREAM, "rb") as f:
        for offset, length in calls[call - 1]:
            f.seek(offset)
            (out / f"models.{offset:012d}.bin").write_bytes(f.read(length))
    done = sum(length for pieces in calls[:call] for _, length in pieces)
    models = [e for e in manifest["files"] if e["offset"] + e["size"] <= done]
    rest = (f"; for the rest run `benchmarks/gpu-session.sh give {call + 1}` (calls "
            f"{call + 1}-{len(calls)}) while the machine is warm" if call < len(calls) else "")
    print(f"gpu_bundle: call {call} of {len(calls)} in {out}: stream up to {done} of "
          f"{manifest['stream_bytes']} bytes, {len(models)} of {len(manifest['files'])} models "
          f"complete with this and the earlier calls{rest}", flush=True)


def _safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = []
    for m in tar.getmembers():
        parts = Path(m.name).parts
        if not (m.isfile() or m.isdir()) or Path(m.name).is_absolute() or ".." in parts:
            raise SystemExit(f"gpu_bundle: refusing archive member {m.name!r}")
        members.append(m)
    return members


def unpack(folders: list[Path], into: Path) -> dict[str, Any]:
    """Restore into ``into`` the results and every model whose bytes all came back."""
    manifests = [f / MANIFEST for f in folders if (f / MANIFEST).is_file()]
    if not manifests:
        raise SystemExit(f"gpu_bundle: no {MANIFEST} in {[str(f) for f in folders]}")
    manifest = json.loads(manifests[0].read_text())
    if manifest.get("format") != FORMAT:
        raise SystemExit(f"gpu_bundle: {manifests[0]} is not a {FORMAT} manifest")
    results = [f / RESULTS for f in folders if (f / RESULTS).is_file()]
    into.mkdir(parents=True, exist_ok=True)
    if results:
        with tarfile.open(results[0], "r:gz") as tar:
            members = _safe_members(tar)
            if hasattr(tarfile, "data_filter"):  # Python 3.12 (and late 3.10/3.11 releases)
                tar.extractall(into, members=members, filter="data")
            else:  # pragma: no cover
                tar.extractall(into, members=members)  # noqa: S202 - members checked above
    pieces: dict[int, Path] = {}
    for folder in folders:
        for p in folder.glob("models.*.bin"):
            pieces[int(p.name.split(".")[1])] = p

    def read(offset: int, size: int) -> bytes | None:
        buf = io.BytesIO()
        pos = offset
        while pos < offset + size:
            start = max((o for o in pieces if o <= pos), default=None)
            if start is None:
                return None
            data = pieces[start].read_bytes()
            if start + len(data) <= pos:
                return None  # a gap: that call did not come back
            chunk = data[pos - start: offset + size - start]
            buf.write(chunk)
            pos += len(chunk)
        return buf.getvalue()

    restored, missing = [], []
    for entry in manifest["files"]:
        blob = read(entry["offset"], entry["size"])
        if blob is None:
            missing.append(entry["path"])
            continue
        data = decode(blob)
        if len(data) != entry["raw_size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise SystemExit(f"gpu_bundle: {entry['path']} does not match its sha256")
        target = into / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        restored.append(entry["path"])
    return {"results": bool(results), "restored": restored, "missing": missing}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack", help="(device) pack an export folder into a bundle")
    a.add_argument("export", type=Path)
    a.add_argument("--into", type=Path, required=True)
    g = sub.add_parser("give", help="(device) copy call K's share of a bundle into OUT")
    g.add_argument("bundle", type=Path)
    g.add_argument("call", type=int)
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--call-mib", type=float, default=CALL_LIMIT / MiB,
                   help="what one call may bring back (a smaller value tests the splitting)")
    u = sub.add_parser("unpack", help="(here) restore the results and models the calls brought")
    u.add_argument("folders", type=Path, nargs="+")
    u.add_argument("--into", type=Path, default=Path("."))
    args = p.parse_args(argv)
    if args.command == "pack":
        manifest = pack(args.export, args.into)
        raw = sum(e["raw_size"] for e in manifest["files"])
        print(f"gpu_bundle: {len(manifest['files'])} models, {raw / MiB:.1f} MiB as "
              f"{manifest['stream_bytes'] / MiB:.1f} MiB; results "
              f"{manifest['results_bytes'] / MiB:.2f} MiB; in {args.into}", flush=True)
    elif args.command == "give":
        give(args.bundle, args.call, args.out, int(args.call_mib * MiB))
    else:
        report = unpack(args.folders, args.into)
        print(f"gpu_bundle: results {'restored' if report['results'] else 'NOT among these'}; "
              f"{len(report['restored'])} models restored, {len(report['missing'])} missing")
        for path in report["missing"]:
            print(f"  missing (its call did not come back yet): {path}")


if __name__ == "__main__":
    main()
