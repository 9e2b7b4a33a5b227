"""``train``'s sharpening-schedule options: when sharpening starts and how long each layer
takes (``--sharpen-start``, ``--sharpen-epochs``), and what happens when the schedule cannot
finish within the epochs given (``--schedule-fit scale|refuse``), checked before anything is
trained; and the summary's warning when a run ended not fully sharp.

The run's ``epochs`` are the sharpening phase; ``finetune_epochs`` follow it and are meant to
train the fully binary network, so the schedule must set every layer to 1 by the end of
``epochs`` (:func:`whetstone.presets.build.sharpening_window`).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

from .options import UsageError

FIT_MODES = ("scale", "refuse")
"""``--schedule-fit``: compress a schedule that does not fit into the epochs given (the
default), or refuse the command line naming the epochs it needs."""

TIMING_OPTIONS = ("sharpen_start", "sharpen_epochs", "schedule_fit")
"""``train`` options of this module (``--resume`` and policy presets refuse them)."""


def epochs_value(text: str) -> float:
    """An option counting epochs that may be a fraction of one (``2``, ``0.5``): a number
    >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of epochs >= 0, got {text!r}"
                                         ) from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of epochs >= 0, got {text!r}")
    return value


def add_options(t: argparse.ArgumentParser) -> None:
    """Register the schedule options on the ``train`` parser ``t``."""
    t.add_argument("--sharpen-start", type=epochs_value, metavar="EPOCHS",
                   help="epochs trained before sharpening starts (schedule.start_epoch of "
                        "'simple', schedule.start of 'scheduled', schedule.min_init_epochs "
                        "of 'adaptive')")
    t.add_argument("--sharpen-epochs", type=epochs_value, metavar="EPOCHS",
                   help="epochs each layer takes to go from sharpness 0 to 1, one layer "
                        "after another (schedule.steps of 'simple', whole epochs; "
                        "schedule.duration of 'scheduled', fractions allowed)")
    t.add_argument("--schedule-fit", choices=FIT_MODES, default=None,
                   help="when the schedule cannot set every layer to 1 within --epochs: "
                        "scale it to fit (default; one line says how) or refuse, naming the "
                        "epochs it needs")


