"""The spiking network of a trained run: exact equality, runtime speed, cost, weight precision.

For a run folder (``whetstone train`` or ``benchmarks.accuracy`` wrote it):

1. Equality: the converted network (numpy runtime) against the sharpened torch model,
   predicted class for every sample of the full test set.
2. Throughput at batch 1 and batch 256: the numpy runtime against the same torch model in
   float32 inference (``torch.no_grad``), interleaved repetitions, median ratio; with the
   synaptic events per second the runtime achieved.
3. Cost: spike density, Gini, synaptic operations, energy estimates (``whetstone.metrics``).
4. Weight precision: accuracy against bits, 2..16 (``whetstone.quantization``), and the
   integer network's (``to_integer``: integer weights, thresholds and uint8 pixels).

    python -m benchmarks.spiking runs/bench/mnist-dense-sharpened-seed0 --label mnist-dense
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from whetstone.conversion import to_spiking
from whetstone.metrics import network_stats, plot_stats
from whetstone.quantization import quantization_sweep
from whetstone.runs import load_run, load_split
from whetstone.runtime import predict

from .common import RESULTS, environment, write_json


def _torch_predict(model: torch.nn.Module, x: torch.Tensor, batch: int) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)]
                         ).numpy()


def throughput(model: torch.nn.Module, net: Any, x: torch.Tensor, batch: int, reps: int,
               samples: int) -> dict[str, Any]:
    """Samples per second of both, interleaved ``reps`` times, on ``samples`` inputs."""
    xs = x[:samples]
    xn = xs.numpy()
    ours, theirs = [], []
    _torch_predict(model, xs[:batch], batch)
    predict(net, xn[:batch], batch_size=batch)
    for _ in range(reps):
        t0 = time.perf_counter()
        _torch_predict(model, xs, batch)
        theirs.append(len(xs) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        predict(net, xn, batch_size=batch)
        ours.append(len(xs) / (time.perf_counter() - t0))
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return {"batch": batch, "samples": len(xs), "runtime_samples_per_s": statistics.median(ours),
            "torch_samples_per_s": statistics.median(theirs),
            "ratios": ratios, "median_ratio": statistics.median(ratios)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--label", required=True)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--batch1-samples", type=int, default=500)
    p.add_argument("--batch256-samples", type=int, default=10_000)
    p.add_argument("--stats-samples", type=int, default=10_000)
    p.add_argument("--quant-samples", type=int, default=10_000)
    p.add_argument("--skip", nargs="*", default=[], choices=["speed", "stats", "quant"])
    p.add_argument("--test-limit", type=int,
                   help="only the first N test images (a smoke check; default: all 10,000)")
    args = p.parse_args(argv)

    run = load_run(args.run)
    model = run.model.eval()
    test = load_split(run.config.dataset, "test", limit=args.test_limit)
    net = to_spiking(model, test.x[:1])  # an example input: graph models are traced
    x, y = test.x, test.y.numpy()
    result: dict[str, Any] = {"study": "spiking", "label": args.label, "run": str(args.run),
                              "dataset": run.config.dataset, "environment": environment()}
    out = RESULTS / f"spiking-{args.label}.json"
    result["model_sha256"] = hashlib.sha256((args.run / "model.safetensors").read_bytes()
                                            ).hexdigest()
    if out.exists():  # keep the sections this invocation skips, when they are of this model
        old = json.loads(out.read_text())
        # (files written before the hash was recorded: the same run folder)
        if old.get("model_sha256", result["model_sha256"]) == result["model_sha256"] and \
                old.get("run") == str(args.run):
            kept = [k for k in ("throughput", "stats", "quantization") if k in old]
            result.update({k: old[k] for k in (*kept, "quant_samples") if k in old})
            # where each kept section was measured (date, command, threads)
            result["measured_by"] = {k: old.get("measured_by", {}).get(k, old["environment"])
                                     for k in kept}

    t0 = time.perf_counter()
    ours = predict(net, x.numpy())
    runtime_seconds = time.perf_counter() - t0
    torch_pred = _torch_predict(model, x, 1000)
    differ = np.flatnonzero(ours != torch_pred)
    # the same model evaluated in float64: the function the converted network computes, free
    # of float32 rounding of pre-activations that land within an ulp of the threshold
    torch64 = _torch_predict(copy.deepcopy(model).double(), x.double(), 1000)
    differ64 = np.flatnonzero(ours != torch64)
    result["equality"] = {"samples": len(y), "differing": int(len(differ)),
                          "differing_indices": differ[:50].tolist(),
                          "differing_float64": int(len(differ64)),
                          "differing_float64_indices": differ64[:50].tolist(),
                          "accuracy_spiking": float((ours == y).mean()),
                          "accuracy_torch": float((torch_pred == y).mean()),
                          "runtime_seconds": runtime_seconds}
    write_json(out, result)
    print(f"{args.label}: {len(differ)} of {len(y)} predictions differ from torch float32, "
          f"{len(differ64)} from torch float64", flush=True)

    if "speed" not in args.skip:
        result["throughput"] = [throughput(model, net, x, 1, args.reps, args.batch1_samples),
                                throughput(model, net, x, 256, args.reps, args.batch256_samples)]
        write_json(out, result)
    if "stats" not in args.skip:
        n = args.stats_samples
        stats = network_stats(net, x[:n].numpy(), y[:n])
        result["stats"] = stats
        plot_stats(stats, RESULTS / f"stats-{args.label}.png", title=f"{args.label} ({n} test)")
        if "throughput" in result:
            for row in result["throughput"]:
                row["synaptic_events_per_s"] = (row["runtime_samples_per_s"]
                                                * stats["total"]["synops"])
        write_json(out, result)
    if "quant" not in args.skip:
        n = args.quant_samples
        result["quantization"] = quantization_sweep(net, x[:n].numpy(), y[:n], bits=range(2, 17),
                                                    integer_input_scale=1 / 255)
        result["quant_samples"] = len(y[:n])
        write_json(out, result)
        _plot_quant(result["quantization"], RESULTS / f"quantization-{args.label}.png",
                    args.label)
    print(f"wrote {out}")


def _plot_quant(rows: list[dict[str, Any]], path: Path, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["bits"] for r in rows], [100 * r["accuracy"] for r in rows], marker="o",
            label="quantized")
    ax.axhline(100 * rows[0]["reference_accuracy"], color="gray", ls="--", label="full precision")
    ax.set_xlabel("weight bits")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{label}: accuracy against weight precision")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
