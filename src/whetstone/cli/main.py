"""``whetstone``: train, evaluate and inspect Whetstone networks from the command line.

    whetstone train --preset mnist-dense --seed 0 --out runs/mnist-dense
    whetstone train --preset mnist-cnn --schedule adaptive --out runs/cnn
    whetstone evaluate runs/mnist-dense
    whetstone convert runs/mnist-dense          # threshold neurons, RUN/spiking.npz
    whetstone simulate runs/mnist-dense         # run them (numpy) on the test set
    whetstone stats runs/mnist-dense            # density, Gini, SynOps, energy estimates
    whetstone quantize runs/mnist-dense --bits 4 8
    whetstone export runs/mnist-dense --nir model.nir
    whetstone presets
    whetstone fetch mnist
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import spiking


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the preset's, 0)")
    p.add_argument("--data-dir", default=None,
                   help="dataset folder (default: $WHETSTONE_DATA or the user cache)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whetstone",
        description="Train deep networks to single-step binary spikes (Whetstone method).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a preset or configuration into a run folder")
    t.add_argument("--preset", default=None, help="named preset (see 'whetstone presets')")
    t.add_argument("--config", default=None, help="TOML file (keys of TrainConfig, or 'preset')")
    t.add_argument("--out", default=None, help="run folder (default: runs/PRESET)")
    t.add_argument("--epochs", type=int, help="epochs of the sharpening schedule")
    t.add_argument("--finetune-epochs", type=int,
                   help="epochs after the schedule, with every layer at sharpness 1")
    t.add_argument("--batch-size", type=int)
    t.add_argument("--optimizer", help="adadelta, adam, adamw, rmsprop or sgd")
    t.add_argument("--lr", type=float, help="learning rate")
    t.add_argument("--clip-grad-norm", type=float, metavar="MAX",
                   help="bound the gradient's L2 norm before each step (e.g. for SGD)")
    t.add_argument("--schedule", help="simple, scheduled, adaptive, or none (never sharpen)")
    t.add_argument("--surrogate", help="straight-through, arctan or none: gradient at sharpness 1")
    t.add_argument("--lr-schedule", help="cosine or none")
    t.add_argument("--augment", help="shift or none")
    t.add_argument("--val-every", type=int, help="evaluate every N epochs")
    t.add_argument("--train-limit", type=int, help="use only the first N training samples")
    t.add_argument("--val-limit", type=int,
                   help="use only the first N validation samples (default: --test-limit)")
    t.add_argument("--test-limit", type=int, help="use only the first N test samples")
    t.add_argument("--teacher", metavar="RUN",
                   help="distil from this trained run folder (e.g. the recipe never sharpened)")
    t.add_argument("--distill-temperature", type=float, metavar="T",
                   help="softmax temperature of the teacher's and student's logits (default 4)")
    t.add_argument("--distill-weight", type=float, metavar="W",
                   help="weight of the teacher term in [0, 1] (default 0.5)")
    t.add_argument("--init-from-teacher", action="store_true",
                   help="start the student from the teacher's weights (same architecture)")
    t.add_argument("--precision", choices=["float32", "bf16"],
                   help="training precision: bf16 runs forward and loss under bfloat16 "
                        "autocast (evaluation stays float32)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--no-plot", action="store_true", help="do not write sharpening.png")
    _add_common(t)

    e = sub.add_parser("evaluate", help="accuracy of a run at its sharpness and fully binary")
    e.add_argument("run", help="run folder")
    e.add_argument("--split", default="test", choices=["train", "val", "test", "train-full"])
    e.add_argument("--limit", type=int, help="use only the first N samples")
    e.add_argument("--no-spiking", action="store_true",
                   help="skip converting to threshold neurons and running the numpy runtime")
    _add_common(e)

    spiking.add_parsers(sub, _add_common)

    sub.add_parser("presets", help="list the presets and their settings")

    f = sub.add_parser("fetch", help="download (or find) a dataset into the data folder")
    f.add_argument("dataset", choices=["mnist", "fashion-mnist", "cifar10", "cifar100"])
    f.add_argument("--data-dir", default=None)
    return parser


def _config_from_args(args: argparse.Namespace) -> Any:
    from ..presets import TrainConfig, get_preset, read_toml
    from ..presets.build import CLIP_GRAD_NORM, DEFAULT_LR

    file_values: dict[str, Any] = read_toml(args.config) if args.config else {}
    file_preset = file_values.pop("preset", None)
    preset = args.preset or file_preset
    if preset is None and not file_values:
        raise SystemExit("whetstone train: give --preset NAME or --config FILE")
    # later wins: preset, then the TOML file, then the command line
    config = (get_preset(preset) if preset else TrainConfig()).merged(file_values)
    if args.schedule:
        config = config.with_schedule(args.schedule)
    overrides: dict[str, Any] = {
        key: getattr(args, key)
        for key in ("epochs", "finetune_epochs", "batch_size", "seed", "lr_schedule", "augment",
                    "val_every", "precision")
        if getattr(args, key) is not None
    }
    if args.surrogate is not None:
        overrides["surrogate"] = None if args.surrogate == "none" else args.surrogate
    config = config.merged(overrides)
    if args.optimizer and args.optimizer != config.optimizer["name"]:
        config.optimizer = {"name": args.optimizer, "lr": DEFAULT_LR.get(args.optimizer, 1e-3)}
    if args.lr is not None:
        config.optimizer = {**config.optimizer, "lr": args.lr}
    if args.clip_grad_norm is not None:
        config.optimizer = {**config.optimizer, CLIP_GRAD_NORM: args.clip_grad_norm}
    teacher = {key: value for key, value in (
        ("run", args.teacher), ("temperature", args.distill_temperature),
        ("weight", args.distill_weight), ("init", True if args.init_from_teacher else None))
        if value is not None}
    if teacher:
        config = config.merged({"teacher": teacher})
    return config


def _print(result: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(lines))


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def cmd_train(args: argparse.Namespace) -> int:
    from ..runs import train_run

    config = _config_from_args(args)
    out = Path(args.out or f"runs/{config.name}")
    summary = train_run(config, out, data_dir=args.data_dir, device=args.device,
                        progress=not args.no_progress, train_limit=args.train_limit,
                        test_limit=args.test_limit, plot=not args.no_plot,
                        val_limit=args.val_limit)
    _print(summary, args.json, [
        f"run folder: {out}",
        f"validation accuracy of the conventional network (before sharpening): "
        f"{_pct(summary['val_accuracy_before_sharpening'])}",
        f"validation accuracy at final sharpness: {_pct(summary['val_accuracy'])}, fully "
        f"binary: {_pct(summary['val_accuracy_binary'])}",
        f"test accuracy at final sharpness: {_pct(summary['test_accuracy'])}",
        f"test accuracy fully binary (every layer at sharpness 1): "
        f"{_pct(summary['test_accuracy_binary'])}",
        f"training time: {summary['train_seconds']:.1f} s over {summary['epochs']} epochs",
    ])
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..runs import evaluate_run, seed_everything

    seed_everything(args.seed or 0)
    result = evaluate_run(args.run, data_dir=args.data_dir, split=args.split, device=args.device,
                          limit=args.limit, spiking=not args.no_spiking)
    sharp = "/".join(f"{s:.2f}" for s in result["sharpness"])
    lines = [
        f"{result['run']}: {result['dataset']} {result['split']} ({result['samples']} samples)",
        f"accuracy at current sharpness ({sharp}): {_pct(result['accuracy'])}",
        f"accuracy fully binary (every activation a step, torch): "
        f"{_pct(result['accuracy_binary'])}",
    ]
    if result["accuracy_spiking"] is not None:
        lines.append(f"accuracy of the converted spiking network (threshold neurons, one time "
                     f"step, numpy runtime): {_pct(result['accuracy_spiking'])}; same class as "
                     f"torch for {_pct(result['spiking_agreement'])} of samples")
    _print(result, args.json, lines)
    return 0


def cmd_presets(_args: argparse.Namespace) -> int:
    from ..presets import PRESETS

    for name, cfg in PRESETS.items():
        print(f"{name}: {cfg.dataset}, {cfg.model}, key {cfg.key['classes']}x{cfg.key['width']} "
              f"{'overlapping' if cfg.key.get('overlapping', True) else 'disjoint'}, "
              f"{cfg.optimizer}, schedule {cfg.schedule}, {cfg.epochs} epochs, "
              f"batch {cfg.batch_size}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from ..data import load

    for split in ("train-full", "test"):
        images, _labels = load(args.dataset, split, data_dir=args.data_dir)
        print(f"{args.dataset} {split}: {tuple(images.shape)}")
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "presets": cmd_presets,
            "fetch": cmd_fetch, **spiking.COMMANDS}


USER_ERRORS = (ValueError, OSError, ImportError, ArithmeticError, TypeError, RuntimeError,
               AssertionError)
"""What a user's input can raise (a bad value or file, a NaN loss, a mistyped keyword, a device
torch was not built for): one line naming the problem, exit code 2, no traceback."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as exc:
        print(f"whetstone {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
