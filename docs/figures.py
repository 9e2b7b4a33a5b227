"""Draw the documentation's figures (``make docs-figures``; the site uses the PNGs in docs/).

    python docs/figures.py                       # all of them into docs/
    python docs/figures.py --only synops --out /tmp/figs

- ``activations``: the sharpenable activations at several sharpness levels
  (:func:`whetstone.plotting.sharpening.plot_activations`, also the README's figure).
- ``timeline``: the sharpening timeline of a small real run (the ``mnist-dense`` preset on
  the first 10,000 training images, seed 0): per-layer sharpness, loss and validation accuracy
  per epoch (:func:`whetstone.plotting.sharpening.plot_history`); and the per-layer spike
  density and Gini of the finished network (:func:`whetstone.metrics.plot_stats`).
- ``synops``: test accuracy against synaptic operations per inference, read from the
  benchmark results (``benchmarks/results/spiking-*.json``, ``accuracy-*.json``,
  ``peers-conversion-*.json``); no number is typed here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "results"
FIGURES = ("activations", "timeline", "synops")

TIMELINE_PRESET = "mnist-dense"
TIMELINE_LIMITS = {"train_limit": 10_000, "val_limit": 2_000, "test_limit": 2_000}


def activations(out: Path) -> list[Path]:
    from whetstone.plotting.sharpening import plot_activations

    return [plot_activations(out / "activations.png")]


def timeline(out: Path) -> list[Path]:
    """Train the small run in a temporary folder; draw its timeline and its spike statistics."""
    from whetstone.metrics import network_stats, plot_stats
    from whetstone.plotting.sharpening import plot_history
    from whetstone.presets import get_preset
    from whetstone.runs import load_run, load_split, spiking_network, train_run

    config = get_preset(TIMELINE_PRESET).merged({"seed": 0})
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "timeline"
        summary = train_run(config, run_dir, progress=False, plot=False, **TIMELINE_LIMITS)
        history = load_run(run_dir).history
        assert history is not None
        n = TIMELINE_LIMITS["train_limit"]
        paths = [plot_history(history, out / "sharpening-timeline.png",
                              title=f"{TIMELINE_PRESET}, first {n:,} training images, seed 0"
                                    f" (binary test accuracy "
                                    f"{100 * summary['test_accuracy_binary']:.1f} %)")]
        test = load_split(config.dataset, "test", limit=TIMELINE_LIMITS["test_limit"])
        stats = network_stats(spiking_network(run_dir), test.x.numpy(), test.y.numpy())
        paths.append(plot_stats(stats, out / "spike-statistics.png",
                                title=f"{TIMELINE_PRESET} (the run above), "
                                      f"{stats['samples']:,} test images"))
    return paths


def _mean(values: list[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def network_points() -> list[dict[str, Any]]:
    """One entry per benchmarked network with cost statistics (``spiking-LABEL.json``): its
    spiking test accuracy and SynOps on the stats samples, and where ``accuracy-LABEL.json``
    has conventional runs, their mean test accuracy at the network's dense MACs."""
    points = []
    for path in sorted(RESULTS.glob("spiking-*.json")):
        if "quick" in path.name:
            continue
        res = json.loads(path.read_text(encoding="utf-8"))
        stats = res.get("stats")
        if not stats or stats.get("accuracy") is None:
            continue
        acc = _load(f"accuracy-{res['label']}.json")
        conventional = [r["test_accuracy"] for r in (acc or {}).get("runs", [])
                        if r.get("variant") == "conventional"]
        points.append({"label": res["label"], "dataset": res["dataset"],
                       "samples": stats["samples"], "accuracy": stats["accuracy"],
                       "synops": stats["total"]["synops"],
                       "dense_mac": stats["total"]["dense_mac"],
                       "conventional": _mean(conventional) if conventional else None,
                       "conventional_seeds": len(conventional)})
    return points


