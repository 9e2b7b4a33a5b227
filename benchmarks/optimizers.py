"""Optimizers and BatchNorm under sharpening (method.md §5).

The preset's dense network trained with Adam, Adadelta (the preset's, lr 4.0), RMSprop and
SGD with momentum, each without and with BatchNorm before every activation, under the preset's
own schedule (``simple``: fixed timing, so it shows which optimizer copes with it) and the
loss-driven ``adaptive`` schedule (its timing shows how soon each optimizer lets the network
sharpen). For each: the fully binary test accuracy and the epoch at which every layer first
stood at sharpness 1. Learning rates are ``whetstone.presets.build.DEFAULT_LR``; the JSON
states every optimizer's effective hyperparameters.

``sgd-clip`` (not run by default: ``--optimizers sgd-clip``) is SGD with momentum whose
gradient norm is bounded by ``SGD_CLIP`` before each step: it tests whether plain SGD's
collapse without BatchNorm comes from the sharpened activations' growing slope
``1 / (1 - s + 0.001)``. A rerun with other ``--optimizers`` or ``--schedules`` adds to the
JSON: its header lists every optimizer and schedule the file holds runs of.

    python -m benchmarks.run optimizers --preset mnist-dense --seeds 0 1 2
    python -m benchmarks.run optimizers --quick
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from whetstone.presets import TrainConfig, build_model, build_optimizer
from whetstone.presets.build import CLIP_GRAD_NORM, DEFAULT_LR, gradient_clip

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

STUDY = "optimizers"
OPTIMIZERS = ("adam", "adadelta", "rmsprop", "sgd")
CHOICES = (*OPTIMIZERS, "sgd-clip")
SGD_MOMENTUM = 0.9
SGD_CLIP = 1.0


def optimizer_spec(config: TrainConfig, name: str) -> dict[str, Any]:
    """``config.optimizer`` for ``name``: the preset's own if it uses ``name``, else defaults."""
    if name == "sgd-clip":
        return {**optimizer_spec(config, "sgd"), CLIP_GRAD_NORM: SGD_CLIP}
    if config.optimizer["name"] == name:
        return dict(config.optimizer)
    spec: dict[str, Any] = {"name": name, "lr": DEFAULT_LR[name]}
    if name == "sgd":
        spec["momentum"] = SGD_MOMENTUM
    return spec


def effective_hyperparameters(config: TrainConfig) -> dict[str, Any]:
    """The numeric hyperparameters torch uses for ``config``'s optimizer (defaults filled in)."""
    optimizer = build_optimizer(config, build_model(config))
    out: dict[str, Any] = {"name": config.optimizer["name"]}
    for k, v in optimizer.defaults.items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[k] = v
        elif isinstance(v, tuple) and all(isinstance(x, int | float) for x in v):
            out[k] = list(v)
    if gradient_clip(config) is not None:
        out[CLIP_GRAD_NORM] = gradient_clip(config)
    return out


def _union(old: list[str], new: list[str], order: tuple[str, ...] = ()) -> list[str]:
    """``old`` and ``new`` without repeats, in ``order`` where given, else first appearance."""
    seen = list(dict.fromkeys([*old, *new]))
    return sorted(seen, key=order.index) if order else seen


def setting_name(optimizer: str, batchnorm: bool, schedule: str) -> str:
    """The setting's name in the JSON, e.g. ``adam-bn-adaptive``."""
    return f"{optimizer}{'-bn' if batchnorm else ''}-{schedule}"


def variant(config: TrainConfig, optimizer: str, batchnorm: bool, schedule: str) -> TrainConfig:
    """The preset with ``optimizer``, BatchNorm on or off and ``schedule``."""
    cfg = config.merged({"optimizer": optimizer_spec(config, optimizer),
                         "model": {"batchnorm": batchnorm}})
    return cfg.with_schedule(schedule)


