"""Training: the loop (:func:`fit`), evaluation at current and full sharpness, history."""

from .history import EpochRecord, History, MetricsLog
from .loop import TrainingError, evaluate, evaluate_binary, fit

__all__ = [
    "EpochRecord",
    "History",
    "MetricsLog",
    "TrainingError",
    "evaluate",
    "evaluate_binary",
    "fit",
]
