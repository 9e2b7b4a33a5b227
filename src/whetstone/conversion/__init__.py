"""From a trained, fully sharpened PyTorch model to a framework-neutral spiking network.

:func:`to_spiking` walks an ``nn.Sequential``, folds BatchNorm into the layer before it,
turns every sharpenable activation into ``Threshold`` neurons (``z = 1[x >= theta]``) and
max-pooling of spikes into OR-pooling; the result runs with :mod:`whetstone.runtime`
(numpy only) and computes what the sharpened model computes: the same classes through a
decode, the same real values through an affine / 1x1-convolution readout, the same spikes.
"""

from .convert import to_spiking
from .fold import batchnorm_scale_shift, fold_batchnorm
from .layers import conv_padding
from .registry import (
    CONVERTERS,
    ConversionError,
    ConversionState,
    Converter,
    converter_for,
    register_converter,
)

__all__ = ["CONVERTERS", "ConversionError", "ConversionState", "Converter",
           "batchnorm_scale_shift", "conv_padding", "converter_for", "fold_batchnorm",
           "register_converter", "to_spiking"]
