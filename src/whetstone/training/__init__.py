"""Training: the loop (:func:`fit`), distillation from a teacher, evaluation at current and full
sharpness, history."""

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
