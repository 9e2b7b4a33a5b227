"""Sharpening schedules and allocation: accuracy against the epoch budget, and timelines.

The preset trained with the ``simple``, ``scheduled`` and ``adaptive`` sharpeners (the
preset's arguments for each), each allocated bottom-up (lower layers finish first) or
uniformly (``schedule.allocation = "uniform"``: the same schedule's model sharpness given to
every layer alike, same timing), on several total-epoch budgets. A budget shorter than the
preset's scales the sharpening and fine-tuning phases and the schedule's durations alike
(``benchmarks.sweep.shorten``). For each: the fully binary test accuracy and the epoch at
which every layer first stood at 1, plus the sharpening timeline (per-layer sharpness, loss,
accuracy at the current sharpness and fully binary, per epoch) of the first seed on the
longest budget.

    python -m benchmarks.run schedules --preset mnist-dense --seeds 0 1 2
    python -m benchmarks.run schedules --quick
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from whetstone.plotting.sharpening import plot_history
from whetstone.presets import TrainConfig
from whetstone.presets.build import ALLOCATIONS
from whetstone.training.history import History

from .common import RESULTS
from .sweep import (
    QUICK_EPOCHS,
    Sweep,
    base_config,
    by_setting,
    full_results,
    mean_spread,
    parser,
    provenance,
    pyplot,
    recipe_note,
    shorten,
)

STUDY = "schedules"
SCHEDULES = ("simple", "scheduled", "adaptive")


def setting_name(schedule: str, allocation: str, budget: int) -> str:
    """The setting's name in the JSON, e.g. ``scheduled-uniform-31ep``."""
    return f"{schedule}-{allocation}-{budget}ep"


def variant(config: TrainConfig, schedule: str, allocation: str, budget: int) -> TrainConfig:
    """The preset with ``schedule`` (its preset arguments), ``allocation``, ``budget`` epochs."""
    cfg = config.with_schedule(schedule).merged({"schedule": {"allocation": allocation}})
    return cfg if budget == cfg.total_epochs else shorten(cfg, budget)


def timeline_path(label: str, schedule: str, allocation: str) -> Path:
    """Where the sharpening timeline of one schedule and allocation is drawn."""
    return RESULTS / f"{STUDY}-{label}-{schedule}-{allocation}.png"


def plot_timelines(result: dict[str, Any]) -> list[Path]:
    """The sharpening timeline of the first seed on the longest budget, per setting."""
    budget = max(result["budgets"])
    seed = min(r["seed"] for r in result["runs"])
    written = []
    for schedule in result["schedules"]:
        for allocation in result["allocations"]:
            setting = setting_name(schedule, allocation, budget)
            run = next((r for r in result["runs"]
                        if r["setting"] == setting and r["seed"] == seed), None)
            metrics = Path(run["run_dir"]) / "metrics.jsonl" if run else None
            if metrics is None or not metrics.is_file():
                continue
            written.append(plot_history(
                History.read_jsonl(metrics),
                timeline_path(result["label"], schedule, allocation),
                title=f"{result['label']}: {schedule}, {allocation}, {budget} epochs "
                      f"(seed {seed})"))
    return written


