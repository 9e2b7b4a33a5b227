"""The original's examples as named, runnable configurations, and their builders.

Configurations are checked against a schema when they are made, loaded or merged; anything
refused raises :class:`ConfigError` (a ``ValueError``) whose message names the field by its
dotted path (``optimizer.lr``) and the file or command-line option it came from.
"""

from .architectures import ARCHITECTURES, dense, vgg_cnn, whetstone_cnn
from .build import (
    build_key,
    build_lr_scheduler,
    build_model,
    build_optimizer,
    build_sharpener,
    check_device,
)
from .config import TrainConfig, read_toml
from .registry import PRESETS, get_preset
from .schema import ConfigError, validate_config

__all__ = [
    "ARCHITECTURES",
    "ConfigError",
    "PRESETS",
    "TrainConfig",
    "build_key",
    "build_lr_scheduler",
    "build_model",
    "build_optimizer",
    "build_sharpener",
    "check_device",
    "dense",
    "get_preset",
    "read_toml",
    "validate_config",
    "vgg_cnn",
    "whetstone_cnn",
]
