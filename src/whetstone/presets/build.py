"""Turning a :class:`TrainConfig` into a model, an optimizer, a sharpener and a data transform."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..nn.decode import key_generator
from ..nn.surrogate import make_surrogate
from ..sharpening.schedules import Sharpener, UniformAllocation, make_sharpener
from ..tasks import Classification, Reconstruction, Segmentation, Task
from ..training.distill import Distillation
from .architectures import (
    ARCHITECTURE_INPUTS,
    ARCHITECTURE_TASKS,
    ARCHITECTURES,
    activation_factory,
)
from .config import TrainConfig
from .schema import (
    ALLOCATIONS,
    DATASET_SHAPES,
    TEACHER_KEYS,
    ConfigError,
    check_teacher_table,
    dataset_classes,
    dataset_shape,
)

__all__ = ["ALLOCATIONS", "CLIP_GRAD_NORM", "DATASET_SHAPES", "DEFAULT_LR", "OPTIMIZERS",
           "TEACHER_KEYS", "TWIN", "build_distillation", "build_key", "build_lr_scheduler",
           "build_model", "build_optimizer", "input_shape", "build_sharpener",
           "build_task", "check_device", "check_teacher",
           "conventional_twin", "epoch_span", "fit_schedule", "gradient_clip",
           "optimizer_arguments", "sharpenable_count", "sharpening_window"]


def build_key(config: TrainConfig) -> torch.Tensor:
    """The class key of ``config`` (seeded by ``key.seed``, else by the run's seed)."""
    k = config.key
    seed = k.get("seed", config.seed)
    return key_generator(int(k["classes"]), int(k["width"]), bool(k.get("overlapping", True)),
                         seed=seed)


def input_shape(config: TrainConfig) -> tuple[int, ...]:
    """The batch-free input shape of ``config``'s data (the user's data file's for
    ``dataset = "npz"``)."""
    return dataset_shape(config.dataset, config.data_file)


def build_model(config: TrainConfig, plain: bool = False) -> nn.Module:
    """The model of ``config``; ``plain=True`` swaps every sharpenable activation for ReLU
    (not for ``arch = "custom"``, whose function builds its own layers)."""
    spec = dict(config.model)
    arch = spec.pop("arch")
    try:
        builder = ARCHITECTURES[arch]
    except KeyError:
        choices = sorted(ARCHITECTURES)
        raise ValueError(f"unknown architecture {arch!r}; choose from {choices}") from None
    shape = input_shape(config)
    act = activation_factory(config.activation, make_surrogate(config.surrogate), plain=plain)
    sizes = {"in_features": lambda: math.prod(shape), "in_channels": lambda: shape[0],
             "image_size": lambda: shape[1],
             "classes": lambda: dataset_classes(config.dataset, config.data_file)}
    for keyword in ARCHITECTURE_INPUTS[arch]:
        spec.setdefault(keyword, sizes[keyword]())
    torch.manual_seed(config.seed)
    if ARCHITECTURE_TASKS[arch] == "classification":
        return builder(build_key(config), act=act, **spec)
    return builder(act=act, **spec)


def build_task(config: TrainConfig) -> Task:
    """The :class:`~whetstone.tasks.Task` of ``config.task``: classification with the
    configuration's label smoothing, reconstruction, or segmentation over the dataset's
    classes."""
    if config.task == "classification":
        return Classification(label_smoothing=float(config.label_smoothing))
    if config.task == "reconstruction":
        return Reconstruction()
    if config.task == "segmentation":
        weight = float(config.task_options.get("background_weight", 1.0))
        return Segmentation(classes=dataset_classes(config.dataset, config.data_file),
                            background_weight=weight)
    raise ConfigError(f"unknown task {config.task!r}", "task")


OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adadelta": torch.optim.Adadelta,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}
"""The optimizers ``optimizer.name`` may name; ``optimizer`` may hold their keyword arguments."""
_OPTIMIZERS = OPTIMIZERS  # the old private name

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


def optimizer_arguments(
    config: TrainConfig,
) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    """The optimizer class of ``config.optimizer`` and its keyword arguments (``name`` and
    ``clip_grad_norm`` removed; ``sgd`` defaults to momentum 0.9)."""
    spec: dict[str, Any] = dict(config.optimizer)
    spec.pop(CLIP_GRAD_NORM, None)
    name = spec.pop("name")
    try:
        cls = OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown optimizer {name!r}; choose from {sorted(OPTIMIZERS)}",
                          "optimizer.name") from None
    if name == "sgd":
        spec.setdefault("momentum", 0.9)
    return cls, spec


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Optimizer from ``config.optimizer`` (``name``, ``lr``, other keyword arguments).

    ``sgd`` defaults to momentum 0.9. ``clip_grad_norm`` is not passed to the optimizer (see
    :func:`gradient_clip`). The keywords were checked against the optimizer's signature when
    the configuration was made (:func:`whetstone.presets.schema.validate_config`).
    """
    cls, spec = optimizer_arguments(config)
    return cls(model.parameters(), **spec)


def build_sharpener(config: TrainConfig) -> Sharpener | None:
    """Sharpener from ``config.schedule``; ``None`` when the schedule is ``"none"``.

    ``schedule.allocation`` (default ``"bottom-up"``) set to ``"uniform"`` wraps the schedule in
    :class:`UniformAllocation`: same timing, every layer at the same sharpness.
    """
    spec = dict(config.schedule)
    name = spec.pop("name")
    allocation = spec.pop("allocation", "bottom-up")
    if allocation not in ALLOCATIONS:
        raise ConfigError(f"unknown schedule allocation {allocation!r}; choose from "
                          f"{ALLOCATIONS}", "schedule.allocation")
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


TWIN = "twin"
"""``teacher.run`` value that means: this recipe's :func:`conventional_twin`, trained first."""


