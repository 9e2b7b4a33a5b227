"""Run folders: train a configuration into ``runs/NAME/`` (transactionally, with checkpoints
and exact resume), load it back, and keep the files derived from its model in step."""

from .checkpoint import CheckpointError
from .derived import StaleFileError, check_derived, convert_run, model_hash, spiking_network
from .folder import (
    Run,
    evaluate_run,
    load_data,
    load_run,
    load_split,
    seed_everything,
    train_run,
)
from .io import WeightsFileError, atomic_write_text, load_weights, save_weights
from .transaction import RunFolderError

__all__ = [
    "CheckpointError",
    "Run",
    "RunFolderError",
    "StaleFileError",
    "WeightsFileError",
    "atomic_write_text",
    "check_derived",
    "convert_run",
    "evaluate_run",
    "load_run",
    "load_data",
    "load_split",
    "load_weights",
    "model_hash",
    "save_weights",
    "seed_everything",
    "spiking_network",
    "train_run",
]
