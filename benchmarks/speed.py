"""Training speed: an epoch of mnist-dense with sharpening active against plain ReLU.

Both networks have the preset's architecture, batch size and optimizer, and train on full
MNIST. "Sharpening active" means the preset's schedule in per-batch mode is moving the model
sharpness on every batch (layer 0 at 1, layer 1 in between) and the straight-through gradient
is on, i.e. the most expensive state of the activation. One invocation measures every torch
thread count of ``--threads`` (default 1 and 2), one after the other; within a thread count
the epochs are interleaved in pairs whose order alternates (ReLU then sharpening, sharpening
then ReLU, ...) so that a drifting machine load cancels, and the ratio of the per-pair times
is reported as a median.

    python -m benchmarks.speed --pairs 7                # threads 1 and 2
    python -m benchmarks.speed --pairs 7 --threads 2    # one setting only
    python -m benchmarks.speed --pairs 7 --processes 3  # 3 fresh processes, pairs pooled

The allocator is pinned by default (``--malloc pinned``): glibc's ``malloc`` otherwise
serves blocks from 128 KiB up (one 128 x 256 float32 activation is exactly that) with fresh
``mmap``s and gives freed memory back to the system, adapting both thresholds to the
process's history, so that the same training step costs from 0 to several hundred page
faults (a millisecond of kernel time per batch on 2 cores) depending on what ran before in
the process. That makes the ReLU / sharpening ratio a lottery of +-10 % or more. Pinned, the
mmap threshold is 32 MiB and the trim threshold 512 MiB (``mallopt``), so a steady epoch
takes no page faults in either network and the ratio measures the computation;
``--malloc default`` keeps the system's behaviour. Every epoch's minor page faults are
recorded either way.

``results/speed.json`` holds the shared description at the top level (``malloc`` says how
the allocator ran) and one entry per thread count under ``"settings"``, each with
``torch_threads``, ``epoch_seconds``, ``epoch_cpu_seconds`` and ``epoch_page_faults``
(``{"relu": [...], "sharpening": [...]}``), the per-pair ``ratios`` and ``cpu_ratios``,
``median_ratio``, ``median_cpu_ratio``, ``median_relu_seconds`` and
``median_sharpening_seconds``.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from whetstone.data import ArrayLoader
from whetstone.presets import build_model, build_optimizer, get_preset
from whetstone.runs import load_split, seed_everything
from whetstone.sharpening import SimpleSharpener, set_model_sharpness
from whetstone.training import fit

from .common import RESULTS, environment, write_json

MMAP_THRESHOLD = 32 << 20
"""Allocations below this come from the heap when the allocator is pinned (glibc's maximum)."""
TRIM_THRESHOLD = 512 << 20
"""Free memory at the top of the heap kept by the process when the allocator is pinned."""


def pin_malloc() -> str:
    """Fix glibc's mmap and trim thresholds (see the module docstring); says what was done."""
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name) if libc_name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return "default (no mallopt in this C library)"
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    if libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD) != 1 or \
            libc.mallopt(m_trim_threshold, TRIM_THRESHOLD) != 1:
        return "default (mallopt refused)"
    return f"pinned: mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim threshold " \
           f"{TRIM_THRESHOLD >> 20} MiB"


