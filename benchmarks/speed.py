"""Training speed: an epoch of mnist-dense with sharpening active against plain ReLU.

Both networks have the preset's architecture, batch size and optimizer, and train on full
MNIST. "Sharpening active" means the preset's schedule in per-batch mode is moving the model
sharpness on every batch (layer 0 at 1, layer 1 in between) and the straight-through gradient
is on, i.e. the most expensive state of the activation. Epochs are interleaved (ReLU,
sharpening, ReLU, ...), and the ratio of the per-pair times is reported as a median.

    python -m benchmarks.speed --pairs 7
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from whetstone.data import ArrayLoader
from whetstone.presets import build_model, build_optimizer, get_preset
from whetstone.runs import load_split, seed_everything
from whetstone.sharpening import SimpleSharpener, set_model_sharpness
from whetstone.training import fit

from .common import RESULTS, environment, write_json


def one_epoch(model, optimizer, loader, sharpener) -> tuple[float, float]:  # noqa: ANN001
    """Wall-clock and process CPU seconds of one training epoch."""
    t0, c0 = time.perf_counter(), time.process_time()
    fit(model, loader, 1, optimizer, sharpener=sharpener, progress=False)
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pairs", type=int, default=7)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--quick", action="store_true", help="2 pairs on 10,000 images")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(0)
    config = get_preset("mnist-dense").merged({"surrogate": "straight-through"})
    train = load_split("mnist", "train", limit=10_000 if args.quick else None)
    pairs = 2 if args.quick else args.pairs

    relu = build_model(config, plain=True)
    relu_opt = build_optimizer(config, relu)
    sharp = build_model(config)
    sharp_opt = build_optimizer(config, sharp)
    # Mid-schedule: batch mode moves the sharpness every batch; start at model sharpness 0.4
    # (layer 0 at 1, layer 1 at 0.2), so the steps, binary layer and soft layers all run.
    set_model_sharpness(sharp, 0.4)

    def sharpener() -> SimpleSharpener:
        s = SimpleSharpener(start_epoch=0, steps=1000, mode="batch")
        s.ticks = int(0.4 * 3 * 1000 * len(loader))
        return s

    loader = ArrayLoader(train.x, train.y, config.batch_size, shuffle=True, seed=0)
    one_epoch(relu, relu_opt, loader, None)  # warm-up
    one_epoch(sharp, sharp_opt, loader, sharpener())
    times: dict[str, list[float]] = {"relu": [], "sharpening": []}
    cpu: dict[str, list[float]] = {"relu": [], "sharpening": []}
    for _ in range(pairs):
        for name, call in (("relu", (relu, relu_opt, loader, None)),
                           ("sharpening", (sharp, sharp_opt, loader, sharpener()))):
            wall, proc = one_epoch(*call)
            times[name].append(wall)
            cpu[name].append(proc)
    ratios = [s / r for s, r in zip(times["sharpening"], times["relu"], strict=True)]
    cpu_ratios = [s / r for s, r in zip(cpu["sharpening"], cpu["relu"], strict=True)]
    result: dict[str, Any] = {
        "study": "speed",
        "what": "seconds per training epoch of mnist-dense (60,000 images, batch 128), "
                "sharpening active (per-batch schedule, straight-through) vs plain ReLU",
        "environment": environment(),
        "quick": args.quick,
        "samples": int(train.y.numel()),
        "epoch_seconds": times,
        "epoch_cpu_seconds": cpu,
        "ratios": ratios,
        "cpu_ratios": cpu_ratios,
        "median_cpu_ratio": statistics.median(cpu_ratios),
        "median_ratio": statistics.median(ratios),
        "median_relu_seconds": statistics.median(times["relu"]),
        "median_sharpening_seconds": statistics.median(times["sharpening"]),
    }
    write_json(RESULTS / ("speed-quick.json" if args.quick else "speed.json"), result)
    print(f"median CPU-time ratio sharpening/ReLU: {result['median_cpu_ratio']:.3f}")
    print(f"median ratio sharpening/ReLU: {result['median_ratio']:.3f} "
          f"({result['median_sharpening_seconds']:.2f} s vs {result['median_relu_seconds']:.2f} s)")


if __name__ == "__main__":
    main()