def conventional_twin(config: TrainConfig) -> TrainConfig:
    """The same recipe never sharpened: schedule ``none`` (sharpness 0 throughout), no
    surrogate, no teacher; same network, seed, data, optimizer and epochs."""
    data = config.merged({"schedule": {"name": "none"}, "surrogate": None}).to_dict()
    data["teacher"] = {}
    data["twin"] = False
    return TrainConfig.from_dict(data)


def check_teacher(config: TrainConfig) -> None:
    """Raise :class:`~whetstone.presets.ConfigError` (a ``ValueError``) naming the field if
    ``config`` is malformed: the whole configuration is checked again
    (:meth:`TrainConfig.validate`; fields assigned after it was made included), then the
    ``teacher`` table (:func:`~whetstone.presets.schema.check_teacher_table`)."""
    config.validate()
    check_teacher_table(config.teacher)
    build_distillation(config)


def check_device(device: str) -> None:
    """Raise :class:`~whetstone.presets.ConfigError` (field ``device``) unless torch can put a
    tensor on ``device`` here: a malformed name (``"gpu"``), a device type torch was not built
    for (``"cuda"`` on a CPU-only torch), or an index past the devices present."""
    if not isinstance(device, str) or not device:
        raise ConfigError(f"must name a torch device such as 'cpu' or 'cuda', got {device!r}",
                          "device")
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"not a torch device {device!r} (e.g. 'cpu', 'cuda', 'cuda:1', "
                          f"'mps')", "device") from None
    if parsed.type == "cpu":
        return
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            why = (f"this torch ({torch.__version__}) was built without CUDA"
                   if torch.version.cuda is None else "no CUDA GPU is visible")
            raise ConfigError(f"{device!r} is not available: {why}; use 'cpu'", "device")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ConfigError(f"{device!r} is not available: {count} CUDA device(s) present "
                              f"(cuda:0 to cuda:{count - 1})", "device")
    try:
        torch.empty(1, device=parsed)
    except (RuntimeError, AssertionError, ValueError, TypeError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"{device!r} is not available here: {message}", "device") from None


def build_distillation(config: TrainConfig) -> Distillation | None:
    """The :class:`Distillation` of ``config.teacher``; ``None`` without a teacher or with
    ``distill = false``."""
    spec = config.teacher
    if not spec or not spec.get("distill", True):
        return None
    defaults = Distillation()
    return Distillation(temperature=float(spec.get("temperature", defaults.temperature)),
                        weight=float(spec.get("weight", defaults.weight)))