def synops(out: Path, peers: str = "mnist-dense") -> list[Path]:
    """Accuracy against SynOps: (left) every benchmarked network beside its conventional
    twin's dense MACs; (right) ``peers`` against rate-coded conversion over time steps."""
    from whetstone.plotting.sharpening import _pyplot, save_figure

    plt = _pyplot()
    points = network_points()
    conv = _load(f"peers-conversion-{peers}.json")
    if not points:
        raise SystemExit(f"no spiking-*.json with stats in {RESULTS}")
    fig, axes = plt.subplots(1, 2 if conv else 1, figsize=(13 if conv else 7, 5.2),
                             squeeze=False)
    ax = axes[0, 0]
    colours = {ds: plt.get_cmap("tab10")(i) for i, ds in
               enumerate(sorted({p["dataset"] for p in points}))}
    for p in points:
        c = colours[p["dataset"]]
        ax.plot(p["synops"], 100 * p["accuracy"], "o", ms=8, color=c)
        ax.annotate(p["label"], (p["synops"], 100 * p["accuracy"]), textcoords="offset points",
                    xytext=(6, -3), fontsize=8, color=c)
        if p["conventional"] is not None:
            ax.plot(p["dense_mac"], 100 * p["conventional"], "s", ms=7, mfc="none", color=c)
            ax.plot([p["synops"], p["dense_mac"]],
                    [100 * p["accuracy"], 100 * p["conventional"]], ":", lw=1, color=c)
    ax.plot([], [], "o", color="gray", label="whetstone, binary spikes, 1 step (SynOps)")
    ax.plot([], [], "s", mfc="none", color="gray",
            label="its conventional twin (dense MACs, mean over seeds)")
    for ds, c in colours.items():
        ax.plot([], [], "-", lw=6, color=c, label=ds)
    ax.set_title("benchmarked networks: accuracy against operations per inference", fontsize=10)
    _finish(ax)
    if conv:
        ax = axes[0, 1]
        runs = conv["runs"]
        for mode in conv["conversion"]["modes"]:
            sweeps = [r["conversion"][mode]["sweep"] for r in runs if mode in r["conversion"]]
            if not sweeps:
                continue
            steps = [row["T"] for row in sweeps[0]]
            xs = [_mean([s[i]["synops"] for s in sweeps]) for i in range(len(steps))]
            ys = [100 * _mean([s[i]["accuracy"] for s in sweeps]) for i in range(len(steps))]
            (line,) = ax.plot(xs, ys, "o-", ms=4,
                              label=f"{conv['conversion']['framework']} rate conversion "
                                    f"({mode}), T time steps")
            for t, x, y in zip(steps, xs, ys, strict=True):
                ax.annotate(f"T={t}", (x, y), textcoords="offset points", xytext=(3, -10),
                            fontsize=7, color=line.get_color())
        ours = [r["whetstone"] for r in runs]
        ax.plot(_mean([o["synops"]["synops"] for o in ours]),
                100 * _mean([o["test_accuracy"] for o in ours]), "*", ms=14, color="black",
                label="whetstone, binary, 1 step")
        anns = [r["ann"] for r in runs]
        ax.plot(_mean([a["dense_mac"] for a in anns]),
                100 * _mean([a["test_accuracy"] for a in anns]), "s", ms=8, color="tab:gray",
                label="conventional ReLU network (dense MACs)")
        seeds = sorted(r["seed"] for r in runs)
        ax.set_title(f"{conv['label']}: one step against rate coding (seeds {seeds})",
                     fontsize=10)
        _finish(ax)
    fig.tight_layout()
    return [save_figure(fig, out / "accuracy-synops.png")]


def _finish(ax: Any) -> None:
    ax.set_xscale("log")
    ax.set_xlabel("synaptic operations per inference (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=FIGURES, default=list(FIGURES))
    parser.add_argument("--out", type=Path, default=DOCS, help="folder (default docs/)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        for path in {"activations": activations, "timeline": timeline,
                     "synops": synops}[name](args.out):
            print(path)


if __name__ == "__main__":
    main()
