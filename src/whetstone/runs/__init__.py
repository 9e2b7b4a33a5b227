"""Run folders: train a configuration into ``runs/NAME/`` and load it back."""

from .folder import Run, evaluate_run, load_run, load_split, seed_everything, train_run
from .io import atomic_write_text, load_weights, save_weights

__all__ = [
    "Run",
    "atomic_write_text",
    "evaluate_run",
    "load_run",
    "load_split",
    "load_weights",
    "save_weights",
    "seed_everything",
    "train_run",
]
