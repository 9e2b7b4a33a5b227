"""Turning a :class:`TrainConfig` into a model, an optimizer, a sharpener and a data transform."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..nn.decode import key_generator
from ..nn.surrogate import make_surrogate
from ..sharpening.schedules import Sharpener, UniformAllocation, make_sharpener
from ..training.distill import Distillation
from .architectures import ARCHITECTURES, activation_factory
from .config import TrainConfig

DATASET_SHAPES: dict[str, tuple[int, int, int]] = {
    "mnist": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "cifar100": (3, 32, 32),
}


def build_key(config: TrainConfig) -> torch.Tensor:
    """The class key of ``config`` (seeded by ``key.seed``, else by the run's seed)."""
    k = config.key
    seed = k.get("seed", config.seed)
    return key_generator(int(k["classes"]), int(k["width"]), bool(k.get("overlapping", True)),
                         seed=seed)


def build_model(config: TrainConfig, plain: bool = False) -> nn.Sequential:
    """The model of ``config``; ``plain=True`` swaps every sharpenable activation for ReLU."""
    spec = dict(config.model)
    arch = spec.pop("arch")
    try:
        builder = ARCHITECTURES[arch]
    except KeyError:
        choices = sorted(ARCHITECTURES)
        raise ValueError(f"unknown architecture {arch!r}; choose from {choices}") from None
    channels, height, width = DATASET_SHAPES[config.dataset]
    act = activation_factory(config.activation, make_surrogate(config.surrogate), plain=plain)
    if arch == "dense":
        spec.setdefault("in_features", channels * height * width)
    else:
        spec.setdefault("in_channels", channels)
        spec.setdefault("image_size", height)
    torch.manual_seed(config.seed)
    return builder(build_key(config), act=act, **spec)


_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adadelta": torch.optim.Adadelta,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}

DEFAULT_LR: dict[str, float] = {"adadelta": 4.0, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3,
                                "sgd": 0.05}
"""Learning rate used when an optimizer is chosen without one (Adadelta: the original's 4.0)."""


CLIP_GRAD_NORM = "clip_grad_norm"
"""Key of ``config.optimizer`` that is not the optimizer's: the gradient-norm bound of
:func:`whetstone.training.fit` (absent: no clipping)."""


def gradient_clip(config: TrainConfig) -> float | None:
    """The gradient-norm bound of ``config`` (``optimizer.clip_grad_norm``), ``None`` if unset."""
    value = config.optimizer.get(CLIP_GRAD_NORM)
    return None if value is None else float(value)


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Optimizer from ``config.optimizer`` (``name``, ``lr``, other keyword arguments).

    ``sgd`` defaults to momentum 0.9. ``clip_grad_norm`` is not passed to the optimizer (see
    :func:`gradient_clip`).
    """
    spec: dict[str, Any] = dict(config.optimizer)
    spec.pop(CLIP_GRAD_NORM, None)
    name = spec.pop("name")
    try:
        cls = _OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose from {sorted(_OPTIMIZERS)}") from None
    if name == "sgd":
        spec.setdefault("momentum", 0.9)
    return cls(model.parameters(), **spec)


ALLOCATIONS = ("bottom-up", "uniform")
"""Values of ``schedule.allocation``: how a schedule's model sharpness is spread over layers."""


def build_sharpener(config: TrainConfig) -> Sharpener | None:
    """Sharpener from ``config.schedule``; ``None`` when the schedule is ``"none"``.

    ``schedule.allocation`` (default ``"bottom-up"``) set to ``"uniform"`` wraps the schedule in
    :class:`UniformAllocation`: same timing, every layer at the same sharpness.
    """
    spec = dict(config.schedule)
    name = spec.pop("name")
    allocation = spec.pop("allocation", "bottom-up")
    if allocation not in ALLOCATIONS:
        raise ValueError(f"unknown schedule allocation {allocation!r}; choose from {ALLOCATIONS}")
    if name in (None, "none"):
        return None
    sharpener = make_sharpener(name, **spec)
    return UniformAllocation(sharpener) if allocation == "uniform" else sharpener


def build_lr_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-epoch learning-rate schedule of ``config.lr_schedule``."""
    if config.lr_schedule in (None, "none", "constant"):
        return None
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.total_epochs)
    raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}; choose 'cosine' or none")


TEACHER_KEYS = ("run", "temperature", "weight", "init", "distill")
"""Keys of ``config.teacher`` (see :class:`~whetstone.presets.TrainConfig`)."""

TWIN = "twin"
"""``teacher.run`` value that means: this recipe's :func:`conventional_twin`, trained first."""


def conventional_twin(config: TrainConfig) -> TrainConfig:
    """The same recipe never sharpened: schedule ``none`` (sharpness 0 throughout), no
    surrogate, no teacher; same network, seed, data, optimizer and epochs."""
    data = config.merged({"schedule": {"name": "none"}, "surrogate": None}).to_dict()
    data["teacher"] = {}
    return TrainConfig.from_dict(data)


def check_teacher(config: TrainConfig) -> None:
    """Raise ``ValueError`` naming the problem if ``config.teacher`` is malformed."""
    spec = config.teacher
    if not spec:
        return
    unknown = sorted(set(spec) - set(TEACHER_KEYS))
    if unknown:
        raise ValueError(f"unknown teacher keys {unknown}; known: {list(TEACHER_KEYS)}")
    if not isinstance(spec.get("run"), str) or not spec["run"]:
        raise ValueError("teacher.run must name the teacher's run folder")
    if not (spec.get("distill", True) or spec.get("init", False)):
        raise ValueError("teacher: distill and init are both off; drop the teacher instead")
    build_distillation(config)


def build_distillation(config: TrainConfig) -> Distillation | None:
    """The :class:`Distillation` of ``config.teacher``; ``None`` without a teacher or with
    ``distill = false``."""
    spec = config.teacher
    if not spec or not spec.get("distill", True):
        return None
    defaults = Distillation()
    return Distillation(temperature=float(spec.get("temperature", defaults.temperature)),
                        weight=float(spec.get("weight", defaults.weight)))
