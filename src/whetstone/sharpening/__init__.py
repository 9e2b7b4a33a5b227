"""Sharpening: allocating sharpness over layers (bottom-up or uniform), the schedules, and
:func:`sharpen` (a trained ReLU network to a calibrated sharpenable one)."""

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
from .calibration import SharpenError
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
from .swap import ACTIVATIONS, PopulationHead, register_activation, sharpen, swap_activations

__all__ = [
    "ACTIVATIONS",
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
    "PopulationHead",
    "register_activation",
    "set_layer_sharpness",
    "set_model_sharpness",
    "SharpenError",
    "sharpen",
    "sharpenable_layers",
    "swap_activations",
    "uniform",
]
