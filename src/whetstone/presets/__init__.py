"""The original's examples as named, runnable configurations, and their builders."""

from .architectures import ARCHITECTURES, dense, vgg_cnn, whetstone_cnn
from .build import build_key, build_lr_scheduler, build_model, build_optimizer, build_sharpener
from .config import TrainConfig, read_toml
from .registry import PRESETS, get_preset

__all__ = [
    "ARCHITECTURES",
    "PRESETS",
    "TrainConfig",
    "build_key",
    "build_lr_scheduler",
    "build_model",
    "build_optimizer",
    "build_sharpener",
    "dense",
    "get_preset",
    "read_toml",
    "vgg_cnn",
    "whetstone_cnn",
]
