"""Run folders: train from a configuration, save, and rebuild a model from the folder alone.

``runs/NAME/`` holds ``config.json`` (everything needed to rebuild the model),
``model.safetensors`` (checksummed, :mod:`whetstone.runs.io`), ``metrics.jsonl`` (one line per
epoch), ``summary.json`` (final accuracies, times, versions, seed, the model's checksum) and
``sharpening.png``. It is written as a transaction (:mod:`whetstone.runs.transaction`) with a
checkpoint at every epoch end (:mod:`whetstone.runs.checkpoint`).
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..data import ArrayLoader, load, to_float
from ..presets.build import (
    TWIN,
    build_distillation,
    build_lr_scheduler,
    build_model,
    build_optimizer,
    build_sharpener,
    build_task,
    check_device,
    check_teacher,
    conventional_twin,
    gradient_clip,
)
from ..presets.config import TrainConfig
from ..presets.schema import USER_DATASET
from ..progress import Progress, as_progress, counter, iterate, stage
from ..sharpening.allocation import (
    fully_sharpened,
    get_layer_sharpness,
    is_fully_sharp,
    sharpenable_layers,
)
from ..tasks import Agreement, Task
from ..training.augment import Augmented, parse_augment
from ..training.distributed import Distributed, init_distributed
from ..training.history import History
from ..training.loop import (
    LoopState,
    TrainingError,
    TrainingInterrupted,
    epoch_line,
    evaluate_metrics,
    fit,
)
from .checkpoint import CHECKPOINT, read_checkpoint, restore_checkpoint, save_checkpoint
from .io import (
    MODEL_HASH_KEY,
    atomic_write_text,
    load_weights,
    save_weights,
    state_tensors,
    tensors_sha256,
)
from .transaction import RunFolderError, commit, partial_folder, run_lock

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
PLOT = "sharpening.png"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (same seed, same machine: same result)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds the global RNG that user code may use
    torch.manual_seed(seed)


def versions() -> dict[str, str]:
    return {"whetstone": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


@dataclass
class Split:
    """A dataset split as float tensors: ``x`` ``(N, C, H, W)`` in ``[0, 1]``, ``y`` the labels
    ``(N,)`` (or, for a segmentation set, the masks ``(N, H, W)``)."""

    x: torch.Tensor
    y: torch.Tensor


def _load_segmentation(split: str, data_dir: str | Path | None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    from ..data.segmentation import load_segmentation

    return load_segmentation(split, data_dir)


GENERATED_DATASETS = {"mnist-segmentation": _load_segmentation}
"""Datasets composed from others (uint8 images ``(N, C, H, W)`` and int64 targets)."""


def load_split(dataset: str, split: str, data_dir: str | Path | None = None,
               limit: int | None = None) -> Split:
    """Load ``split`` of ``dataset`` as floats ``/255``; ``limit`` keeps the first samples."""
    if dataset in GENERATED_DATASETS:
        images, labels = GENERATED_DATASETS[dataset](split, data_dir)
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        return Split(images.float().div_(255.0), labels.long())
    images, labels = load(dataset, split, data_dir=data_dir)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return Split(to_float(images), labels.long())


def load_data(config: TrainConfig, split: str, data_dir: str | Path | None = None,
              limit: int | None = None) -> Split:
    """``split`` of the data ``config`` trains on: a built-in dataset (:func:`load_split`), or
    the user's arrays (``dataset = "npz"``, :mod:`whetstone.data.arrays`), whose file must
    still have the sha256 the configuration recorded."""
    if config.dataset == USER_DATASET:
        from ..data.arrays import load_split_arrays

        spec = config.data_file
        x, y = load_split_arrays(spec["path"], split, sha256=spec["sha256"], limit=limit)
        return Split(x, y)
    return load_split(config.dataset, split, data_dir, limit)


def eval_batch_size(task: Task) -> int:
    """Samples per evaluation batch: 1000, or 100 for segmentation (its per-pixel scores are
    ``classes x H x W`` values per sample)."""
    return 100 if task.name == "segmentation" else 1000


def load_teacher(config: TrainConfig, device: str = "cpu") -> nn.Module | None:
    """The teacher model of ``config.teacher`` (its run folder rebuilt, eval mode), or ``None``.

    Raises ``ValueError`` if the teacher learned another dataset or number of classes.
    """
    check_teacher(config)
    if not config.teacher:
        return None
    if config.teacher["run"] == TWIN:
        raise ValueError("teacher.run = 'twin' is resolved by train_run; give a run folder")
    try:
        teacher = load_run(config.teacher["run"])
    except FileNotFoundError as exc:
        raise ValueError(f"teacher: {exc}") from None
    if teacher.config.dataset != config.dataset:
        raise ValueError(f"teacher {teacher.path} learned {teacher.config.dataset}, the student "
                         f"learns {config.dataset}")
    if int(teacher.config.key["classes"]) != int(config.key["classes"]):
        raise ValueError(f"teacher {teacher.path} has {teacher.config.key['classes']} classes, "
                         f"the student {config.key['classes']}")
    return teacher.model.to(device).eval()


def _init_from_teacher(model: nn.Module, teacher: nn.Module, config: TrainConfig) -> None:
    """Copy the teacher's parameters and BatchNorm statistics into ``model`` (same architecture);
    the student keeps its own sharpness (0) and key."""
    state = {k: v for k, v in teacher.state_dict().items() if not k.endswith("_sharpness")}
    own = model.state_dict()
    mismatched = sorted(k for k in state if k not in own or own[k].shape != state[k].shape)
    if mismatched or set(own) - set(state) - {k for k in own if k.endswith("_sharpness")}:
        raise ValueError(f"teacher.init: the teacher {config.teacher['run']} is not the student's "
                         f"architecture (mismatched tensors: {mismatched[:4]})")
    model.load_state_dict({**own, **state})


def _train_twin(config: TrainConfig, out: Path, **train_args: Any) -> Path:
    """Train (or reuse) the never-sharpened twin of ``config``; its folder.

    The twin lives beside ``out`` in ``twin-HASH/`` (HASH: of the twin's configuration), so
    recipes that differ only in how they sharpen share one twin; a finished twin there whose
    ``config.json`` equals the twin of ``config`` is reused as it is.
    """
    twin = conventional_twin(config)
    digest = hashlib.sha256(json.dumps(twin.to_dict(), sort_keys=True).encode()).hexdigest()
    folder = out.parent / f"twin-{digest[:12]}"
    progress = as_progress(train_args.get("progress", True))
    if (folder / SUMMARY).is_file() and (folder / CONFIG).is_file():
        try:
            if TrainConfig.load(folder / CONFIG).to_dict() == twin.to_dict():
                progress.line(f"conventional twin: {folder} (trained already)")
                return folder
        except ValueError:
            pass  # unreadable: train it again
    progress.line(f"conventional twin (never sharpened) first, into {folder}")
    train_run(twin, folder, **train_args)
    progress.line(f"conventional twin done; now {config.name} itself")
    return folder


def train_run(
    config: TrainConfig | None,
    out: str | Path,
    data_dir: str | Path | None = None,
    device: str = "cpu",
    progress: bool | Progress = True,
    train_limit: int | None = None,
    test_limit: int | None = None,
    plot: bool = True,
    val_limit: int | None = None,
    resume: bool = False,
    checkpoints: bool = True,
    handle_signals: bool = True,
) -> dict[str, Any]:
    """Train ``config`` and write its run folder ``out``; returns the summary.

    The model trains on the ``"train"`` split and is validated on the ``"val"`` split (the last
    5,000 images of the official training set, see :data:`whetstone.data.SPLITS`) during
    training; the finished model is scored once on the ``"test"`` split (``test_accuracy``,
    ``test_accuracy_binary``). With ``config.teacher`` the student distils from (and/or starts
    from) a trained run; ``teacher.run = "twin"`` first trains this recipe never sharpened
    into ``twin-HASH/`` beside ``out`` (or reuses it there) and uses that. ``train_limit``,
    ``val_limit`` and ``test_limit`` keep the first samples of each split (quick runs, tests);
    ``val_limit`` defaults to ``test_limit``.

    The folder is written as a transaction (:mod:`whetstone.runs.transaction`): everything is
    checked and the data loaded before anything is written, the run is built in
    ``.NAME.partial/`` beside ``out`` under an exclusive lock and swapped in at the end, so a
    rejected, failed or interrupted call leaves an existing ``out`` exactly as it was. With
    ``checkpoints`` a checkpoint (:mod:`whetstone.runs.checkpoint`) is written there at every
    epoch end; with ``handle_signals`` (in the main thread) SIGINT and SIGTERM stop training
    after the current batch, write a checkpoint and raise
    :class:`~whetstone.training.TrainingInterrupted`. ``resume=True`` continues the partial
    run of ``out`` from its checkpoint (``config`` ``None`` or equal to the partial run's;
    the data limits are the recorded ones): on the same machine the result is byte for byte
    that of an uninterrupted run.

    ``progress``: ``True`` draws tqdm bars and one line per epoch on stderr, ``False`` is
    silent; a :class:`whetstone.progress.Progress` chooses (``"log"``: one plain line per
    epoch and per evaluation stage, no bars).
    """
    out = Path(out)
    progress = as_progress(progress)
    partial = partial_folder(out)
    check_device(device)  # an unusable device fails before anything is written
    if config is not None:
        config.validate()  # also catches fields assigned after the config was made
    distributed = init_distributed(device)
    if distributed is not None and distributed.backend == "nccl":
        device = f"cuda:{distributed.local_rank}"
    main = distributed is None or distributed.is_main
    if resume:
        config, limits = _resume_arguments(config, out, partial)
        train_limit, val_limit, test_limit = (limits.get(k) for k in
                                              ("train_limit", "val_limit", "test_limit"))
        world = int(limits.get("world_size", 1))
        if world != (distributed.world_size if distributed is not None else 1):
            raise RunFolderError(f"{out}: the interrupted run trained on {world} process(es); "
                                 "resume it with as many")
    elif config is None:
        raise ValueError("train_run: a configuration is needed unless resume=True")
    if distributed is not None and config.batch_size % distributed.world_size:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the "
                         f"{distributed.world_size} processes")
    check_teacher(config)  # bad teacher settings fail before anything is written
    twin_dir = None
    if config.teacher.get("run") == TWIN or config.twin:
        twin_dir = _train_twin(config, out, data_dir=data_dir, device=device, progress=progress,
                               train_limit=train_limit, test_limit=test_limit, plot=plot,
                               val_limit=val_limit)
    if config.teacher.get("run") == TWIN:
        config = config.merged({"teacher": {"run": str(twin_dir)}})
    teacher = load_teacher(config, device)
    distillation = build_distillation(config)
    t_start = time.perf_counter()
    val_limit = val_limit if val_limit else test_limit
    train = load_data(config, "train", data_dir, train_limit)
    val = load_data(config, "val", data_dir, val_limit)
    test = load_data(config, "test", data_dir, test_limit)
    if torch.device(device).type != "cpu":  # whole dataset on the accelerator: no copy per batch
        train, val, test = (Split(d.x.to(device), d.y.to(device)) for d in (train, val, test))
    limits = {"train_limit": train_limit, "val_limit": val_limit, "test_limit": test_limit,
              "world_size": distributed.world_size if distributed is not None else 1}
    with run_lock(out) if main else nullcontext():
        if main and resume and not (partial / CHECKPOINT).is_file():
            raise RunFolderError(f"{out}: the interrupted run lost its checkpoint")
        if main and not resume:
            if partial.exists():
                shutil.rmtree(partial)  # an interrupted run nobody resumed
            partial.mkdir(parents=True)
            config.save(partial / CONFIG)
        if distributed is not None:
            distributed.barrier()  # the partial folder is ready before any rank trains
        try:
            summary = _train_into(config, partial, out, train, val, test, teacher,
                                  distillation, device,
                                  progress if main else Progress("none"), plot, resume,
                                  checkpoints, handle_signals, limits, t_start, distributed,
                                  twin_dir if config.twin else None)
        except BaseException:
            if main and not (partial / CHECKPOINT).is_file():  # nothing to resume: no trace
                shutil.rmtree(partial, ignore_errors=True)
            raise
        if main:
            commit(partial, out)
    if distributed is not None:
        distributed.barrier()  # the run is in place before any rank goes on
    return summary


def _resume_arguments(config: TrainConfig | None, out: Path,
                      partial: Path) -> tuple[TrainConfig, dict[str, Any]]:
    """The configuration and data limits of the interrupted run of ``out``."""
    if not (partial / CHECKPOINT).is_file():
        state = "is finished" if (out / WEIGHTS).is_file() else "was never started"
        raise RunFolderError(f"{out}: nothing to resume (no interrupted run in {partial}; the "
                             f"run {state})")
    saved = TrainConfig.load(partial / CONFIG)
    if config is not None and config.to_dict() != saved.to_dict():
        raise RunFolderError(f"{out}: the interrupted run was started with another "
                             f"configuration ({partial / CONFIG}); resume it without one")
    return saved, read_checkpoint(partial / CHECKPOINT).get("data", {})


@contextmanager
def _stop_on_signals(enabled: bool) -> Iterator[Callable[[], bool]]:
    """``should_stop`` for :func:`fit`: True once SIGINT or SIGTERM arrived (handlers set only
    in the main thread, restored afterwards)."""
    received: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, _frame: Any) -> None:
        received.append(signum)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield lambda: bool(received)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _train_into(config: TrainConfig, partial: Path, out: Path, train: Split, val: Split,
                test: Split, teacher: nn.Module | None, distillation: Any, device: str,
                progress: Progress, plot: bool, resume: bool, checkpoints: bool,
                handle_signals: bool, limits: dict[str, Any], t_start: float,
                distributed: Distributed | None = None,
                twin: Path | None = None) -> dict[str, Any]:
    """Train into the partial folder and write the finished run's files there (files: rank 0
    only)."""
    rank, world = (distributed.rank, distributed.world_size) if distributed else (0, 1)
    main = rank == 0
    seed_everything(config.seed)
    model = build_model(config)
    if teacher is not None and config.teacher.get("init", False):
        _init_from_teacher(model, teacher, config)
    optimizer = build_optimizer(config, model)
    sharpener = build_sharpener(config)
    scheduler = build_lr_scheduler(config, optimizer)
    train_loader: Any = ArrayLoader(train.x, train.y, config.batch_size // world, shuffle=True,
                                    seed=config.seed, shard=(rank, world))
    if config.augment not in (None, "none"):
        shift, flip = parse_augment(config.augment)
        train_loader = Augmented(train_loader, max_shift=shift, seed=config.seed + rank,
                                 flip=flip)
    task = build_task(config)
    val_loader = ArrayLoader(val.x, val.y, eval_batch_size(task))
    start = None
    if resume:
        start, _ = restore_checkpoint(partial / CHECKPOINT, model, optimizer, scheduler,
                                      sharpener, train_loader, rank=rank)
    trained: nn.Module = model
    if distributed is not None:
        from torch.nn.parallel import DistributedDataParallel

        model.to(device)
        trained = DistributedDataParallel(
            model, forward_sync_buffers=False, gradient_as_bucket_view=True,
            device_ids=[distributed.local_rank] if distributed.backend == "nccl" else None)

    def checkpoint(state: LoopState) -> None:
        if distributed is not None:  # every rank's data position and partial sums; rank 0 writes
            ranks = distributed.gather({"loader": state.loader, "loss_sum": state.loss_sum,
                                        "correct": state.correct, "seen": state.seen})
            if not main:
                return
            state = replace(state, loader={"ranks": ranks})
        save_checkpoint(partial / CHECKPOINT, state, model, optimizer, scheduler, sharpener,
                        data=limits)

    with _stop_on_signals(handle_signals) as should_stop:
        try:
            history = fit(
                trained, train_loader, config.total_epochs, optimizer, sharpener=sharpener,
                val_loader=val_loader,
                run_dir=partial if main else None, device=device, progress=progress.bars,
                on_epoch=(lambda record: progress.line(epoch_line(record, config.total_epochs)))
                if progress.lines else None,
                val_every=config.val_every,
                channels_last=any(isinstance(m, nn.Conv2d) for m in model.modules()),
                scheduler=scheduler,
                task=task,
                clip_grad_norm=gradient_clip(config),
                teacher=teacher if distillation is not None else None,
                distillation=distillation,
                precision=config.precision,
                checkpoint=checkpoint if checkpoints else None,
                resume=start,
                should_stop=should_stop,
                distributed=distributed,
            )
        except TrainingInterrupted as exc:
            raise TrainingInterrupted(
                f"{exc}; checkpoint written: continue with `whetstone train --resume {out}`",
                exc.state) from None
        except TrainingError as exc:
            kept = (" (the last good checkpoint is kept in " + str(partial) + ")"
                    if (partial / CHECKPOINT).is_file() else "")
            raise TrainingError(f"{exc}{kept}") from None
    checksum = (save_weights(model, partial / WEIGHTS,
                             metadata={"format": "whetstone-run", "version": __version__})
                if main else tensors_sha256(state_tensors(model)))
    test_loader = ArrayLoader(test.x, test.y, eval_batch_size(task))
    t_test = time.perf_counter()
    with progress.stage("test split at final sharpness", len(test.y)):
        metrics_current = evaluate_metrics(
            model, progress.iterate(test_loader, desc="test split"), device, task)
    if is_fully_sharp(model):
        metrics_binary = metrics_current
    else:
        with fully_sharpened(model), progress.stage("test split fully binary", len(test.y)):
            metrics_binary = evaluate_metrics(
                model, progress.iterate(test_loader, desc="test split, fully binary"), device,
                task)
    primary = task.meter().primary
    test_current, test_binary = metrics_current[primary], metrics_binary[primary]
    test_seconds = time.perf_counter() - t_test
    val_binary = [r.val_accuracy_binary for r in history if r.val_accuracy_binary is not None]
    summary = {
        "name": config.name,
        "dataset": config.dataset,
        "seed": config.seed,
        "epochs": len(history),
        "schedule": config.schedule.get("name"),
        "task": config.task,
        "metric": primary,
        "test_metrics": metrics_current,
        "test_metrics_binary": metrics_binary,
        "test_accuracy": test_current,
        "test_accuracy_binary": test_binary,
        "val_accuracy": history[-1].val_accuracy,
        "val_accuracy_binary": history[-1].val_accuracy_binary,
        "best_val_accuracy_binary": max(val_binary, default=None),
        "val_accuracy_before_sharpening": next(
            (r.val_accuracy for r in reversed(history)
             if r.val_accuracy is not None and max(r.sharpness) == 0.0), None),
        "final_sharpness": get_layer_sharpness(model),
        "fully_sharp": all(s >= 1.0 for s in get_layer_sharpness(model)),
        "train_samples": int(train.y.numel()),
        "val_samples": int(val.y.numel()),
        "test_samples": int(test.y.numel()),
        "splits": {"train": "train", "validation": "val", "reported": "test"},
        "teacher": config.teacher.get("run") if config.teacher else None,
        "twin": str(twin) if twin is not None else None,
        MODEL_HASH_KEY: checksum,
        "resumed": resume,
        "train_seconds": sum(r.epoch_time for r in history),
        "val_seconds": sum(r.eval_time for r in history),
        "test_seconds": test_seconds,
        "total_seconds": time.perf_counter() - t_start,
        "median_epoch_seconds": float(np.median([r.epoch_time for r in history])),
        "device": device,
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "versions": versions(),
        "command": " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    summary["processes"] = world
    if not main:
        return summary
    atomic_write_text(partial / SUMMARY, json.dumps(summary, indent=2) + "\n")
    if plot:
        from ..plotting.sharpening import plot_history

        plot_history(history, partial / PLOT, title=f"{config.name} (seed {config.seed})")
    (partial / CHECKPOINT).unlink(missing_ok=True)  # the run is complete: model.safetensors
    return summary


@dataclass
class Run:
    """A run folder loaded back: its configuration, rebuilt model and (if present) history."""

    path: Path
    config: TrainConfig
    model: nn.Module
    history: History | None


def load_run(path: str | Path) -> Run:
    """Rebuild the model of a run folder from ``config.json`` and ``model.safetensors`` alone
    (a policy run's, :mod:`whetstone.runs.policy`, gives a
    :class:`~whetstone.runs.policy.PolicyRun` with the same ``path``, ``config`` and
    ``model``)."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise FileNotFoundError(f"{path}: no {CONFIG}; is this a whetstone run folder?")
    if not (path / WEIGHTS).is_file():
        raise FileNotFoundError(f"{path}: no {WEIGHTS}; did the training finish?")
    from .policy import is_policy_run, load_policy_run

    if is_policy_run(path):
        return load_policy_run(path)  # type: ignore[return-value]
    config = TrainConfig.load(path / CONFIG)
    model = build_model(config)
    load_weights(model, path / WEIGHTS)
    model.eval()
    history = History.read_jsonl(path / METRICS) if (path / METRICS).is_file() else None
    return Run(path, config, model, history)


