"""Accuracy of a preset, fully binary, beside the same network never sharpened.

For each seed: train the recipe with sharpening (every layer ends at sharpness 1), and the
same network, seed and epochs with the schedule off (sharpness 0 throughout, the conventional
twin). Both train on the ``train`` split and are validated on ``val`` (the last 5,000 training
images) while training; each finished network is scored once on the full test set, the
conventional one also fully binary (simply thresholded, no sharpening). A recipe whose
``teacher.run`` is ``"twin"`` trains the twin first and distils from it. Results are rewritten
to JSON after every run.

    python -m benchmarks.accuracy --preset mnist-dense --seeds 0 1 2
    python -m benchmarks.accuracy --recipe mnist-cnn-cpu --seeds 0
    python -m benchmarks.accuracy --merge a.json b.json --out accuracy-LABEL.json

``--merge`` joins result files of the same recipe run as separate processes (one per seed, as
``benchmarks/gpu-cnn.sh`` does on one GPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import torch

from whetstone.presets import TrainConfig, get_preset, read_toml, recipes
from whetstone.presets.build import TWIN, conventional_twin
from whetstone.runs import train_run

from .common import RESULTS, environment, write_json


def recipe_config(preset: str | None, recipe: str | Path | None) -> tuple[Any, str]:
    """``preset`` (else the recipe's) with the TOML ``recipe``'s overrides (a shipped recipe's
    name, :mod:`whetstone.presets.recipes`, or a file), and the result label (the recipe's
    name, else the preset's)."""
    if recipe:
        recipe = recipes.resolve(recipe)
    values: dict[str, Any] = read_toml(recipe) if recipe else {}
    name = preset or values.pop("preset")
    values.pop("preset", None)
    label = Path(recipe).stem if recipe else name
    return get_preset(name).merged(values), label


conventional = conventional_twin


def reusable_runs(path: Path, variant: str, config: Any) -> dict[int, dict[str, Any]]:
    """Runs of ``variant`` in an earlier result file whose recipe equals ``config``'s for that
    variant (the sharpened recipe itself, or its never-sharpened form), by seed.

    The never-sharpened network does not depend on the sharpening schedule, so a study that
    changes only the schedule may keep it. Each reused run is marked with the date it ran.
    """
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    form = conventional if variant == "conventional" else (lambda c: c)

    def key(c: Any) -> dict[str, Any]:
        return {k: v for k, v in form(c).to_dict().items() if k != "seed"}

    if key(TrainConfig.from_dict(old["config"])) != key(config):
        return {}
    return {r["seed"]: {**r, "reused_from": r.get("reused_from", old["environment"]["date"])}
            for r in old["runs"] if r["variant"] == variant}


def merge(paths: list[Path]) -> dict[str, Any]:
    """One result from files of the same recipe (same label and configuration, seed aside);
    ``merged_from`` keeps each file's environment (command, date, machine) and its runs."""
    results = [json.loads(Path(path).read_text()) for path in paths]

    def key(result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return result["label"], {k: v for k, v in result["config"].items() if k != "seed"}

    for path, result in zip(paths[1:], results[1:], strict=True):
        if key(result) != key(results[0]):
            raise SystemExit(f"--merge: {path} is not the same recipe as {paths[0]}")
    runs = [run for result in results for run in result["runs"]]
    seen = [(run["seed"], run["variant"]) for run in runs]
    if len(set(seen)) != len(seen):
        raise SystemExit(f"--merge: a seed and variant appears twice in {paths}")
    runs.sort(key=lambda r: (r["seed"], r["variant"] != "sharpened"))
    parts = [{"path": str(path), "environment": result["environment"],
              "runs": [{"seed": run["seed"], "variant": run["variant"]} for run in result["runs"]]}
             for path, result in zip(paths, results, strict=True)]
    return {**results[0], "runs": runs, "merged_from": parts}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset")
    p.add_argument("--recipe", help="a shipped recipe's name (whetstone recipes) or a TOML "
                                    "file (a preset plus overrides)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-baseline", action="store_true", help="skip the never-sharpened network")
    p.add_argument("--quick", action="store_true",
                   help="smoke check: 2 epochs on 2,000 training and 1,000 test images")
    p.add_argument("--quick-size", type=int, nargs=2, default=[2000, 1000],
                   metavar=("TRAIN", "TEST"),
                   help="--quick's training and test (and validation) images")
    p.add_argument("--out", type=Path, help="JSON path (default: results/accuracy-LABEL.json)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs/bench"))
    p.add_argument("--reuse-baseline", action="store_true",
                   help="keep the conventional runs already in the output JSON when their\n"
                        "configuration equals this one's (only the schedule changed)")
    p.add_argument("--only-baseline", action="store_true",
                   help="train only the never-sharpened network; keep the sharpened runs\n"
                        "already in the output JSON (same recipe)")
    p.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                   help="join these result files (same recipe, other seeds) into --out")
    args = p.parse_args(argv)
    if args.merge:
        if not args.out:
            p.error("--merge needs --out")
        write_json(args.out, merge(args.merge))
        return
    if not args.preset and not args.recipe:
        p.error("give --preset or --recipe")

    config, label = recipe_config(args.preset, args.recipe)
    limits: dict[str, int | None] = {"train_limit": None, "test_limit": None}
    if args.quick:
        label += "-quick"
        limits = {"train_limit": args.quick_size[0], "test_limit": args.quick_size[1]}
        config = config.merged({"epochs": 2, "val_every": 1,
                                "schedule": {"name": "simple", "start_epoch": 0, "steps": 1,
                                             "mode": "batch"}})
        if config.model["arch"] != "dense":
            config = config.merged({"schedule": {"name": "scheduled", "start": 0.2,
                                                 "duration": 0.2, "intermission": 0.0}})
    out = args.out or RESULTS / f"accuracy-{label}.json"
    if torch.device(args.device).type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: let cuDNN pick its kernels
    result: dict[str, Any] = {
        "study": "accuracy",
        "label": label,
        "preset": config.name,
        "dataset": config.dataset,
        "config": config.to_dict(),
        "environment": environment(args.device),
        "quick": args.quick,
        "runs": [],
    }
    variants = [("sharpened", config)]
    if not args.no_baseline:
        twin = ("conventional", conventional(config))
        # a recipe that distils from its twin needs the twin trained first
        variants = [twin, *variants] if config.teacher.get("run") == TWIN else [*variants, twin]
    reuse: dict[str, dict[int, dict[str, Any]]] = {}
    if args.reuse_baseline:
        reuse["conventional"] = reusable_runs(out, "conventional", config)
    if args.only_baseline:
        reuse["sharpened"] = reusable_runs(out, "sharpened", config)
        missing = [s for s in args.seeds if s not in reuse["sharpened"]]
        if missing:
            p.error(f"--only-baseline: {out} has no sharpened run of this recipe for seeds "
                    f"{missing}")
    for seed in args.seeds:
        for variant, cfg in variants:
            cfg = cfg.merged({"seed": seed})
            if seed in reuse.get(variant, {}):
                result["runs"].append(reuse[variant][seed])
                write_json(out, result)
                print(f"{label} {variant} seed {seed}: reused from {out}", flush=True)
                continue
            run_dir = args.runs_dir / f"{label}-{variant}-seed{seed}"
            if variant == "sharpened" and cfg.teacher.get("run") == TWIN and not args.no_baseline:
                cfg = cfg.merged({"teacher": {
                    "run": str(args.runs_dir / f"{label}-conventional-seed{seed}")}})
            torch.manual_seed(seed)
            summary = train_run(cfg, run_dir, device=args.device, progress=False, **limits)
            result["runs"].append({"variant": variant, "seed": seed, "run_dir": str(run_dir),
                                   **{k: summary[k] for k in (
                                       "test_accuracy", "test_accuracy_binary", "epochs",
                                       "val_accuracy", "val_accuracy_binary", "val_samples",
                                       "teacher",
                                       "train_seconds", "median_epoch_seconds",
                                       "total_seconds", "final_sharpness", "test_samples",
                                       "train_samples")}})
            write_json(out, result)
            print(f"{label} {variant} seed {seed}: binary {summary['test_accuracy_binary']:.4f}"
                  f" current {summary['test_accuracy']:.4f} ({summary['train_seconds']:.0f} s)",
                  flush=True)


def plot_summary(rows: list[dict[str, Any]], path: Path) -> Path:
    """Study 1 as a figure: per recipe, the fully binary, conventional and thresholded test
    accuracy (mean, bar; each seed, dot) and issue 10's goal (dashed), one panel per dataset.

    ``rows``: dicts with ``label``, ``dataset`` (panel title), ``device``, ``goal`` (fraction
    or ``None``) and the per-seed fractions ``binary``, ``conventional``, ``thresholded``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["dataset"], []).append(row)
    kinds = (("binary", "fully binary (sharpened)", "C0"),
             ("conventional", "conventional (never sharpened)", "C2"),
             ("thresholded", "conventional, thresholded", "C3"))
    widths = [len(members) + 0.6 for members in groups.values()]
    fig, axes = plt.subplots(1, len(groups), figsize=(1.15 * sum(widths) + 1.5, 5), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    labelled: set[str] = set()

    def once(name: str) -> str | None:
        """``name`` the first time (one legend entry per kind), then ``None``."""
        if name in labelled:
            return None
        labelled.add(name)
        return name

    for ax, (dataset, members) in zip(axes[0], groups.items(), strict=True):
        lows = [100.0]
        for i, row in enumerate(members):
            for j, (key, name, color) in enumerate(kinds):
                values = [100 * v for v in row[key]]
                if values:
                    x = i + (j - 1) * 0.27
                    ax.bar(x, statistics.mean(values), 0.25, color=color, label=once(name))
                    ax.plot([x] * len(values), values, "k.", ms=3)
                    lows.append(min(values))
            if row["goal"] is not None:
                ax.plot([i - 0.45, i + 0.45], [100 * row["goal"]] * 2, "k--", lw=1,
                        label=once("goal (issue 10)"))
        ax.set_xticks(range(len(members)),
                      [f"{r['label']}\n({r['device'].split(' ')[0]})" for r in members],
                      rotation=35, ha="right", fontsize=7)
        ax.set_ylim(max(0.0, min(lows) - 3), 100)
        ax.set_title(dataset, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    fig.legend(loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
