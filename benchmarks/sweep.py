"""What the sweep studies (encoding, optimizers, schedules) share: options, resumable results.

A study trains one configuration per (setting, seed) with :func:`whetstone.runs.train_run`
and rewrites its JSON after every run. A (setting, seed) already in the JSON with the same
configuration and data limits is not trained again, so a full study can span sessions. Every
invocation that trains something is recorded in ``invocations`` (date, machine, versions,
command) and each run names the invocation that trained it, so the report can say which
command produced which runs.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from whetstone.presets import TrainConfig
from whetstone.runs import train_run
from whetstone.sharpening.schedules import SHARPENERS
from whetstone.training.history import History

from .common import RESULTS, environment, write_json

QUICK_LIMITS: dict[str, int | None] = {"train_limit": 2000, "test_limit": 1000}
FULL_LIMITS: dict[str, int | None] = {"train_limit": None, "test_limit": None}
QUICK_EPOCHS = 2
SUMMARY_KEYS = ("test_accuracy", "test_accuracy_binary", "fully_sharp", "epochs",
                "train_seconds", "median_epoch_seconds", "total_seconds", "final_sharpness",
                "test_samples", "train_samples", "date")


def parser(study: str, doc: str | None) -> argparse.ArgumentParser:
    """The options every sweep study takes."""
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.run {study}", description=doc,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", help="preset name (default: mnist-dense, or the recipe's)")
    p.add_argument("--recipe", type=Path,
                   help="TOML recipe: a preset plus overrides; the result label is its file name")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke check: {QUICK_EPOCHS} epochs on {QUICK_LIMITS['train_limit']} "
                        f"training and {QUICK_LIMITS['test_limit']} test images, seed 0")
    p.add_argument("--out", type=Path, help=f"JSON path (default: results/{study}-LABEL.json)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs/bench") / study)
    return p


def base_config(args: argparse.Namespace) -> tuple[TrainConfig, str, dict[str, int | None]]:
    """The preset (with ``--recipe``'s overrides), the result label and the data limits.

    Sets ``args.preset`` to the preset the configuration starts from; ``--quick`` keeps the
    first seed and labels the result ``LABEL-quick``.
    """
    from .accuracy import recipe_config

    config, label = recipe_config(args.preset or (None if args.recipe else "mnist-dense"),
                                  args.recipe)
    args.preset = args.preset or config.name
    if not args.quick:
        return config, label, dict(FULL_LIMITS)
    args.seeds = args.seeds[:1]
    return config, f"{label}-quick", dict(QUICK_LIMITS)


def scale_schedule(schedule: dict[str, Any], factor: float) -> dict[str, Any]:
    """``schedule`` with its durations (in epochs) multiplied by ``factor``.

    Simple: ``start_epoch`` and ``steps`` rounded (``steps`` at least 1). Scheduled: ``start``,
    ``duration`` and ``intermission`` as fractions of an epoch. Adaptive: ``min_init_epochs``
    rounded, ``rate`` and ``cz_rate`` (per epoch) divided by ``factor``. Others unchanged.
    """
    out = dict(schedule)
    name = out.get("name")
    if name == "simple":
        out["start_epoch"] = round(out.get("start_epoch", 0) * factor)
        out["steps"] = max(1, round(out.get("steps", _default("simple", "steps")) * factor))
    elif name == "scheduled":
        for k in ("start", "duration", "intermission"):
            out[k] = out.get(k, _default(name, k)) * factor
    elif name == "adaptive":
        out["min_init_epochs"] = round(out.get("min_init_epochs",
                                               _default(name, "min_init_epochs")) * factor)
        for k in ("rate", "cz_rate"):
            out[k] = out.get(k, _default(name, k)) / factor
    return out


def _default(schedule: str, argument: str) -> Any:
    """The sharpener class's default for ``argument``."""
    return inspect.signature(SHARPENERS[schedule]).parameters[argument].default


def shorten(config: TrainConfig, total_epochs: int) -> TrainConfig:
    """``config`` on a budget of ``total_epochs``, everything scaled alike.

    The sharpening and fine-tuning phases keep their proportions (``epochs`` rounded, at least
    1) and the schedule is scaled by ``epochs / config.epochs`` (:func:`scale_schedule`).
    """
    epochs = max(1, min(total_epochs, round(config.epochs * total_epochs / config.total_epochs)))
    return config.merged({
        "epochs": epochs, "finetune_epochs": total_epochs - epochs,
        "schedule": scale_schedule(config.schedule, epochs / config.epochs)})


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def epochs_to_sharp(run_dir: Path) -> int | None:
    """Epochs trained when every layer first stood at sharpness 1 (``None``: never)."""
    history = History.read_jsonl(run_dir / "metrics.jsonl")
    return next((r.epoch + 1 for r in history if min(r.sharpness) >= 1.0), None)


class Sweep:
    """A study's result file: loaded if present, extended run by run, rewritten after each."""

    def __init__(self, study: str, label: str, out: Path, header: dict[str, Any],
                 limits: dict[str, int | None], device: str, runs_dir: Path) -> None:
        self.out = out
        self.limits = limits
        self.device = device
        self.runs_dir = runs_dir
        old = json.loads(out.read_text()) if out.exists() else {}
        self.result: dict[str, Any] = {
            "study": study, "label": label, **header, "limits": limits,
            "environment": old.get("environment") or environment(device),
            "invocations": old.get("invocations", []),
            "runs": old.get("runs", []),
        }
        if old.get("runs") and "invocations" not in old:
            # written before invocations were recorded: keep its last invocation's environment
            self.result["legacy_environment"] = old["environment"]
        elif "legacy_environment" in old:
            self.result["legacy_environment"] = old["legacy_environment"]
        self._ran_any = False

    def find(self, setting: str, seed: int) -> dict[str, Any] | None:
        """The stored run of ``(setting, seed)``, if any."""
        return next((r for r in self.result["runs"]
                     if r["setting"] == setting and r["seed"] == seed), None)

    def run(self, setting: str, config: TrainConfig,
            measure: Callable[[Path, TrainConfig], dict[str, Any]] | None = None,
            **fields: Any) -> dict[str, Any]:
        """Train ``config`` as ``setting`` (its seed is ``config.seed``) unless already done.

        ``measure(run_dir, config)`` adds study-specific numbers; ``fields`` are stored as is.
        """
        seed = config.seed
        old = self.find(setting, seed)
        if old and old["config"] == config.to_dict() and old["limits"] == self.limits:
            print(f"{self.result['label']} {setting} seed {seed}: already in {self.out}",
                  flush=True)
            return old
        run_dir = self.runs_dir / f"{self.result['label']}-{setting}-seed{seed}"
        torch.manual_seed(seed)
        summary = train_run(config, run_dir, device=self.device, progress=False, **self.limits)
        record: dict[str, Any] = {
            "setting": setting, "seed": seed, **fields, "run_dir": str(run_dir),
            "limits": self.limits, "config": config.to_dict(),
            **{k: summary[k] for k in SUMMARY_KEYS},
            "epochs_to_sharp": epochs_to_sharp(run_dir),
        }
        if measure is not None:
            record.update(measure(run_dir, config))
        if not self._ran_any:
            self.result["environment"] = environment(self.device)
            self.result["invocations"].append(self.result["environment"])
            self._ran_any = True
        record["invocation"] = len(self.result["invocations"]) - 1
        self.result["runs"] = [r for r in self.result["runs"] if r is not old] + [record]
        write_json(self.out, self.result)
        print(f"{self.result['label']} {setting} seed {seed}: binary "
              f"{summary['test_accuracy_binary']:.4f}, every layer at 1 after epoch "
              f"{record['epochs_to_sharp']} ({summary['train_seconds']:.0f} s)", flush=True)
        return record

    def save(self) -> None:
        """Rewrite the JSON (header changes without a new run)."""
        write_json(self.out, self.result)


def full_results(study: str) -> list[dict[str, Any]]:
    """The full (not ``--quick``) result files of ``study``, sorted by path."""
    out = []
    for path in sorted(RESULTS.glob(f"{study}-*.json")):
        res = json.loads(path.read_text())
        if not res.get("quick") and res.get("study") == study:
            out.append(res)
    return out


def by_setting(res: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The runs of a result grouped by setting, in first-appearance order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in res["runs"]:
        groups.setdefault(r["setting"], []).append(r)
    return groups


def mean_spread(values: list[float | None], digits: int = 1) -> str:
    """``mean ± population std (n=…)`` of the values present; ``never`` when none is."""
    present = [float(v) for v in values if v is not None]
    missing = len(values) - len(present)
    if not present:
        return "never" if values else "n/a"
    text = f"{statistics.mean(present):.{digits}f}"
    if len(present) > 1:
        text += f" ± {statistics.pstdev(present):.{digits}f} (n={len(present)})"
    return text + (f"; never in {missing}" if missing else "")


def recipe_note(res: dict[str, Any]) -> str:
    """``, recipe `PATH``` for a sweep run from a TOML recipe, else ``""``."""
    return f", recipe `{res['recipe']}`" if res.get("recipe") else ""


def provenance(res: dict[str, Any]) -> list[str]:
    """Report lines naming the command, date, machine and versions behind a sweep's runs.

    One line per recorded invocation, with the settings and seeds it trained. Files written
    before invocations were recorded hold only the environment of their last invocation; the
    line says so and gives the dates of the runs it cannot attribute.
    """
    from .report import _env_line

    invocations = res.get("invocations", [])
    lines = []
    for i, env in enumerate(invocations):
        runs = [r for r in res["runs"] if r.get("invocation") == i]
        if runs:
            seeds = sorted({r["seed"] for r in runs})
            lines.append(f"  - {len(runs)} runs, seeds {seeds}: {_env_line(env)}")
    unattributed = [r for r in res["runs"] if r.get("invocation") is None]
    if unattributed:
        dates = sorted(r["date"] for r in unattributed)
        last = res.get("legacy_environment") or (None if invocations else res["environment"])
        lines.append(f"  - {len(unattributed)} runs from {dates[0]} to {dates[-1]}, trained before "
                     "this sweep recorded every invocation; "
                     + (f"the last of those invocations: {_env_line(last)}" if last
                        else "their commands were not recorded"))
    return lines


def epochs_trained(res: dict[str, Any]) -> str:
    """The epoch counts the runs of a result trained, e.g. ``31`` or ``15, 31``."""
    return ", ".join(str(e) for e in sorted({r["epochs"] for r in res["runs"]}))
