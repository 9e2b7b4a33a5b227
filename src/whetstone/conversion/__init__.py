"""From a trained, fully sharpened PyTorch model to a framework-neutral spiking network.

:func:`to_spiking` walks an ``nn.Sequential`` (a chain) or traces any other model with
``torch.fx`` (a graph with residual sums and concatenations; :mod:`.graph`,
:mod:`.functions`), folds BatchNorm into the layer before it,
turns every sharpenable activation into ``Threshold`` neurons (``z = 1[x >= theta]``) and
max-pooling of spikes into OR-pooling; the result runs with :mod:`whetstone.runtime`
(numpy only) and computes what the sharpened model computes: the same classes through a
decode, the same real values through an affine / 1x1-convolution readout, the same spikes.
"""

from .convert import to_spiking
from .fold import batchnorm_scale_shift, fold_batchnorm
from .graph import Value
from .layers import conv_padding
from .registry import (
    CONVERTERS,
    FUNCTION_CONVERTERS,
    ConversionError,
    ConversionState,
    Converter,
    FunctionConverter,
    converter_for,
    register_converter,
    register_function_converter,
)

__all__ = ["CONVERTERS", "FUNCTION_CONVERTERS", "ConversionError", "ConversionState",
           "Converter", "FunctionConverter", "Value", "batchnorm_scale_shift", "conv_padding",
           "converter_for", "fold_batchnorm", "register_converter",
           "register_function_converter", "to_spiking"]
