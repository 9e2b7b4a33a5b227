"""Post-training weight quantization of spiking networks (numpy only, no torch).

:func:`quantize` maps every weighted layer to integer weights (symmetric, uniform, per
layer: ``s = max|W| / (2^(bits-1) - 1)``, ``W_q = round(W / s)``) and folds its bias into an
integer threshold ``theta' = ceil((theta - b) / s)``, so that a neuron over spikes fires on
the exact integer comparison ``W_q x >= theta'``. :func:`quantization_sweep` reports
accuracy and agreement with the unquantized network against the bit width;
:func:`fake_quantize` is the real-valued reference. A real-valued readout (affine or 1x1
convolution) keeps its output real: integer weights, output scaled back
(``y = s (W_q z) + b``), or unquantized with ``readout="keep"``. Details in :mod:`.quantize`.

:func:`to_integer` goes one step further: the deployable **integer network** (int8/int16
weights, integer thresholds, integer inputs such as uint8 pixels: :func:`integer_inputs`),
exact integer arithmetic whatever the engine or summation order. Details in :mod:`.integer`.
"""

from .integer import MAX_INTEGER_BITS, accumulator_dtype, integer_inputs, to_integer, weight_dtype
from .quantize import (
    MAX_BITS,
    MIN_BITS,
    READOUT_MODES,
    fake_quantize,
    levels,
    quantization_sweep,
    quantize,
    quantize_weights,
)

__all__ = [
    "MAX_BITS",
    "MAX_INTEGER_BITS",
    "MIN_BITS",
    "READOUT_MODES",
    "accumulator_dtype",
    "fake_quantize",
    "integer_inputs",
    "levels",
    "quantization_sweep",
    "quantize",
    "quantize_weights",
    "to_integer",
    "weight_dtype",
]
