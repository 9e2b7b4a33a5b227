"""Output encoding (the paper's Fig. 4): one-hot against N-hot populations.

The preset's network with output populations of 1 (one-hot), 2, 4, 8 and 16 neurons per
class, codes overlapping (each class draws its neurons from the whole population) or disjoint.
For each: the fully binary test accuracy and the share of dead output neurons, output neurons
that never fire on the test set once every layer is at sharpness 1 (also: classes the binary
network never predicts). Everything else is the preset's recipe.

    python -m benchmarks.run encoding --preset mnist-dense --seeds 0 1 2
    python -m benchmarks.run encoding --quick
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import torch

from whetstone.presets import TrainConfig
from whetstone.runs import load_run, load_split
from whetstone.sharpening import sharpenable_layers
from whetstone.sharpening.allocation import fully_sharpened

from .common import RESULTS
from .sweep import (
    QUICK_EPOCHS,
    Sweep,
    base_config,
    by_setting,
    epochs_trained,
    full_results,
    mean_spread,
    parser,
    provenance,
    pyplot,
    recipe_note,
    shorten,
)

STUDY = "encoding"
EVAL_BATCH = 1000


def settings(classes: int, per_class: list[int]) -> list[tuple[str, int, bool]]:
    """``(setting, neurons per class, overlapping)``: one-hot once, then both code kinds."""
    out = [("one-hot", 1, False)]
    for n in per_class:
        out += [(f"overlapping-{n}", n, True), (f"disjoint-{n}", n, False)]
    return out


def output_activity(run_dir: Path, config: TrainConfig, test_limit: int | None) -> dict[str, Any]:
    """Dead output neurons and never-predicted classes of the fully binary network.

    The output population is the last sharpenable layer; a neuron is dead when its spike
    (activation at sharpness 1) is 0 for every test sample.
    """
    run = load_run(run_dir)
    test = load_split(config.dataset, "test", limit=test_limit)
    output = sharpenable_layers(run.model)[-1]
    fired: list[torch.Tensor] = []
    handle = output.register_forward_hook(
        lambda _mod, _inp, out: fired.append((out > 0).any(dim=0)))
    predicted = torch.zeros(int(config.key["classes"]), dtype=torch.bool)
    try:
        with torch.no_grad(), fully_sharpened(run.model):
            for start in range(0, len(test.y), EVAL_BATCH):
                logits = run.model(test.x[start:start + EVAL_BATCH])
                predicted[logits.argmax(dim=1).unique()] = True
    finally:
        handle.remove()
    alive = torch.stack(fired).any(dim=0)
    dead = int((~alive).sum())
    return {"output_width": int(alive.numel()), "dead_outputs": dead,
            "dead_output_share": dead / int(alive.numel()),
            "classes_never_predicted": int((~predicted).sum())}


def plot(result: dict[str, Any], path: Path) -> Path:
    """Binary accuracy and dead-neuron share against neurons per class (mean ± std)."""
    plt = pyplot()
    groups = by_setting(result)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for overlapping, name, marker in ((True, "overlapping", "o"), (False, "disjoint", "s")):
        points = sorted((runs[0]["per_class"], runs) for runs in groups.values()
                        if runs[0]["overlapping"] == overlapping and runs[0]["per_class"] > 1)
        if not points:
            continue
        for ax, key in zip(axes, ("test_accuracy_binary", "dead_output_share"), strict=True):
            means = [100 * statistics.mean([r[key] for r in runs]) for _, runs in points]
            spread = [100 * statistics.pstdev([r[key] for r in runs]) for _, runs in points]
            ax.errorbar([n for n, _ in points], means, yerr=spread, marker=marker, capsize=3,
                        label=f"N-hot, {name} codes")
    if "one-hot" in groups:
        runs = groups["one-hot"]
        for ax, key in zip(axes, ("test_accuracy_binary", "dead_output_share"), strict=True):
            values = [100 * r[key] for r in runs]
            ax.errorbar([1], [statistics.mean(values)], yerr=[statistics.pstdev(values)],
                        marker="*", markersize=12, color="black", linestyle="none", capsize=3,
                        label="one-hot")
    axes[0].set_ylabel("fully binary test accuracy (%)")
    axes[1].set_ylabel("dead output neurons (%)")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("output neurons per class")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    seeds = sorted({r["seed"] for r in result["runs"]})
    fig.suptitle(f"Output encoding, {result['label']} (seeds {seeds})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    """Run the study (see the module docstring); ``argv`` defaults to the command line."""
    p = parser(STUDY, __doc__)
    p.add_argument("--per-class", type=int, nargs="+", default=[2, 4, 8, 16],
                   help="N-hot code sizes (neurons per class) besides one-hot")
    args: argparse.Namespace = p.parse_args(argv)
    config, label, limits = base_config(args)
    if args.quick:
        config = shorten(config, QUICK_EPOCHS)
    classes = int(config.key["classes"])
    out = args.out or RESULTS / f"{STUDY}-{label}.json"
    header = {"preset": args.preset, "recipe": args.recipe and str(args.recipe),
              "dataset": config.dataset, "quick": args.quick,
              "classes": classes, "base_config": config.to_dict(),
              "what": "fully binary test accuracy and dead output neurons (never firing on the "
                      "test set at sharpness 1) against the output code"}
    sweep = Sweep(STUDY, label, out, header, limits, args.device, args.runs_dir)
    for seed in args.seeds:
        for setting, per_class, overlapping in settings(classes, args.per_class):
            cfg = config.merged({"seed": seed, "key": {"width": classes * per_class,
                                                       "overlapping": overlapping}})
            sweep.run(setting, cfg, lambda d, c: output_activity(d, c, limits["test_limit"]),
                      per_class=per_class, overlapping=overlapping)
    sweep.save()
    print(f"wrote {out} and {plot(sweep.result, RESULTS / f'{STUDY}-{label}.png')}")


def section() -> list[str]:
    """BENCHMARKS.md lines from the full encoding results ([] when there are none)."""
    from .report import _pct

    found = full_results(STUDY)
    if not found:
        return []
    lines = ["## Output encoding: one-hot against N-hot populations", "",
             "Fully binary test accuracy (every layer at sharpness 1) with output populations of "
             "one neuron per class (one-hot) or several, codes overlapping or disjoint; dead "
             "output neurons never fire on the test set at sharpness 1. Mean ± std over seeds.",
             ""]
    for res in found:
        lines += [f"### {res['label']}", "",
                  "| code | neurons per class | output width | binary (%) | dead output neurons "
                  "(%) | classes never predicted |", "|---|---|---|---|---|---|"]
        for setting, runs in by_setting(res).items():
            first = runs[0]
            lines.append(
                f"| {setting} | {first['per_class']} | {first['output_width']} | "
                f"{_pct([r['test_accuracy_binary'] for r in runs])} | "
                f"{_pct([r['dead_output_share'] for r in runs])} | "
                f"{mean_spread([r['classes_never_predicted'] for r in runs])} |")
        seeds = sorted({r["seed"] for r in res["runs"]})
        lines += ["", f"![accuracy and dead outputs against neurons per class]"
                      f"(benchmarks/results/{STUDY}-{res['label']}.png)", "",
                  f"- **{res['label']}** (seeds {seeds}, {epochs_trained(res)} epochs"
                  f"{recipe_note(res)}):", *provenance(res), ""]
    return lines


if __name__ == "__main__":
    main()
