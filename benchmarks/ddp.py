"""Data-parallel speed-up: one process against ``torchrun`` with N processes, same recipe.

Each round trains the same recipe (mnist-dense, full training split, a few epochs, global batch
unchanged) once as one process with ``--threads-single`` torch threads and once as
``--nproc`` data-parallel processes (``gloo``) with one torch thread each, in alternating
order, and records the training seconds of the run (``summary.json``: the epochs' training
loops, evaluation excluded) and the whole command's wall time. The speed-up is the median
over rounds of single / parallel. Results go to ``results/ddp.json`` after every round.

    python -m benchmarks.ddp --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import RESULTS, environment, write_json


def run_once(parallel: bool, args: argparse.Namespace, out: Path) -> dict[str, float]:
    """Train once; the run's training seconds and the command's wall seconds."""
    train = ["-m", "whetstone", "train", "--preset", args.preset, "--epochs", str(args.epochs),
             "--finetune-epochs", "0", "--out", str(out), "--no-progress", "--no-plot",
             "--seed", "0"]
    if parallel:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(args.nproc), *train]
        threads = "1"
    else:
        cmd = [sys.executable, *train]
        threads = str(args.threads_single)
    env = {**os.environ, "OMP_NUM_THREADS": threads}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    summary = json.loads((out / "summary.json").read_text())
    return {"train_seconds": summary["train_seconds"], "wall_seconds": wall,
            "test_accuracy_binary": summary["test_accuracy_binary"]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="mnist-dense")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--threads-single", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS / "ddp.json")
    args = p.parse_args(argv)
    result: dict[str, Any] = {
        "study": "ddp",
        "what": f"training seconds of {args.preset} ({args.epochs} epochs, full training split, "
                f"same global batch): 1 process with {args.threads_single} torch threads vs "
                f"{args.nproc} data-parallel processes (gloo) with 1 thread each",
        "environment": environment(),
        "preset": args.preset, "epochs": args.epochs, "nproc": args.nproc,
        "threads_single": args.threads_single,
        "rounds": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            order = (False, True) if i % 2 == 0 else (True, False)
            entry: dict[str, Any] = {}
            for parallel in order:
                name = "parallel" if parallel else "single"
                entry[name] = run_once(parallel, args, Path(tmp) / f"{name}-{i}")
            single, parallel = entry["single"], entry["parallel"]
            entry["speedup"] = single["train_seconds"] / parallel["train_seconds"]
            entry["wall_speedup"] = single["wall_seconds"] / parallel["wall_seconds"]
            result["rounds"].append(entry)
            result["median_speedup"] = statistics.median(r["speedup"] for r in result["rounds"])
            result["median_wall_speedup"] = statistics.median(
                r["wall_speedup"] for r in result["rounds"])
            write_json(args.out, result)
            print(f"round {i + 1}: training {entry['single']['train_seconds']:.1f} s (1 process) "
                  f"vs {entry['parallel']['train_seconds']:.1f} s ({args.nproc} processes): "
                  f"speed-up {entry['speedup']:.2f}", flush=True)


if __name__ == "__main__":
    main()
