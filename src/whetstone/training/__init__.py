"""Training: the loop (:func:`fit`) and its callbacks, distillation from a teacher, evaluation
at current and full sharpness, history."""

from .callbacks import (
    Callback,
    EpochLines,
    GradientClipping,
    MetricsLogger,
    OnEpochRecord,
    StopWhenSharp,
)
from .distill import Distillation, distillation_loss
from .history import EpochRecord, History, MetricsLog
from .loop import (
    LoopState,
    TrainingError,
    TrainingInterrupted,
    evaluate,
    evaluate_binary,
    fit,
)

__all__ = [
    "Callback",
    "EpochLines",
    "GradientClipping",
    "MetricsLogger",
    "OnEpochRecord",
    "StopWhenSharp",
    "Distillation",
    "EpochRecord",
    "History",
    "LoopState",
    "MetricsLog",
    "TrainingError",
    "TrainingInterrupted",
    "distillation_loss",
    "evaluate",
    "evaluate_binary",
    "fit",
]