def sharpenable_count(config: TrainConfig) -> int:
    """How many sharpenable layers the model of ``config`` has (the model is built once)."""
    from ..sharpening.allocation import sharpenable_layers

    return len(sharpenable_layers(build_model(config)))


def sharpening_window(config: TrainConfig, layers: int | None = None
                      ) -> tuple[float, float] | None:
    """When the schedule of ``config`` sharpens: ``(begin, end)`` in epochs elapsed, from the
    first layer leaving sharpness 0 to the last one reaching 1 (``layers``: the model's
    sharpenable layers, counted from the model when not given). ``None`` when no timetable
    exists: schedule ``none`` (never sharpens) or ``adaptive`` (driven by the loss).

    ``simple``: ``start_epoch`` to ``start_epoch + steps * layers`` (``steps`` with
    ``bottom_up = false``); ``scheduled``: ``start`` to ``start + (layers - 1) (duration +
    intermission) + duration`` (:meth:`~whetstone.sharpening.ScheduledSharpener.end_epoch`).
    """
    spec = config.schedule
    name = spec.get("name")
    if name not in ("simple", "scheduled"):
        return None
    n = sharpenable_count(config) if layers is None else int(layers)
    if name == "simple":
        per_layer = n if spec.get("bottom_up", True) else 1
        start = float(spec["start_epoch"])
        return start, start + float(spec.get("steps", 4)) * per_layer
    start = float(spec["start"])
    duration, gap = float(spec["duration"]), float(spec.get("intermission", 0))
    return start, start + (n - 1) * (duration + gap) + duration


def epoch_span(window: tuple[float, float]) -> str:
    """``(begin, end)`` in epochs elapsed as 1-based epochs, e.g. ``(5, 20)``: ``"6-20"``."""
    first, last = math.floor(window[0]) + 1, max(math.ceil(window[1]), math.floor(window[0]) + 1)
    return f"{first}" if first == last else f"{first}-{last}"


def fit_schedule(config: TrainConfig, layers: int | None = None) -> TrainConfig:
    """``config`` with its schedule scaled so that every layer reaches sharpness 1 by the end
    of ``config.epochs`` (the fine-tuning epochs then follow at sharpness 1); ``config``
    itself when it fits already or has no timetable (:func:`sharpening_window`).

    ``scheduled``: ``start``, ``duration`` and ``intermission`` multiplied by ``epochs /
    end`` (rounded down to 1/1000 epoch). ``simple`` counts whole epochs: ``steps`` and
    ``start_epoch`` scaled down alike (``steps`` at least 1, ``start_epoch`` lowered until it
    fits). Raises :class:`~whetstone.presets.ConfigError` (field ``epochs``) when ``simple``
    cannot fit: it needs at least one epoch per layer.
    """
    n = sharpenable_count(config) if layers is None else int(layers)
    window = sharpening_window(config, n)
    epochs = config.epochs
    if window is None or window[1] <= epochs:
        return config
    factor = epochs / window[1]
    spec = dict(config.schedule)
    if spec["name"] == "simple":
        per_layer = n if spec.get("bottom_up", True) else 1
        if per_layer > epochs:
            raise ConfigError(f"the simple schedule sharpens {n} layers one after another, "
                              f"at least one epoch each: it needs {per_layer} epochs, got "
                              f"{epochs} (the scheduled schedule takes fractions of an "
                              f"epoch)", "epochs")
        steps = max(1, math.floor(int(spec.get("steps", 4)) * factor))
        steps = min(steps, epochs // per_layer)
        start = min(math.floor(int(spec["start_epoch"]) * factor), epochs - steps * per_layer)
        spec.update(start_epoch=start, steps=steps)
    else:
        def down(value: float) -> float:
            return math.floor(value * factor * 1000) / 1000

        spec.update(start=down(float(spec["start"])),
                    intermission=down(float(spec.get("intermission", 0))))
        duration = down(float(spec["duration"]))
        spec["duration"] = duration if duration > 0 else float(spec["duration"]) * factor
    return config.merged({"schedule": spec})
