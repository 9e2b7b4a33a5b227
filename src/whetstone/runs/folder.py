"""Run folders: train from a configuration, save, and rebuild a model from the folder alone.

``runs/NAME/`` holds ``config.json`` (everything needed to rebuild the model),
``model.safetensors``, ``metrics.jsonl`` (one line per epoch), ``summary.json`` (final
accuracies, times, versions, seed) and ``sharpening.png``.
"""

from __future__ import annotations

import json
import platform
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..data import ArrayLoader, load, to_float
from ..presets.build import (
    build_lr_scheduler,
    build_model,
    build_optimizer,
    build_sharpener,
    gradient_clip,
)
from ..presets.config import TrainConfig
from ..sharpening.allocation import get_layer_sharpness, is_fully_sharp, sharpenable_layers
from ..training.augment import Augmented, parse_augment
from ..training.history import History
from ..training.loop import evaluate, evaluate_binary, fit
from .io import atomic_write_text, load_weights, save_weights

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
    """A dataset split as float tensors: ``x`` ``(N, C, H, W)`` in ``[0, 1]``, ``y`` ``(N,)``."""

    x: torch.Tensor
    y: torch.Tensor


def load_split(dataset: str, split: str, data_dir: str | Path | None = None,
               limit: int | None = None) -> Split:
    """Load ``split`` of ``dataset`` as floats ``/255``; ``limit`` keeps the first samples."""
    images, labels = load(dataset, split, data_dir=data_dir)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return Split(to_float(images), labels.long())


def train_run(
    config: TrainConfig,
    out: str | Path,
    data_dir: str | Path | None = None,
    device: str = "cpu",
    progress: bool = True,
    train_limit: int | None = None,
    test_limit: int | None = None,
    plot: bool = True,
) -> dict[str, Any]:
    """Train ``config`` and write its run folder ``out``; returns the summary.

    ``train_limit`` / ``test_limit`` keep the first samples of each split (quick runs, tests).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / CONFIG)
    seed_everything(config.seed)
    t_start = time.perf_counter()
    train = load_split(config.dataset, "train", data_dir, train_limit)
    test = load_split(config.dataset, "test", data_dir, test_limit)
    if torch.device(device).type != "cpu":  # whole dataset on the accelerator: no copy per batch
        train = Split(train.x.to(device), train.y.to(device))
        test = Split(test.x.to(device), test.y.to(device))
    model = build_model(config)
    optimizer = build_optimizer(config, model)
    sharpener = build_sharpener(config)
    train_loader: Any = ArrayLoader(train.x, train.y, config.batch_size, shuffle=True,
                                    seed=config.seed)
    if config.augment not in (None, "none"):
        shift, flip = parse_augment(config.augment)
        train_loader = Augmented(train_loader, max_shift=shift, seed=config.seed, flip=flip)
    test_loader = ArrayLoader(test.x, test.y, 1000)

    history = fit(
        model, train_loader, config.total_epochs, optimizer, sharpener=sharpener,
        val_loader=test_loader,
        run_dir=out, device=device, progress=progress, val_every=config.val_every,
        channels_last=any(isinstance(m, nn.Conv2d) for m in model.modules()),
        scheduler=build_lr_scheduler(config, optimizer),
        loss_fn=torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
        clip_grad_norm=gradient_clip(config),
    )
    save_weights(model, out / WEIGHTS, metadata={"format": "whetstone-run", "version": __version__})
    final_current = history[-1].val_accuracy
    final_binary = history[-1].val_accuracy_binary
    summary = {
        "name": config.name,
        "dataset": config.dataset,
        "seed": config.seed,
        "epochs": len(history),
        "schedule": config.schedule.get("name"),
        "test_accuracy": final_current,
        "test_accuracy_binary": final_binary,
        "best_test_accuracy_binary": max(
            (r.val_accuracy_binary for r in history if r.val_accuracy_binary is not None),
            default=None,
        ),
        "test_accuracy_before_sharpening": next(
            (r.val_accuracy for r in reversed(history)
             if r.val_accuracy is not None and max(r.sharpness) == 0.0), None),
        "final_sharpness": get_layer_sharpness(model),
        "fully_sharp": all(s >= 1.0 for s in get_layer_sharpness(model)),
        "train_samples": int(train.y.numel()),
        "test_samples": int(test.y.numel()),
        "train_seconds": sum(r.epoch_time for r in history),
        "total_seconds": time.perf_counter() - t_start,
        "median_epoch_seconds": float(np.median([r.epoch_time for r in history])),
        "device": device,
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "versions": versions(),
        "command": " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
    if plot:
        from ..plotting.sharpening import plot_history

        plot_history(history, out / PLOT, title=f"{config.name} (seed {config.seed})")
    return summary


@dataclass
class Run:
    """A run folder loaded back: its configuration, rebuilt model and (if present) history."""

    path: Path
    config: TrainConfig
    model: nn.Sequential
    history: History | None


def load_run(path: str | Path) -> Run:
    """Rebuild the model of a run folder from ``config.json`` and ``model.safetensors`` alone."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise FileNotFoundError(f"{path}: no {CONFIG}; is this a whetstone run folder?")
    if not (path / WEIGHTS).is_file():
        raise FileNotFoundError(f"{path}: no {WEIGHTS}; did the training finish?")
    config = TrainConfig.load(path / CONFIG)
    model = build_model(config)
    load_weights(model, path / WEIGHTS)
    model.eval()
    history = History.read_jsonl(path / METRICS) if (path / METRICS).is_file() else None
    return Run(path, config, model, history)


def evaluate_run(
    path: str | Path,
    data_dir: str | Path | None = None,
    split: str = "test",
    device: str = "cpu",
    limit: int | None = None,
    spiking: bool = True,
) -> dict[str, Any]:
    """Accuracy of a run's model at its saved sharpness and fully binary, on ``split``.

    With ``spiking`` (and a fully sharpened model) the model is also converted to a
    :class:`~whetstone.runtime.SpikingNetwork` of threshold neurons and run by the numpy
    runtime: ``accuracy_spiking`` and ``spiking_agreement`` (the fraction of samples whose
    predicted class equals the torch model's).
    """
    run = load_run(path)
    data = load_split(run.config.dataset, split, data_dir, limit)
    loader = ArrayLoader(data.x, data.y, 1000)
    run.model.to(device)
    result: dict[str, Any] = {
        "run": str(run.path),
        "dataset": run.config.dataset,
        "split": split,
        "samples": int(data.y.numel()),
        "sharpness": get_layer_sharpness(run.model),
        "layers": len(sharpenable_layers(run.model)),
        "accuracy": evaluate(run.model, loader, device),
        "accuracy_binary": evaluate_binary(run.model, loader, device),
        "accuracy_spiking": None,
        "spiking_agreement": None,
    }
    if spiking and is_fully_sharp(run.model):
        from ..conversion import to_spiking
        from ..runtime import predict

        net = to_spiking(run.model.cpu())
        ours = predict(net, data.x.numpy())
        with torch.no_grad():
            torch_pred = torch.cat([run.model(xb).argmax(1) for xb, _ in loader]).numpy()
        result["accuracy_spiking"] = float((ours == data.y.numpy()).mean())
        result["spiking_agreement"] = float((ours == torch_pred).mean())
    return result