def _page_faults() -> int:
    """Minor page faults of this process so far (0 where ``resource`` is missing)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux or macOS
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def one_epoch(model, optimizer, loader, sharpener) -> tuple[float, float]:  # noqa: ANN001
    """Wall-clock and process CPU seconds of one training epoch."""
    wall, proc, _ = timed_epoch(model, optimizer, loader, sharpener)
    return wall, proc


def timed_epoch(model, optimizer, loader, sharpener) -> tuple[float, float, int]:  # noqa: ANN001
    """Wall-clock seconds, process CPU seconds and minor page faults of one training epoch."""
    f0, t0, c0 = _page_faults(), time.perf_counter(), time.process_time()
    fit(model, loader, 1, optimizer, sharpener=sharpener, progress=False)
    return time.perf_counter() - t0, time.process_time() - c0, _page_faults() - f0


def measure(config: Any, train: Any, pairs: int, threads: int) -> dict[str, Any]:
    """Interleaved ReLU / sharpening epochs with ``threads`` torch threads (0: torch's
    default), fresh models from the same seed; per-epoch times, per-pair ratios, medians."""
    default_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        seed_everything(0)
        relu = build_model(config, plain=True)
        relu_opt = build_optimizer(config, relu)
        sharp = build_model(config)
        sharp_opt = build_optimizer(config, sharp)
        # Mid-schedule: batch mode moves the sharpness every batch; start at model sharpness
        # 0.4 (layer 0 at 1, layer 1 at 0.2), so the steps, binary layer and soft layers all run.
        set_model_sharpness(sharp, 0.4)
        loader = ArrayLoader(train.x, train.y, config.batch_size, shuffle=True, seed=0)

        def sharpener() -> SimpleSharpener:
            s = SimpleSharpener(start_epoch=0, steps=1000, mode="batch")
            s.ticks = int(0.4 * 3 * 1000 * len(loader))
            return s

        entries = {"relu": lambda: (relu, relu_opt, loader, None),
                   "sharpening": lambda: (sharp, sharp_opt, loader, sharpener())}
        for make in entries.values():  # warm-up
            one_epoch(*make())
        times: dict[str, list[float]] = {"relu": [], "sharpening": []}
        cpu: dict[str, list[float]] = {"relu": [], "sharpening": []}
        faults: dict[str, list[int]] = {"relu": [], "sharpening": []}
        for i in range(pairs):
            for name in (("relu", "sharpening") if i % 2 == 0 else ("sharpening", "relu")):
                wall, proc, flt = timed_epoch(*entries[name]())
                times[name].append(wall)
                cpu[name].append(proc)
                faults[name].append(flt)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(default_threads)
    ratios = [s / r for s, r in zip(times["sharpening"], times["relu"], strict=True)]
    cpu_ratios = [s / r for s, r in zip(cpu["sharpening"], cpu["relu"], strict=True)]
    return {
        "torch_threads": used,
        "epoch_seconds": times,
        "epoch_cpu_seconds": cpu,
        "epoch_page_faults": faults,
        "ratios": ratios,
        "cpu_ratios": cpu_ratios,
        "median_ratio": statistics.median(ratios),
        "median_cpu_ratio": statistics.median(cpu_ratios),
        "median_relu_seconds": statistics.median(times["relu"]),
        "median_sharpening_seconds": statistics.median(times["sharpening"]),
    }


def pooled(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One thread count's :func:`measure` results from several processes, pooled: the lists
    concatenated, the medians over every pair, and each process's own median ratio."""
    out: dict[str, Any] = {"torch_threads": parts[0]["torch_threads"]}
    for key in ("epoch_seconds", "epoch_cpu_seconds", "epoch_page_faults"):
        out[key] = {name: [v for p in parts for v in p[key][name]] for name in parts[0][key]}
    for key in ("ratios", "cpu_ratios"):
        out[key] = [v for p in parts for v in p[key]]
    out["process_median_ratios"] = [p["median_ratio"] for p in parts]
    out["median_ratio"] = statistics.median(out["ratios"])
    out["median_cpu_ratio"] = statistics.median(out["cpu_ratios"])
    out["median_relu_seconds"] = statistics.median(out["epoch_seconds"]["relu"])
    out["median_sharpening_seconds"] = statistics.median(out["epoch_seconds"]["sharpening"])
    return out


def in_fresh_process(pairs: int, threads: int, quick: bool, malloc: str) -> dict[str, Any]:
    """:func:`measure` run by a new Python process (its own memory layout); its setting."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speed.json"
        cmd = [sys.executable, "-m", "benchmarks.speed", "--pairs", str(pairs), "--threads",
               str(threads), "--malloc", malloc, "--processes", "1", "--out", str(out)]
        subprocess.run(cmd + (["--quick"] if quick else []), check=True)
        return json.loads(out.read_text())["settings"][0]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pairs", type=int, default=7)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="torch thread counts, measured in turn (0: torch's default)")
    p.add_argument("--processes", type=int, default=1,
                   help="measure each thread count in this many fresh processes and pool the "
                        "pairs (each process has its own memory layout, which can shift the "
                        "ratio by several per cent)")
    p.add_argument("--quick", action="store_true", help="2 pairs on 10,000 images")
    p.add_argument("--malloc", choices=("pinned", "default"), default="pinned",
                   help="pin glibc's allocator thresholds (default) or leave them adaptive")
    p.add_argument("--out", type=Path, default=None,
                   help="write the JSON here (default: results/speed.json, or speed-quick.json)")
    args = p.parse_args(argv)
    if args.pairs < 1 or args.processes < 1 or any(t < 0 for t in args.threads):
        p.error("need --pairs >= 1, --processes >= 1 and --threads >= 0")
    malloc = pin_malloc() if args.malloc == "pinned" else "default"
    config = get_preset("mnist-dense").merged({"surrogate": "straight-through"})
    train = load_split("mnist", "train", limit=10_000 if args.quick else None)
    pairs = 2 if args.quick else args.pairs
    env = environment()
    settings = []
    for threads in args.threads:
        if args.processes == 1:
            settings.append(measure(config, train, pairs, threads))
        else:
            settings.append(pooled([in_fresh_process(pairs, threads, args.quick, args.malloc)
                                    for _ in range(args.processes)]))
        s = settings[-1]
        print(f"{s['torch_threads']} torch thread(s): median ratio sharpening/ReLU "
              f"{s['median_ratio']:.3f} ({s['median_sharpening_seconds']:.2f} s vs "
              f"{s['median_relu_seconds']:.2f} s), CPU-time ratio {s['median_cpu_ratio']:.3f}; "
              f"page faults per epoch {statistics.median(s['epoch_page_faults']['relu']):.0f} "
              f"vs {statistics.median(s['epoch_page_faults']['sharpening']):.0f}", flush=True)
    result: dict[str, Any] = {
        "study": "speed",
        "what": f"seconds per training epoch of mnist-dense ({int(train.y.numel()):,} images, "
                f"batch {config.batch_size}), sharpening active (per-batch schedule, "
                "straight-through) vs plain ReLU",
        "environment": env,
        "quick": args.quick,
        "samples": int(train.y.numel()),
        "pairs": pairs,
        "processes": args.processes,
        "malloc": malloc,
        "settings": settings,
    }
    write_json(args.out or RESULTS / ("speed-quick.json" if args.quick else "speed.json"), result)


if __name__ == "__main__":
    main()