def timing_changes(config: Any, args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """The configuration changes of ``--sharpen-start`` and ``--sharpen-epochs`` for the
    schedule of ``config`` (after ``--schedule``); :class:`UsageError` naming the option when
    the schedule has no such setting or the value does not suit it."""
    name = config.schedule.get("name")
    changes: list[tuple[str, dict[str, Any]]] = []
    for option, value, fields in (
            ("--sharpen-start", args.sharpen_start,
             {"simple": "start_epoch", "scheduled": "start", "adaptive": "min_init_epochs"}),
            ("--sharpen-epochs", args.sharpen_epochs,
             {"simple": "steps", "scheduled": "duration"})):
        if value is None:
            continue
        if name not in fields:
            why = ("never sharpens" if name in (None, "none") else
                   "sharpens at a pace set by the training loss" if name == "adaptive" else
                   "has no such setting")
            raise UsageError(f"{option}: the schedule {name!r} {why}; choose --schedule "
                             f"simple or scheduled")
        key = fields[name]
        if name in ("simple", "adaptive"):  # these count whole epochs
            if not float(value).is_integer():
                raise UsageError(f"{option} {value:g}: the {name} schedule counts whole "
                                 f"epochs (schedule.{key}); give an integer, or --schedule "
                                 f"scheduled for fractions")
            value = int(value)
        if option == "--sharpen-epochs" and not value > 0:
            raise UsageError(f"{option} {value:g}: each layer needs more than 0 epochs")
        changes.append((option, {"schedule": {key: value}}))
    return changes


def _during(window: tuple[float, float]) -> str:
    """``epochs 6-20`` or ``epoch 1``."""
    from ..presets.build import epoch_span

    span = epoch_span(window)
    return f"epochs {span}" if "-" in span else f"epoch {span}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _given(args: argparse.Namespace, name: str) -> bool:
    return getattr(args, name, None) is not None


def fit(config: Any, args: argparse.Namespace) -> tuple[Any, dict[str, Any] | None]:
    """Check that the schedule of ``config`` sets every layer to 1 by the end of its
    ``epochs``; when it does not, scale it (``--schedule-fit scale``, the default: one line
    on stderr says so) or refuse (``--schedule-fit refuse``, or when ``--sharpen-start`` or
    ``--sharpen-epochs`` set the timing explicitly). Returns the configuration to train and,
    when scaled, a record for the summary (``None`` otherwise)."""
    from ..presets import ConfigError
    from ..presets.build import epoch_span, fit_schedule, sharpenable_count, sharpening_window

    name = config.schedule.get("name")
    if name not in ("simple", "scheduled"):
        return config, None
    layers = sharpenable_count(config)
    window = sharpening_window(config, layers)
    assert window is not None
    epochs, finetune = config.epochs, config.finetune_epochs
    if window[1] <= epochs:
        return config, None
    needed = math.ceil(window[1])
    then = (f" (then {_plural(finetune, 'fine-tuning epoch')}, {needed + finetune} in all)"
            if finetune else "")
    where = f"--epochs {epochs}" if _given(args, "epochs") else f"epochs = {epochs}"
    timing = [o for o, k in (("--sharpen-start", "sharpen_start"),
                             ("--sharpen-epochs", "sharpen_epochs")) if _given(args, k)]
    what = (f"the {name} schedule sharpens its {_plural(layers, 'layer')} during "
            f"{_during(window)}, so it needs --epochs {needed} or more{then}")
    if timing:
        raise UsageError(f"{' and '.join(timing)}: {what}; the sharpening phase has "
                         f"{_plural(epochs, 'epoch')} ({where}); raise --epochs or start "
                         f"earlier")
    if (args.schedule_fit or "scale") == "refuse":
        raise UsageError(f"{where}: {what}; give --epochs {needed}, or --schedule-fit scale "
                         f"to compress the schedule into {_plural(epochs, 'epoch')}")
    try:
        scaled = fit_schedule(config, layers)
    except ConfigError as exc:
        raise UsageError(f"{where}: {exc.problem}; give --epochs {layers} or more, or "
                         f"--schedule scheduled") from None
    new = sharpening_window(scaled, layers)
    assert new is not None
    after = (f"; then {_plural(finetune, 'fine-tuning epoch')} at sharpness 1 "
             f"({epochs + finetune} in all)" if finetune else "")
    if os.environ.get("RANK", "0") == "0":  # a data-parallel job: rank 0 says it once
        print(f"whetstone train: schedule scaled to fit {_plural(epochs, 'epoch')}: "
              f"sharpening during {_during(new)} (was {epoch_span(window)}){after}; "
              f"--schedule-fit refuse refuses instead", file=sys.stderr, flush=True)
    keys = [k for k in config.schedule if k not in ("name", "mode", "allocation")]
    return scaled, {
        "action": "scaled", "epochs": epochs, "layers": layers,
        "window": list(new), "was_window": list(window),
        "schedule": {k: scaled.schedule[k] for k in keys if k in scaled.schedule},
        "was_schedule": {k: config.schedule[k] for k in keys},
    }


def sharpness_warning(summary: dict[str, Any]) -> str | None:
    """The summary's warning line when a sharpening run ended with a layer below 1."""
    if summary.get("fully_sharp", True) or summary.get("schedule") in (None, "none"):
        return None
    levels = "/".join(f"{s:.2f}" for s in summary.get("final_sharpness", []))
    return (f"WARNING: the network is not fully sharp (layer sharpness {levels}): it is not a "
            f"binary network, and 'whetstone convert' refuses it without --force; train longer "
            f"(--epochs) or let the schedule fit (--schedule-fit scale)")