def plot_budgets(result: dict[str, Any], path: Path) -> Path:
    """Fully binary accuracy (mean ± std over seeds) against the total epoch budget."""
    plt = pyplot()
    groups = by_setting(result)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"bottom-up": "-", "uniform": "--"}
    colors = dict(zip(result["schedules"], plt.rcParams["axes.prop_cycle"].by_key()["color"],
                      strict=False))
    for schedule in result["schedules"]:
        for allocation in result["allocations"]:
            xs, means, spreads = [], [], []
            for budget in sorted(result["budgets"]):
                runs = groups.get(setting_name(schedule, allocation, budget), [])
                values = [100 * r["test_accuracy_binary"] for r in runs]
                if values:
                    xs.append(budget)
                    means.append(statistics.mean(values))
                    spreads.append(statistics.pstdev(values))
            if xs:
                ax.errorbar(xs, means, yerr=spreads, marker="o", capsize=3,
                            linestyle=styles.get(allocation, ":"), color=colors.get(schedule),
                            label=f"{schedule}, {allocation}")
    ax.set_xlabel("total epochs")
    ax.set_ylabel("fully binary test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    seeds = sorted({r["seed"] for r in result["runs"]})
    ax.set_title(f"Schedules and allocation, {result['label']} (seeds {seeds})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    """Run the study (see the module docstring); ``argv`` defaults to the command line."""
    p = parser(STUDY, __doc__)
    p.add_argument("--schedules", nargs="+", default=list(SCHEDULES), choices=SCHEDULES)
    p.add_argument("--allocations", nargs="+", default=list(ALLOCATIONS), choices=ALLOCATIONS)
    p.add_argument("--budgets", type=int, nargs="+",
                   help="total epochs (default: half the preset's and the preset's)")
    args: argparse.Namespace = p.parse_args(argv)
    config, label, limits = base_config(args)
    budgets = ([QUICK_EPOCHS] if args.quick else
               args.budgets or [config.total_epochs // 2, config.total_epochs])
    variants = [(schedule, allocation, budget) for budget in budgets
                for schedule in args.schedules for allocation in args.allocations]
    out = args.out or RESULTS / f"{STUDY}-{label}.json"
    header = {"preset": args.preset, "recipe": args.recipe and str(args.recipe),
              "dataset": config.dataset, "quick": args.quick,
              "schedules": args.schedules, "allocations": args.allocations,
              "budgets": budgets, "base_config": config.to_dict(),
              "what": "fully binary test accuracy and epochs until every layer is at sharpness "
                      "1, per schedule and allocation, against the total epoch budget; shorter "
                      "budgets scale the schedule's durations with the training phases; uniform "
                      "allocation keeps the schedule's timing (whetstone.presets.build."
                      "UniformAllocation)"}
    sweep = Sweep(STUDY, label, out, header, limits, args.device, args.runs_dir)
    for seed in args.seeds:
        for schedule, allocation, budget in variants:
            cfg = variant(config, schedule, allocation, budget).merged({"seed": seed})
            sweep.run(setting_name(schedule, allocation, budget), cfg, schedule=schedule,
                      allocation=allocation, budget=budget)
    sweep.save()
    written = [plot_budgets(sweep.result, RESULTS / f"{STUDY}-{label}.png"),
               *plot_timelines(sweep.result)]
    print(f"wrote {out} and {', '.join(str(w) for w in written)}")


def section() -> list[str]:
    """BENCHMARKS.md lines from the full schedule results ([] when there are none)."""
    from .report import _pct

    found = full_results(STUDY)
    if not found:
        return []
    lines = ["## Sharpening schedules and allocation", "",
             "Fully binary test accuracy (every layer at sharpness 1) and the epoch at which every "
             "layer first stood at 1, per schedule (the preset's arguments for each) and "
             "allocation (bottom-up: lower layers finish first; uniform: the same schedule's "
             "model sharpness given to every layer, same timing), on total-epoch budgets (a "
             "shorter budget scales the schedule with the training). A run that never reached "
             "sharpness 1 (*never*) is evaluated with every layer forced to 1. Mean ± std over "
             "seeds.",
             ""]
    for res in found:
        groups = by_setting(res)
        budgets = sorted(res["budgets"])
        head = "| schedule | allocation |"
        rule = "|---|---|"
        for budget in budgets:
            head += f" {budget} epochs: binary (%) | {budget} epochs: epochs to sharpness 1 |"
            rule += "---|---|"
        lines += [f"### {res['label']}", "", head, rule]
        for schedule in res["schedules"]:
            for allocation in res["allocations"]:
                row = f"| {schedule} | {allocation} |"
                for budget in budgets:
                    runs = groups.get(setting_name(schedule, allocation, budget), [])
                    row += (f" {_pct([r['test_accuracy_binary'] for r in runs])} | "
                            f"{mean_spread([r['epochs_to_sharp'] for r in runs])} |")
                lines.append(row)
        seeds = sorted({r["seed"] for r in res["runs"]})
        lines += ["", f"![accuracy against epoch budget](benchmarks/results/{STUDY}-"
                      f"{res['label']}.png)", "",
                  f"Sharpening timelines ({max(budgets)} epochs, seed {seeds[0]}):", ""]
        for schedule in res["schedules"]:
            for allocation in res["allocations"]:
                path = timeline_path(res["label"], schedule, allocation)
                if path.is_file():
                    lines.append(f"![{schedule}, {allocation}](benchmarks/results/{path.name})")
        lines += ["", f"- **{res['label']}** (seeds {seeds}{recipe_note(res)}):",
                  *provenance(res), ""]
    return lines


if __name__ == "__main__":
    main()
