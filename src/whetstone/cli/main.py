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

Errors are one line on stderr, never a traceback (``--debug``, before or after the command,
prints it). Exit status: 0 done; 2 refused or failed because of the command line, a file,
the data or the machine (a bad option or configuration field, a missing or corrupt file, a
device torch cannot use, a diverging run; the line names the option, field or file); 1 an
unexpected internal error (the line says so and suggests ``--debug``: please report it);
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import options, recipes, spiking
from .options import OneLineParser, UsageError


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=options.seed, default=None,
                   help="random seed (default: the preset's, 0)")
    p.add_argument("--data-dir", default=None,
                   help="dataset folder (default: $WHETSTONE_DATA or the user cache)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    options.add_progress(p)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="whetstone",
        description="Train deep networks to single-step binary spikes (Whetstone method).",
        epilog="Errors are one line, exit status 2 (1: an internal error, 130: interrupted); "
               "--debug shows the traceback.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="on an error, print the traceback as well as the one-line message")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a preset or configuration into a run folder")
    t.add_argument("--preset", default=None, help="named preset (see 'whetstone presets')")
    t.add_argument("--config", default=None, help="TOML file (keys of TrainConfig, or 'preset')")
    t.add_argument("--recipe", default=None,
                   help="named recipe shipped with whetstone (see 'whetstone recipes')")
    t.add_argument("--model", metavar="MODULE:FUNCTION", default=None,
                   help="your own network: package.module:function returning an nn.Module "
                        "(imported from the current folder or PYTHONPATH; for "
                        "classification its output is the class scores, ending in a "
                        "SoftmaxDecode for an N-hot spiking decision)")
    t.add_argument("--data", metavar="FILE.npz", default=None,
                   help="your own data: an .npz of x_train, y_train, x_test, y_test "
                        "(optionally x_val, y_val); inputs uint8 or float, integer labels; "
                        "the run records its path and sha256")
    t.add_argument("--out", default=None, help="run folder (default: runs/PRESET)")
    t.add_argument("--epochs", type=int,
                   help="epochs of the sharpening phase: the schedule must set every layer to "
                        "1 within them (see --schedule-fit); --finetune-epochs follow")
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
    t.add_argument("--train-limit", type=options.count,
                   help="use only the first N training samples")
    t.add_argument("--val-limit", type=options.count,
                   help="use only the first N validation samples (default: --test-limit)")
    t.add_argument("--test-limit", type=options.count, help="use only the first N test samples")
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
    t.add_argument("--no-plot", action="store_true", help="do not write sharpening.png")
    from . import schedule as schedule_options

    schedule_options.add_options(t)
    t.add_argument("--resume", metavar="RUN",
                   help="continue the interrupted run RUN from its last checkpoint (its own "
                        "configuration and data; no other training option)")
    _add_common(t)

    e = sub.add_parser("evaluate", help="accuracy of a run at its sharpness and fully binary")
    e.add_argument("run", help="run folder")
    e.add_argument("--split", default="test", choices=["train", "val", "test", "train-full"])
    e.add_argument("--limit", type=options.count, help="use only the first N samples")
    e.add_argument("--no-spiking", action="store_true",
                   help="skip converting to threshold neurons and running the numpy runtime")
    _add_common(e)

    spiking.add_parsers(sub, _add_common)
    recipes.add_parsers(sub)

    pr = sub.add_parser("presets", help="list the presets and their settings")
    pr.add_argument("--json", action="store_true", help="every preset's full settings as JSON")

    f = sub.add_parser("fetch", help="download (or find) a dataset into the data folder")
    f.add_argument("dataset", choices=options.DATASETS)
    f.add_argument("--data-dir", default=None,
                   help="dataset folder (default: $WHETSTONE_DATA or the user cache)")
    f.add_argument("--json", action="store_true", help="print the result as JSON")
    for command in sub.choices.values():  # --debug after the command too
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="on an error, print the traceback as well")
    return parser


@contextmanager
def _blame(source: str | None) -> Iterator[None]:
    """Attribute a :class:`~whetstone.presets.ConfigError` raised inside to ``source`` (the
    option or file its value came from)."""
    from ..presets import ConfigError

    try:
        yield
    except ConfigError as exc:
        raise exc.within(source) from exc.__cause__


_OPTION_FIELDS = (("--epochs", "epochs"), ("--finetune-epochs", "finetune_epochs"),
                  ("--batch-size", "batch_size"), ("--seed", "seed"),
                  ("--lr-schedule", "lr_schedule"), ("--augment", "augment"),
                  ("--val-every", "val_every"), ("--precision", "precision"))
