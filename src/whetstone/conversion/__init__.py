"""From a trained, fully sharpened PyTorch model to a framework-neutral spiking network.

:func:`to_spiking` walks an ``nn.Sequential``, folds BatchNorm into the layer before it,
turns every sharpenable activation into ``Threshold`` neurons (``z = 1[x >= theta]``) and
max-pooling of spikes into OR-pooling; the result runs with :mod:`whetstone.runtime`
(numpy only) and predicts the same classes as the sharpened model.
"""

from .convert import ConversionError, conv_padding, to_spiking
from .fold import batchnorm_scale_shift, fold_batchnorm

__all__ = ["ConversionError", "batchnorm_scale_shift", "conv_padding", "fold_batchnorm",
           "to_spiking"]
