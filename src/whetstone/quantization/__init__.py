"""Post-training weight quantization of spiking networks (numpy only, no torch).

:func:`quantize` maps every weighted layer to integer weights (symmetric, uniform, per
layer: ``s = max|W| / (2^(bits-1) - 1)``, ``W_q = round(W / s)``) and folds its bias into an
integer threshold ``theta' = ceil((theta - b) / s)``, so that a neuron over spikes fires on
the exact integer comparison ``W_q x >= theta'``. :func:`quantization_sweep` reports
accuracy and agreement with the unquantized network against the bit width;
:func:`fake_quantize` is the real-valued reference. A real-valued readout (affine or 1x1
convolution) keeps its output real: integer weights, output scaled back
(``y = s (W_q z) + b``), or unquantized with ``readout="keep"``. Details in :mod:`.quantize`.
"""

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
    "MIN_BITS",
    "READOUT_MODES",
    "fake_quantize",
    "levels",
    "quantization_sweep",
    "quantize",
    "quantize_weights",
]