"""``train`` options that set one configuration field, in the order they are applied."""


def _config_from_args(args: argparse.Namespace) -> Any:
    """The configuration of a ``train`` command line: the preset, then the TOML file, then
    each option (later wins). Every step is checked against the schema; an error names the
    option or the file its value came from (:class:`~whetstone.presets.ConfigError`)."""
    from ..presets import TrainConfig, get_preset
    from ..presets.build import CLIP_GRAD_NORM, DEFAULT_LR

    if args.recipe is not None:
        if args.config is not None:
            raise UsageError("give --recipe NAME or --config FILE, not both")
        from ..presets import recipes as shipped

        try:
            args.config = str(shipped.get(args.recipe).path)
        except KeyError as exc:
            raise UsageError(f"--recipe: {exc.args[0]}") from None
    own = args.model is not None or args.data is not None
    if args.preset is None and args.config is None and not own:
        raise UsageError("give --preset NAME, --recipe NAME or --config FILE (or your own "
                         "--model MODULE:FUNCTION and --data FILE.npz)")
    with _blame("--preset"):
        if args.preset is not None:
            get_preset(args.preset)  # checked first, so that its error names --preset
    if args.config is not None:
        config = TrainConfig.from_toml(args.config, preset=args.preset)
    elif args.preset is not None:
        config = get_preset(args.preset)
    else:
        from ..presets.registry import custom_base

        config = custom_base()
    config = _own_model_and_data(config, args)
    if args.schedule:
        with _blame("--schedule"):
            config = config.with_schedule(args.schedule)
    from . import schedule as schedule_options

    changes = schedule_options.timing_changes(config, args)
    changes += [
        (option, {key: getattr(args, key)}) for option, key in _OPTION_FIELDS
        if getattr(args, key) is not None]
    if args.surrogate is not None:
        surrogate = None if args.surrogate == "none" else args.surrogate
        changes.append(("--surrogate", {"surrogate": surrogate}))
    if args.optimizer and args.optimizer != config.optimizer["name"]:
        changes.append(("--optimizer", {"optimizer": {
            "name": args.optimizer, "lr": DEFAULT_LR.get(args.optimizer, 1e-3)}}))
    if args.lr is not None:
        changes.append(("--lr", {"optimizer": {"lr": args.lr}}))
    if args.clip_grad_norm is not None:
        changes.append(("--clip-grad-norm", {"optimizer": {CLIP_GRAD_NORM: args.clip_grad_norm}}))
    changes += [(option, {"teacher": {key: value}}) for option, key, value in (
        ("--teacher", "run", args.teacher), ("--distill-temperature", "temperature",
                                             args.distill_temperature),
        ("--distill-weight", "weight", args.distill_weight),
        ("--init-from-teacher", "init", True if args.init_from_teacher else None))
        if value is not None]
    for option, overrides in changes:
        config = config.merged(overrides, source=option)
    return config


def _own_model_and_data(config: Any, args: argparse.Namespace) -> Any:
    """``config`` with ``--data`` (dataset ``npz``: the file read and checked, its path,
    sha256, sample shape and classes recorded; the class key sized to its classes) and
    ``--model`` (``model.arch = "custom"`` with the function's spec; imported once here, so
    that a wrong spec is refused before anything trains)."""
    from ..presets.schema import USER_DATASET

    if args.data is not None:
        from ..data.arrays import describe

        try:
            info = describe(args.data)
        except ValueError as exc:
            raise UsageError(f"--data: {exc}") from None
        width = int(config.key.get("width", info.classes))
        overrides: dict[str, Any] = {
            "dataset": USER_DATASET, "task": "classification",
            "data_file": {"path": str(info.path), "sha256": info.sha256,
                          "input_shape": list(info.input_shape), "classes": info.classes},
            "key": {**config.key, "classes": info.classes, "width": max(width, info.classes)}}
        if args.model is None and config.model.get("arch") != "custom":
            overrides["model"] = {k: v for k, v in config.model.items()
                                  if k not in ("in_features", "in_channels", "image_size")}
        data = config.to_dict()
        data.update(overrides)
        with _blame("--data"):
            config = type(config).from_dict(data)
    if args.model is not None:
        from ..presets.architectures import custom

        with _blame("--model"):
            config = config.merged({"model": {"arch": "custom", "function": args.model}})
            custom(function=args.model)  # imported and called once: refused here, not later
        config = config.merged({"name": args.model.partition(":")[2]})
    return config


def _print(result: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(lines))


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