def plot(result: dict[str, Any], path: Path) -> Path:
    """Grouped bars per schedule: binary accuracy and epochs to sharpness 1, without/with BN."""
    plt = pyplot()
    groups = by_setting(result)
    schedules = result["schedules"]
    fig, axes = plt.subplots(2, len(schedules), figsize=(max(4.5 * len(schedules), 6.5), 6.5),
                             squeeze=False)
    width = 0.38
    for col, schedule in enumerate(schedules):
        for row, (key, scale) in enumerate((("test_accuracy_binary", 100), ("epochs_to_sharp", 1))):
            ax = axes[row][col]
            for j, batchnorm in enumerate((False, True)):
                xs, means, spreads, never = [], [], [], []
                for i, name in enumerate(result["optimizers"]):
                    runs = groups.get(setting_name(name, batchnorm, schedule), [])
                    values = [scale * r[key] for r in runs if r[key] is not None]
                    x = i + (j - 0.5) * width
                    if values:
                        xs.append(x)
                        means.append(statistics.mean(values))
                        spreads.append(statistics.pstdev(values))
                    elif runs:
                        never.append(x)
                ax.bar(xs, means, width, yerr=spreads, capsize=3,
                       label="with BatchNorm" if batchnorm else "without BatchNorm")
                for x in never:
                    ax.text(x, 0, "never", rotation=90, ha="center", va="bottom", fontsize=8)
            ax.set_xticks(range(len(result["optimizers"])), list(result["optimizers"]))
            ax.set_xlim(-0.6, len(result["optimizers"]) - 0.4)
            ax.set_ylim(0, max(ax.get_ylim()[1], 1))
            ax.grid(axis="y", alpha=0.3)
        axes[0][col].set_title(f"schedule: {schedule}")
        axes[0][col].legend(fontsize=8, loc="lower right")
    axes[0][0].set_ylabel("fully binary test accuracy (%)")
    axes[1][0].set_ylabel("epochs until every layer at 1")
    seeds = sorted({r["seed"] for r in result["runs"]})
    fig.suptitle(f"Optimizers and BatchNorm, {result['label']} (seeds {seeds})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    """Run the study (see the module docstring); ``argv`` defaults to the command line."""
    p = parser(STUDY, __doc__)
    p.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS), choices=CHOICES)
    p.add_argument("--schedules", nargs="+", default=["simple", "adaptive"],
                   help="sharpening schedules, with the preset's arguments for each")
    args: argparse.Namespace = p.parse_args(argv)
    config, label, limits = base_config(args)
    variants = [(name, bn, schedule) for schedule in args.schedules
                for name in args.optimizers for bn in (False, True)]
    configs = {}
    for name, bn, schedule in variants:
        cfg = variant(config, name, bn, schedule)
        configs[name, bn, schedule] = shorten(cfg, QUICK_EPOCHS) if args.quick else cfg
    out = args.out or RESULTS / f"{STUDY}-{label}.json"
    old = json.loads(out.read_text()) if out.exists() else {}
    hyper = {name: effective_hyperparameters(configs[name, False, args.schedules[0]])
             for name in args.optimizers}
    header = {"preset": args.preset, "recipe": args.recipe and str(args.recipe),
              "dataset": config.dataset, "quick": args.quick,
              "optimizers": _union(old.get("optimizers", []), args.optimizers, CHOICES),
              "schedules": _union(old.get("schedules", []), args.schedules),
              "hyperparameters": {**old.get("hyperparameters", {}), **hyper},
              "base_config": config.to_dict(),
              "what": "fully binary test accuracy and epochs until every layer is at sharpness "
                      "1, per optimizer, without and with BatchNorm"}
    sweep = Sweep(STUDY, label, out, header, limits, args.device, args.runs_dir)
    for seed in args.seeds:
        for name, bn, schedule in variants:
            sweep.run(setting_name(name, bn, schedule),
                      configs[name, bn, schedule].merged({"seed": seed}),
                      optimizer=name, batchnorm=bn, schedule=schedule)
    sweep.save()
    print(f"wrote {out} and {plot(sweep.result, RESULTS / f'{STUDY}-{label}.png')}")


def section() -> list[str]:
    """BENCHMARKS.md lines from the full optimizer results ([] when there are none)."""
    from .report import _pct

    found = full_results(STUDY)
    if not found:
        return []
    lines = ["## Optimizers and BatchNorm under sharpening", "",
             "Fully binary test accuracy (every layer at sharpness 1) and the epoch at which every "
             "layer first stood at 1, per optimizer, without and with BatchNorm before each "
             "activation, under the preset's schedule and the loss-driven adaptive one. A run "
             "that never reached sharpness 1 within its epochs (*never*) is evaluated with every "
             "layer forced to 1: its binary figure is that of a network simply thresholded "
             "from its last sharpness, not trained binary. Mean ± std over seeds.", ""]
    for res in found:
        groups = by_setting(res)
        head = "| optimizer | BatchNorm |"
        rule = "|---|---|"
        for schedule in res["schedules"]:
            head += f" {schedule}: binary (%) | {schedule}: epochs to sharpness 1 |"
            rule += "---|---|"
        lines += [f"### {res['label']}", "", head, rule]
        for name in res["optimizers"]:
            for bn in (False, True):
                row = f"| {name} | {'yes' if bn else 'no'} |"
                for schedule in res["schedules"]:
                    runs = groups.get(setting_name(name, bn, schedule), [])
                    row += (f" {_pct([r['test_accuracy_binary'] for r in runs])} | "
                            f"{mean_spread([r['epochs_to_sharp'] for r in runs])} |")
                lines.append(row)
        hyper = "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in h.items() if k != "name")
                          for name, h in res["hyperparameters"].items())
        if "sgd-clip" in res["optimizers"]:
            hyper += (" (*sgd-clip*: SGD whose gradient's L2 norm is bounded before every step; "
                      "run only where a schedule's columns show it, *n/a* elsewhere)")
        seeds = sorted({r["seed"] for r in res["runs"]})
        lines += ["", f"Hyperparameters (as torch ran them): {hyper}.", "",
                  f"![accuracy and epochs to sharpness 1 per optimizer]"
                  f"(benchmarks/results/{STUDY}-{res['label']}.png)", "",
                  f"- **{res['label']}** (seeds {seeds}, {epochs_trained(res)} epochs"
                  f"{recipe_note(res)}):", *provenance(res), ""]
    return lines


if __name__ == "__main__":
    main()
