"""Study 5 (the paper's activity analysis): spikes per layer before and after sharpening.

For a recipe trained by ``benchmarks.accuracy`` (both variants, same seed), every sharpenable
layer's pre-activation ``u`` (its input) is recorded on the test set:

- *after sharpening*: the sharpened network (every layer at sharpness 1);
- *before sharpening*: the same recipe trained with sharpness 0 throughout (the
  conventional network), whose neurons would spike where ``u >= threshold``.

Per layer: spike density (share of ``u >= threshold``), the Gini coefficient of the
per-neuron firing rates (0: every neuron fires equally often; near 1: a few neurons do all
the firing), the share of pre-activations within ``MARGIN`` of the threshold (where a small
perturbation flips a spike), and the median distance ``|u - threshold|``. A histogram of
``u`` per layer, both networks overlaid, shows how sharpening pushes pre-activations away
from the threshold.

    python -m benchmarks.activity --label mnist-dense --seed 0
    python -m benchmarks.activity --label mnist-cnn-cpu --samples 2000
    python -m benchmarks.activity --label mnist-dense --quick     # trains a tiny pair first
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from whetstone.metrics import gini
from whetstone.nn.activations import Sharpenable
from whetstone.runs import load_run
from whetstone.runs.folder import load_split
from whetstone.sharpening import sharpenable_layers

from .common import RESULTS, environment, write_json

MARGIN = 0.1
"""Half-width of the band around the threshold counted as 'near threshold' (the bounded
ReLU's ramp at sharpness 0 is 1 wide, so this is a tenth of it)."""
HIST_RANGE = (-3.0, 4.0)
HIST_BINS = 140


def pre_activations(model: torch.nn.Module, x: torch.Tensor, batch: int = 500
                    ) -> tuple[list[np.ndarray], list[float]]:
    """The input ``u`` of every sharpenable layer, in forward order, over ``x``.

    Returns per layer a float32 array ``(N, neurons)`` and that layer's firing threshold.
    """
    layers: list[Sharpenable] = sharpenable_layers(model, x[:1])
    chunks: list[list[np.ndarray]] = [[] for _ in layers]
    hooks = [layer.register_forward_pre_hook(
        lambda _m, args, i=i: chunks[i].append(args[0].detach().flatten(1).numpy().copy()))
        for i, layer in enumerate(layers)]
    try:
        model.eval()
        with torch.no_grad():
            for start in range(0, len(x), batch):
                model(x[start:start + batch])
    finally:
        for h in hooks:
            h.remove()
    return [np.concatenate(c) for c in chunks], [float(layer.threshold) for layer in layers]


def layer_activity(u: np.ndarray, threshold: float) -> dict[str, Any]:
    """Density, Gini of firing rates, near-threshold share and histogram of one layer's ``u``."""
    spikes = u >= threshold
    rates = spikes.mean(axis=0)
    dist = np.abs(u - threshold)
    hist, _ = np.histogram(np.clip(u, *HIST_RANGE), bins=HIST_BINS, range=HIST_RANGE)
    return {"neurons": int(u.shape[1]), "density": float(spikes.mean()),
            "gini": gini(rates), "dead_share": float((rates == 0).mean()),
            "near_threshold_share": float((dist < MARGIN).mean()),
            "median_distance": float(np.median(dist)),
            "histogram": hist.tolist()}


def measure(run_dir: Path, samples: int | None) -> dict[str, Any]:
    run = load_run(run_dir)
    test = load_split(run.config.dataset, "test", limit=samples)
    us, thresholds = pre_activations(run.model, test.x)
    return {"run": str(run_dir), "samples": len(test.x),
            "sharpness": [float(layer.sharpness) for layer in
                          sharpenable_layers(run.model, test.x[:1])],
            "layers": [layer_activity(u, t) for u, t in zip(us, thresholds, strict=True)]}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before, after = result["before"]["layers"], result["after"]["layers"]
    n = len(after)
    cols = min(4, n)
    rows = -(-n // cols) + 1
    fig = plt.figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    grid = fig.add_gridspec(rows, 2 * cols)
    edges = np.linspace(*HIST_RANGE, HIST_BINS + 1)
    for i in range(n):
        ax = fig.add_subplot(grid[i // cols, 2 * (i % cols):2 * (i % cols) + 2])
        for name, layers, color in (("before (never sharpened)", before, "tab:gray"),
                                    ("after (sharpened)", after, "tab:blue")):
            h = np.asarray(layers[i]["histogram"], dtype=float)
            ax.stairs(h / max(h.sum(), 1.0), edges, color=color, label=name,
                      fill=name.startswith("before"), alpha=0.5 if name.startswith("b") else 1)
        ax.axvline(result["thresholds"][i], color="red", lw=0.8)
        ax.set_title(f"layer {i + 1} ({after[i]['neurons']} neurons)", fontsize=9)
        ax.set_yticks([])
        if i == 0:
            ax.legend(fontsize=7)
    xs = np.arange(1, n + 1)
    ax = fig.add_subplot(grid[rows - 1, :cols])
    ax.bar(xs - 0.2, [la["density"] for la in before], 0.4, color="tab:gray", label="before")
    ax.bar(xs + 0.2, [la["density"] for la in after], 0.4, color="tab:blue", label="after")
    ax.set_xlabel("layer")
    ax.set_ylabel("spike density")
    ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[rows - 1, cols:])
    ax.bar(xs - 0.2, [la["gini"] for la in before], 0.4, color="tab:gray")
    ax.bar(xs + 0.2, [la["gini"] for la in after], 0.4, color="tab:blue")
    ax.set_xlabel("layer")
    ax.set_ylabel("Gini of firing rates")
    fig.suptitle(f"{result['label']}: pre-activations u (red: threshold), density and Gini")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--label", default="mnist-dense",
                   help="an accuracy benchmark label (runs/bench/LABEL-VARIANT-seedS)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=None, help="test samples (default: all)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs/bench"))
    p.add_argument("--quick", action="store_true",
                   help="train a tiny pair first (accuracy --quick) and measure 1000 samples")
    args = p.parse_args(argv)
    label = args.label
    if args.quick:
        from . import accuracy

        preset = label.removesuffix("-cpu")
        accuracy.main(["--preset", preset, "--quick", "--seeds", str(args.seed),
                       "--runs-dir", str(args.runs_dir)])
        label += "-quick"
        args.samples = 1000
    sharp = args.runs_dir / f"{label}-sharpened-seed{args.seed}"
    conv = args.runs_dir / f"{label}-conventional-seed{args.seed}"
    for d in (sharp, conv):
        if not d.exists():
            p.error(f"{d} does not exist: run `python -m benchmarks.accuracy` for {label} first")
    after = measure(sharp, args.samples)
    before = measure(conv, args.samples)
    run = load_run(sharp)
    thresholds = [float(m.threshold) for m in sharpenable_layers(run.model)]
    result = {"study": "activity", "label": label, "seed": args.seed, "quick": args.quick,
              "margin": MARGIN, "hist_range": HIST_RANGE, "hist_bins": HIST_BINS,
              "thresholds": thresholds, "environment": environment(),
              "before": before, "after": after}
    out = RESULTS / f"activity-{label}.json"
    write_json(out, result)
    plot(result, RESULTS / f"activity-{label}.png")
    for i, (b, a) in enumerate(zip(before["layers"], after["layers"], strict=True)):
        print(f"layer {i + 1}: density {b['density']:.3f} -> {a['density']:.3f}, Gini "
              f"{b['gini']:.3f} -> {a['gini']:.3f}, near threshold "
              f"{b['near_threshold_share']:.3f} -> {a['near_threshold_share']:.3f}")
    print(f"wrote {out}")


def section() -> list[str]:
    """BENCHMARKS.md lines from the full (non-quick) activity results."""
    from .report import _env_line

    results = [r for r in (_read(p) for p in sorted(RESULTS.glob("activity-*.json")))
               if not r.get("quick")]
    if not results:
        return []
    out = ["## Study 5: activity before and after sharpening", "",
           "Pre-activations `u` of every spiking layer on the test set. *Before*: the same "
           "recipe and seed trained with sharpness 0 throughout (its neurons would spike where "
           "`u >= threshold`); *after*: the sharpened network. Near threshold: share of `u` "
           f"within {MARGIN} of the threshold. Dead: neurons that never fire on these samples.",
           ""]
    for r in results:
        out += [f"### {r['label']} (seed {r['seed']}, {r['after']['samples']} test samples)", "",
                "| layer | neurons | density before → after | Gini before → after | "
                "near threshold before → after | median abs(u - thr) before → after | "
                "dead before → after |", "|---|---|---|---|---|---|---|"]
        for i, (b, a) in enumerate(zip(r["before"]["layers"], r["after"]["layers"],
                                       strict=True)):
            out.append(f"| {i + 1} | {a['neurons']} | {b['density']:.3f} → {a['density']:.3f} | "
                       f"{b['gini']:.3f} → {a['gini']:.3f} | {b['near_threshold_share']:.4f} → "
                       f"{a['near_threshold_share']:.4f} | {b['median_distance']:.3f} → "
                       f"{a['median_distance']:.3f} | {b['dead_share']:.3f} → "
                       f"{a['dead_share']:.3f} |")
        out += ["", f"![activity](benchmarks/results/activity-{r['label']}.png)", "",
                f"- {_env_line(r['environment'])}", ""]
    return out


def _read(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text())


if __name__ == "__main__":
    main()
