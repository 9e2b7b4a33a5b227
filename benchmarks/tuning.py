"""Recipe selection on the validation split: candidate recipes side by side, test set untouched.

Each candidate (a TOML recipe: a preset plus overrides) is trained per seed on the ``train``
split and validated on ``val`` (the last 5,000 training images). Only validation figures are
recorded: the fully binary accuracy at the end, the best fully binary accuracy seen at any
epoch, the conventional twin's accuracy and its simply thresholded form (for a recipe that
distils from its twin), and the training time. The test set is not read here; the chosen
recipes are scored on it by ``benchmarks.accuracy``. Results are rewritten to JSON after every
run and a rerun skips (recipe, seed) pairs already measured with the same configuration.

    python -m benchmarks.tuning --label fashion-dense --preset fashion-dense \
        --recipes benchmarks/recipes/tuning/dense-*.toml
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from whetstone.runs import load_run, train_run

from .accuracy import recipe_config
from .common import RESULTS, environment, write_json


def _twin_record(run_dir: Path) -> dict[str, Any] | None:
    """Validation accuracy of the teacher (twin) a student ran with, if any."""
    config = json.loads((run_dir / "config.json").read_text())
    teacher = config.get("teacher", {}).get("run")
    if not teacher:
        return None
    summary = json.loads((Path(teacher) / "summary.json").read_text())
    return {"run_dir": teacher, "val_accuracy": summary["val_accuracy"],
            "val_accuracy_binary": summary["val_accuracy_binary"],
            "train_seconds": summary["train_seconds"]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--label", required=True, help="names the result file tuning-LABEL.json")
    p.add_argument("--recipes", type=Path, nargs="+", required=True)
    p.add_argument("--preset", help="apply the recipes to this preset instead of their own")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--runs-dir", type=Path, default=Path("runs/tuning"))
    p.add_argument("--quick", action="store_true", help="2,000 training / 500 validation images")
    args = p.parse_args(argv)
    label = args.label + ("-quick" if args.quick else "")
    out = RESULTS / f"tuning-{label}.json"
    result: dict[str, Any] = (json.loads(out.read_text()) if out.exists() else
                              {"study": "tuning", "label": label, "quick": args.quick,
                               "split": "val", "invocations": [], "runs": []})
    invocation = environment(args.device)
    mine: dict[tuple[str, int], dict[str, Any]] = {}  # the runs this invocation measured

    def save() -> None:
        """Rewrite the file from its current contents plus this invocation's runs, so that
        invocations running side by side on one label keep each other's results."""
        now = json.loads(out.read_text()) if out.exists() else result
        runs = [r for r in now["runs"] if (r["recipe"], r["seed"]) not in mine]
        invocations = now["invocations"]
        if invocation not in invocations:
            invocations = [*invocations, invocation]
        write_json(out, {**now, "invocations": invocations, "runs": [*runs, *mine.values()]})

    limits = {"train_limit": 2000, "val_limit": 500, "test_limit": 500} if args.quick else {}
    for recipe in args.recipes:
        config, name = recipe_config(args.preset, recipe)
        for seed in args.seeds:
            cfg = config.merged({"seed": seed})
            done = [r for r in result["runs"] if r["recipe"] == name and r["seed"] == seed
                    and r["config"] == cfg.to_dict()]
            if done:
                print(f"{name} seed {seed}: already measured", flush=True)
                continue
            run_dir = args.runs_dir / label / f"{name}-seed{seed}"
            summary = train_run(cfg, run_dir, device=args.device, progress=False, **limits)
            history = load_run(run_dir).history
            mine[(name, seed)] = {
                "recipe": name, "seed": seed, "config": cfg.to_dict(), "run_dir": str(run_dir),
                "date": summary["date"], "metric": summary.get("metric", "accuracy"),
                **{k: summary[k] for k in ("val_accuracy", "val_accuracy_binary",
                                           "best_val_accuracy_binary", "fully_sharp", "epochs",
                                           "train_seconds", "val_samples", "train_samples")},
                "val_binary_per_epoch": [r.val_accuracy_binary for r in history or []],
                "twin": _twin_record(run_dir),
            }
            save()
            print(f"{name} seed {seed}: val binary {summary['val_accuracy_binary']:.4f} "
                  f"(best {summary['best_val_accuracy_binary']:.4f}) "
                  f"{summary['train_seconds']:.0f} s", flush=True)


def section() -> list[str]:
    """BENCHMARKS.md lines: per tuning file, each candidate's validation figures."""
    import statistics

    from .report import _load

    results = _load("tuning-*.json")
    if not results:
        return []
    lines = ["## Recipe selection on the validation split", "",
             "Candidates trained on the `train` split (55,000 images) and compared on `val` (the "
             "last 5,000 training images); the test set is not read. *val, fully binary*: the "
             "finished network; *best epoch*: the best fully binary validation accuracy of any "
             "epoch (not used to pick checkpoints); *twin*: the recipe's never-sharpened network "
             "(the teacher, for recipes that distil), as trained and simply thresholded.", ""]
    for res in results:
        first = res["runs"][0]
        metric = first.get("metric") or {"reconstruction": "psnr", "segmentation": "mean_iou"}.get(
            first["config"].get("task", "classification"), "accuracy")
        decibels = metric.startswith("psnr")
        unit = f"{metric.replace('_', ' ')}, dB" if decibels else (
            "%" if metric == "accuracy" else f"{metric.replace('_', ' ')}, %")
        lines += [f"### {res['label']}", "",
                  f"| recipe | seeds | val, fully binary ({unit}) | best epoch, binary ({unit}) | "
                  f"twin val, conventional / thresholded ({unit}) | training s |",
                  "|---|---|---|---|---|---|"]
        by_recipe: dict[str, list[dict[str, Any]]] = {}
        for run in res["runs"]:
            by_recipe.setdefault(run["recipe"], []).append(run)

        def pct(values: list[float], scale: float = 1.0 if decibels else 100.0) -> str:
            return f"{scale * statistics.mean(values):.2f}"

        for name, runs in by_recipe.items():
            twins = [r["twin"] for r in runs if r["twin"]]
            twin = (f"{pct([t['val_accuracy'] for t in twins])} / "
                    f"{pct([t['val_accuracy_binary'] for t in twins])}" if twins else "-")
            lines.append(
                f"| {name} | {', '.join(str(r['seed']) for r in runs)} | "
                f"{pct([r['val_accuracy_binary'] for r in runs])} | "
                f"{pct([r['best_val_accuracy_binary'] for r in runs])} | {twin} | "
                f"{statistics.median(r['train_seconds'] for r in runs):.0f} |")
        envs = res["invocations"]
        lines += ["", f"Recipes: `benchmarks/recipes/tuning/`. Device {envs[0]['device']} "
                  f"({envs[0]['cpu']}); runs of {min(r['date'] for r in res['runs'])} to "
                  f"{max(r['date'] for r in res['runs'])}. Commands: "
                  + "; ".join(f"`{c}`" for c in sorted({e['command'] for e in envs})), ""]
    return lines


if __name__ == "__main__":
    main()