RESUME_EXCLUDES = ("preset", "config", "out", "epochs", "finetune_epochs", "batch_size",
                   "optimizer", "lr", "clip_grad_norm", "schedule", "surrogate", "lr_schedule",
                   "augment", "val_every", "train_limit", "val_limit", "test_limit", "teacher",
                   "distill_temperature", "distill_weight", "init_from_teacher", "precision",
                   "seed", "sharpen_start", "sharpen_epochs", "schedule_fit", "model", "data")
"""``train`` options that ``--resume`` refuses: the interrupted run keeps its own."""


POLICY_OPTIONS = ("preset", "out", "seed")
"""``train`` options a reinforcement-learning preset takes (besides the output switches)."""


def _train_policy(args: argparse.Namespace) -> int:
    """``whetstone train --preset cartpole-dqn``: a policy run folder."""
    from ..presets.registry import POLICY_PRESETS
    from ..runs.policy import PolicyConfig, train_policy_run

    given = [f"--{name.replace('_', '-')}" for name in RESUME_EXCLUDES
             if name not in POLICY_OPTIONS and getattr(args, name, None) not in (None, False)]
    if given:
        raise UsageError(f"--preset {args.preset} trains a DQN policy with its own settings; "
                         f"drop {', '.join(given)}")
    if args.device != "cpu":
        raise UsageError(f"--preset {args.preset} trains on the CPU (the environment is Python)")
    config = PolicyConfig(args.preset, int(args.seed or 0), POLICY_PRESETS[args.preset]())
    out = options.check_output_folder(args.out or f"runs/{args.preset}", "--out")
    summary = train_policy_run(config, out, progress=options.progress_mode(args) == "bar",
                               plot=not args.no_plot)
    _print(summary, args.json, [f"run folder: {out}", *_policy_lines(summary["evaluation"]),
                                "training time: " + ", ".join(
                                    f"{k} {v:.0f} s" for k, v in
                                    summary["train_seconds"].items())])
    return 0


def _policy_lines(evaluation: dict[str, Any]) -> list[str]:
    """The returns of the three policies, their agreement and the spiking network's activity."""
    def returns(summary: dict[str, Any] | None) -> str:
        if summary is None:
            return "n/a"
        return (f"mean return {summary['mean_return']:.1f} (std {summary['std_return']:.1f}, "
                f"min {summary['min_return']:.0f}, max {summary['max_return']:.0f})")

    agreement = evaluation["agreement"]
    stats = evaluation["spiking_stats"]
    return [
        f"{evaluation['env_id']}, {evaluation['episodes']} episodes (reset seeds "
        f"{evaluation['seed']} and up)",
        f"conventional policy (never sharpened): {returns(evaluation['conventional'])}",
        f"fully binary policy (torch): {returns(evaluation['binary_torch'])}",
        f"spiking policy (threshold neurons, numpy runtime, in the environment loop): "
        f"{returns(evaluation['spiking'])}",
        f"same actions as the binary torch policy on {_pct(agreement['same_observations'])} of "
        f"the spiking policy's steps; {agreement['identical_episodes']} of "
        f"{agreement['episodes']} episodes identical; largest Q-value difference "
        f"{agreement['max_abs_q_difference']:.3g}",
        f"spiking network: {stats['synops']:.0f} SynOps per step "
        f"({stats['synops_per_dense_mac']:.3f} of the dense MACs), mean spike density "
        f"{_pct(stats['density_mean'])}",
    ]


def cmd_train(args: argparse.Namespace) -> int:
    from ..presets.build import check_device
    from ..presets.registry import POLICY_PRESETS
    from ..runs import train_run
    from . import schedule as schedule_options

    if args.resume is None and args.preset in POLICY_PRESETS:
        return _train_policy(args)
    if args.resume is not None:
        given = [f"--{name.replace('_', '-')}" for name in RESUME_EXCLUDES
                 if getattr(args, name, None) not in (None, False)]
        if given:
            raise UsageError(f"--resume continues a run with its own configuration and data; "
                             f"drop {', '.join(given)}")
        config, out = None, args.resume
    else:
        config = _config_from_args(args)
        out = options.check_output_folder(args.out or f"runs/{config.name}", "--out")
    with _blame("--device"):
        check_device(args.device)
    progress = options.progress(args, "train")
    fitted = None
    if config is not None:  # the schedule must finish within the epochs (scaled or refused)
        config, fitted = schedule_options.fit(config, args)
    summary = train_run(config, out, data_dir=args.data_dir, device=args.device,
                        progress=progress, train_limit=args.train_limit,
                        test_limit=args.test_limit, plot=not args.no_plot,
                        val_limit=args.val_limit, resume=args.resume is not None)
    if os.environ.get("RANK", "0") != "0":  # a data-parallel job: rank 0 reports
        return 0
    summary["schedule_fit"] = fitted
    warning = schedule_options.sharpness_warning(summary)
    summary["warnings"] = [warning] if warning else []
    lines = _train_lines(summary, out)
    if warning:
        lines.append(warning)
        if args.json:  # standard output holds the JSON: the warning goes to stderr as well
            print(warning, file=sys.stderr)
    _print(summary, args.json, lines)
    return 0


