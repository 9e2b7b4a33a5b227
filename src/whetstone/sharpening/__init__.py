"""Sharpening: allocating sharpness over layers (bottom-up or uniform) and the schedules."""

from .allocation import (
    bottom_up,
    fully_sharpened,
    get_layer_sharpness,
    is_fully_sharp,
    set_layer_sharpness,
    set_model_sharpness,
    sharpenable_layers,
    uniform,
)
from .schedules import (
    SHARPENERS,
    AdaptiveSharpener,
    ScheduledSharpener,
    Sharpener,
    SimpleSharpener,
    StepSharpener,
    UniformAllocation,
    make_sharpener,
)

__all__ = [
    "SHARPENERS",
    "AdaptiveSharpener",
    "ScheduledSharpener",
    "Sharpener",
    "SimpleSharpener",
    "StepSharpener",
    "UniformAllocation",
    "bottom_up",
    "fully_sharpened",
    "get_layer_sharpness",
    "is_fully_sharp",
    "make_sharpener",
    "set_layer_sharpness",
    "set_model_sharpness",
    "sharpenable_layers",
    "uniform",
]