def _recorded_twin(path: Path) -> Path | None:
    """The conventional twin a run trained beside it (``config.twin``), if it is still there."""
    try:
        recorded = json.loads((path / SUMMARY).read_text()).get("twin")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    if not recorded:
        return None
    twin = Path(recorded)
    if not twin.is_absolute() and not twin.exists():
        twin = path.parent / twin.name
    return twin if (twin / WEIGHTS).is_file() else None


SPIKING_CHUNK = 100
"""Samples the numpy runtime takes at once in :func:`score_network` and
:func:`evaluate_run` (a bar advances after each chunk; a convolutional network runs at tens
of samples per second on one core)."""


def spiking_outputs(net: Any, x: np.ndarray, advance: Any = None,
                    chunk: int = SPIKING_CHUNK, engine: str = "numpy") -> np.ndarray:
    """The outputs of ``net`` for ``x`` by ``engine`` (the numpy runtime in float64 by
    default; another engine in its default dtype, see :func:`whetstone.runtime.run`), run
    ``chunk`` samples at a time; ``advance(n)`` (a progress counter) is called after each
    chunk."""
    from ..runtime import run as run_network

    outs = []
    dtype = np.float64 if engine == "numpy" else None
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk]
        outs.append(run_network(net, part, dtype=dtype, engine=engine))
        if advance is not None:
            advance(len(part))
    return np.concatenate(outs) if len(outs) > 1 else outs[0]