def _score(value: float | None, metric: str) -> str:
    """A score for people: accuracies and IoUs as percentages, PSNR in dB, MSE as it is."""
    if value is None:
        return "n/a"
    if metric in ("psnr", "psnr_of_mse"):
        return f"{value:.2f} dB"
    if metric == "mse":
        return f"{value:.5f}"
    return _pct(value)


def _metrics_text(metrics: dict[str, Any] | None) -> str:
    """``name value`` for every scalar score of a meter's result."""
    if metrics is None:
        return "n/a"
    return ", ".join(f"{name.replace('_', ' ')} {_score(value, name)}"
                     for name, value in metrics.items() if isinstance(value, float | int))


def _train_lines(summary: dict[str, Any], out: Any) -> list[str]:
    metric = summary.get("metric", "accuracy")
    name = metric.replace("_", " ")
    return [
        f"run folder: {out}",
        f"validation {name} of the conventional network (before sharpening): "
        f"{_score(summary['val_accuracy_before_sharpening'], metric)}",
        f"validation {name} at final sharpness: {_score(summary['val_accuracy'], metric)}, "
        f"fully binary: {_score(summary['val_accuracy_binary'], metric)}",
        f"test at final sharpness: {_metrics_text(summary.get('test_metrics'))}",
        f"test fully binary (every layer at sharpness 1): "
        f"{_metrics_text(summary.get('test_metrics_binary'))}",
        f"final layer sharpness: "
        f"{'/'.join(f'{s:.2f}' for s in summary.get('final_sharpness', []))} ("
        + ("fully sharp: a binary network" if summary.get("fully_sharp") else
           "not fully sharp") + ")",
        f"training time: {summary['train_seconds']:.1f} s over {summary['epochs']} epochs",
    ]


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..presets.build import check_device
    from ..runs import evaluate_run, seed_everything
    from ..runs.policy import evaluate_policy_run, is_policy_run

    with _blame("--device"):
        check_device(args.device)
    seed_everything(args.seed or 0)
    if is_policy_run(args.run):
        result = evaluate_policy_run(args.run)
        _print(result, args.json, [f"{result['run']}: {result['name']}",
                                   *_policy_lines(result)])
        return 0
    result = evaluate_run(args.run, data_dir=args.data_dir, split=args.split, device=args.device,
                          limit=args.limit, spiking=not args.no_spiking,
                          progress=options.progress(args, "evaluate"))
    lines = _evaluate_lines(result)
    if result["metrics_spiking"] is None and not args.no_spiking:
        lines.append(f"converted spiking network: not run, the model is not fully sharp (layer "
                     f"sharpness {'/'.join(f'{s:.2f}' for s in result['sharpness'])}); "
                     f"'whetstone convert {args.run} --force' converts it as if every layer "
                     f"were at 1")
    _print(result, args.json, lines)
    return 0


def _evaluate_lines(result: dict[str, Any]) -> list[str]:
    sharp = "/".join(f"{s:.2f}" for s in result["sharpness"])
    lines = [
        f"{result['run']}: {result['dataset']} {result['split']} ({result['samples']} samples, "
        f"{result.get('task', 'classification')})",
    ]
    if result.get("metrics_conventional") is not None:
        lines += [
            f"conventional twin ({result['twin']}, never sharpened): "
            f"{_metrics_text(result['metrics_conventional'])}",
            f"conventional twin simply thresholded: "
            f"{_metrics_text(result['metrics_conventional_thresholded'])}",
        ]
    lines += [
        f"at current sharpness ({sharp}): {_metrics_text(result['metrics'])}",
        f"fully binary (every activation a step, torch): "
        f"{_metrics_text(result['metrics_binary'])}",
    ]
    if result["metrics_spiking"] is not None:
        agreement = result["agreement"]
        same = (f"same decisions as the float64 torch model for "
                f"{_pct(agreement['agreement'])}")
        if "max_abs_difference" in agreement:
            same = (f"largest difference from the float64 torch model's outputs "
                    f"{agreement['max_abs_difference']:.3g}")
        lines.append(f"converted spiking network (threshold neurons, one time step, numpy "
                     f"runtime): {_metrics_text(result['metrics_spiking'])}; {same}")
    return lines


