"""Tasks: what a network learns and how it is scored (classification, reconstruction,
segmentation). :data:`TASKS` maps a configuration's ``task`` name to its class; reinforcement
learning has its own loop (:mod:`whetstone.rl`)."""

from .base import Agreement, Meter, Task
from .classification import AccuracyMeter, Classification
from .reconstruction import Reconstruction, ReconstructionMeter, psnr
from .segmentation import ConfusionMeter, Segmentation

TASKS: dict[str, type[Task]] = {
    cls.name: cls for cls in (Classification, Reconstruction, Segmentation)}
"""The supervised tasks by name."""

__all__ = [
    "TASKS",
    "AccuracyMeter",
    "Agreement",
    "Classification",
    "ConfusionMeter",
    "Meter",
    "Reconstruction",
    "ReconstructionMeter",
    "Segmentation",
    "Task",
    "psnr",
]