def score_network(net: Any, x: torch.Tensor, y: torch.Tensor, task: Task,
                  batch_size: int | None = None,
                  progress: Progress | None = None, engine: str = "numpy") -> dict[str, Any]:
    """Every score of ``task``'s meter for the spiking network ``net`` (the numpy runtime, in
    float64; or ``engine``, e.g. ``"fast"``, in its default dtype) on the inputs ``x`` and
    their labels or masks ``y`` (``progress``: a bar over the samples)."""
    meter = task.meter()
    step = batch_size or eval_batch_size(task)
    chunk = SPIKING_CHUNK if engine == "numpy" else max(SPIKING_CHUNK, step)
    with counter(progress, len(x), f"spiking network ({engine})") as advance:
        for start in range(0, len(x), step):
            xb, yb = x[start:start + step], y[start:start + step]
            out = torch.from_numpy(spiking_outputs(net, xb.numpy(), advance, chunk, engine))
            meter.update(out, task.target(xb, yb))
    return meter.compute()


def evaluate_run(
    path: str | Path,
    data_dir: str | Path | None = None,
    split: str = "test",
    device: str = "cpu",
    limit: int | None = None,
    spiking: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The task's scores of a run's model at its saved sharpness and fully binary, on ``split``.

    A run trained with ``config.twin`` also reports its conventional twin:
    ``metrics_conventional`` (as trained) and ``metrics_conventional_thresholded`` (every
    activation a step, no sharpening), ``None`` otherwise.

    ``metrics``, ``metrics_binary`` (every score of the task's meter: accuracy; MSE and PSNR;
    pixel accuracy and IoU) and, under ``metric``'s name, the primary score in ``accuracy`` and
    ``accuracy_binary``. With ``spiking`` (and a fully sharpened model) the model is also
    converted to a :class:`~whetstone.runtime.SpikingNetwork` of threshold neurons and run by
    the numpy runtime in float64: ``metrics_spiking`` (``accuracy_spiking``), and
    ``agreement``, its decisions against the torch model's run in float64 (the same
    function: ``agreement`` the fraction of equal classes, or pixels; for real-valued
    readouts also ``max_abs_difference``); ``spiking_agreement`` is ``agreement["agreement"]``.
    ``progress`` (a :class:`whetstone.progress.Progress`) shows a bar per stage, or in mode
    ``"log"`` one line per stage.
    """
    import copy

    run = load_run(path)
    task = build_task(run.config)
    data = load_data(run.config, split, data_dir, limit)
    loader = ArrayLoader(data.x, data.y, eval_batch_size(task))
    run.model.to(device)
    n = int(len(data.x))

    def scored(model: nn.Module, what: str) -> dict[str, Any]:
        with stage(progress, what, n):
            return evaluate_metrics(model, iterate(progress, loader, desc=what, unit="batch"),
                                    device, task)

    metrics = scored(run.model, "at current sharpness (torch)")
    with fully_sharpened(run.model):
        metrics_binary = scored(run.model, "fully binary (torch)")
    primary = task.meter().primary
    conventional = conventional_thresholded = None
    twin = _recorded_twin(run.path)
    if twin is not None:
        twin_model = load_run(twin).model.to(device)
        conventional = scored(twin_model, "conventional twin (torch)")
        with fully_sharpened(twin_model):
            conventional_thresholded = scored(twin_model, "conventional twin thresholded")
    result: dict[str, Any] = {
        "run": str(run.path),
        "dataset": run.config.dataset,
        "task": run.config.task,
        "metric": primary,
        "split": split,
        "samples": int(len(data.x)),
        "sharpness": get_layer_sharpness(run.model),
        "layers": len(sharpenable_layers(run.model)),
        "twin": str(twin) if twin is not None else None,
        "metrics_conventional": conventional,
        "metrics_conventional_thresholded": conventional_thresholded,
        "metrics": metrics,
        "metrics_binary": metrics_binary,
        "metrics_spiking": None,
        "agreement": None,
        "accuracy": metrics[primary],
        "accuracy_binary": metrics_binary[primary],
        "accuracy_spiking": None,
        "spiking_agreement": None,
    }
    if spiking and is_fully_sharp(run.model):
        from ..conversion import to_spiking

        model = run.model.cpu().eval()
        from ..presets.build import input_shape

        net = to_spiking(model, torch.zeros((1, *input_shape(run.config))))
        exact = copy.deepcopy(model).double()
        meter, agreement = task.meter(), Agreement(task)
        what = "converted spiking network (numpy) against float64 torch"
        with torch.no_grad(), stage(progress, what, n), \
                counter(progress, n, "spiking network (numpy)") as advance:
            for xb, yb in loader:
                ours = torch.from_numpy(spiking_outputs(net, xb.numpy(), advance))
                meter.update(ours, task.target(xb, yb))
                agreement.update(exact(xb.double()), ours)
        result["metrics_spiking"] = meter.compute()
        result["agreement"] = agreement.compute()
        result["accuracy_spiking"] = result["metrics_spiking"][primary]
        result["spiking_agreement"] = result["agreement"]["agreement"]
    return result