def cmd_presets(args: argparse.Namespace) -> int:
    from . import presets_table

    if args.json:
        print(json.dumps(presets_table.preset_dicts(), indent=2))
        return 0
    print(presets_table.table())
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from ..data import load
    from ..data.sources import default_data_dir

    splits = {}
    for split in ("train-full", "test"):
        images, _labels = load(args.dataset, split, data_dir=args.data_dir)
        splits[split] = {"samples": int(images.shape[0]), "shape": list(images.shape),
                         "dtype": str(images.dtype).replace("torch.", "")}
    folder = str(args.data_dir or default_data_dir())
    _print({"dataset": args.dataset, "data_dir": folder, "splits": splits}, args.json,
           [f"{args.dataset} {split}: {tuple(info['shape'])}" for split, info in splits.items()]
           + [f"data folder: {folder}"])
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "presets": cmd_presets,
            "fetch": cmd_fetch, **spiking.COMMANDS, **recipes.COMMANDS}


USER_ERRORS = (ValueError, OSError, ImportError, ArithmeticError, TypeError, RuntimeError,
               AssertionError, MemoryError)
"""What a user's input can raise (a bad value or file, a NaN loss, a mistyped keyword, a device
torch was not built for, a file too big for memory): one line naming the problem, exit code 2,
no traceback."""

FORESEEN = (ValueError, OSError, ImportError)
"""Errors whose message is the whole story (whetstone's own errors are ``ValueError``
subclasses naming the field or file: ``ConfigError``, ``DatasetError``, ``NetworkFileError``,
``ConversionError``; an ``OSError`` names its file). The other :data:`USER_ERRORS`, and any
exception defined outside whetstone, add a hint to rerun with ``--debug``."""

DEBUG_HINT = "rerun with --debug for the traceback"

FORCE_COMMANDS = ("convert", "export")
"""Commands that take ``--force`` (convert a model below sharpness 1)."""


def cli_words(message: str, command: str) -> str:
    """A library message in the command line's words: the Python keyword ``force=True`` (of
    :func:`whetstone.conversion.to_spiking`) becomes ``--force`` for the commands that take
    it, else the ``whetstone convert --force`` that makes the network."""
    if "force=True" not in message:
        return message
    flag = "--force" if command in FORCE_COMMANDS else "'whetstone convert RUN --force'"
    return message.replace("pass force=True", f"pass {flag}").replace("force=True", flag)


def report(command: str, exc: BaseException, debug: bool = False) -> int:
    """Print ``exc`` as one line on stderr (after its traceback with ``debug``) and return the
    exit status: 2 for :data:`USER_ERRORS`, 1 for anything else (an internal error)."""
    if debug:
        traceback.print_exception(exc)
    own = type(exc).__module__.split(".")[0] == "whetstone"
    message = cli_words(" ".join(str(exc).split()), command)
    if not message:
        message = type(exc).__name__
    elif not (isinstance(exc, FORESEEN) or own):
        message = f"{type(exc).__name__}: {message}"
    if not isinstance(exc, USER_ERRORS):
        message = f"internal error: {message}"
    if not (isinstance(exc, FORESEEN) or own or debug):
        message = f"{message} ({DEBUG_HINT})"
    print(f"whetstone {command}: error: {message}", file=sys.stderr)
    return 2 if isinstance(exc, USER_ERRORS) else 1


def main(argv: list[str] | None = None) -> int:
    """Run one command line; returns the exit status (see the module docstring). Argument
    errors exit through ``SystemExit(2)`` after one line on stderr, ``--help`` through
    ``SystemExit(0)``."""
    args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt as exc:
        if debug:
            traceback.print_exception(exc)
        print(f"whetstone {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if _training_interrupted(exc):  # SIGINT/SIGTERM in training: a checkpoint was written
            print(f"whetstone {args.command}: interrupted: {exc}", file=sys.stderr)
            return 130
        return report(args.command, exc, debug)


def _training_interrupted(exc: BaseException) -> bool:
    """Is ``exc`` a :class:`whetstone.training.TrainingInterrupted`? (Looked up only if the
    training loop was imported: the CLI does not import torch for commands that need none.)"""
    loop = sys.modules.get("whetstone.training.loop")
    return loop is not None and isinstance(exc, loop.TrainingInterrupted)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
