"""A framework-neutral spiking network: numpy only, no torch (not even indirectly).

A converted Whetstone network is a list of primitives run in one time step:

- :mod:`.primitives`: ``Affine`` (``y = W x + b``), ``Conv2d``, ``SumPool2d`` (OR-pooling
  with a ``Threshold(0.5)`` after it, or average pooling with ``scale = 1 / (kh kw)``),
  ``Flatten``, ``Unflatten`` (its inverse), ``Upsample2d`` (nearest:
  ``y[c, i, j] = x[c, i // sh, j // sw]``), ``Threshold`` (``z = 1[x >= theta]``, ties fire)
  and ``Decode`` (N-hot population to class logits).
- :mod:`.network`: :class:`SpikingNetwork` with ``save`` / ``load`` (one ``.npz``, no pickle,
  sha256-checked; bad files raise :class:`NetworkFileError`) and its
  :attr:`~SpikingNetwork.readout`: what the network ends with (``"decode"``, a real-valued
  ``"affine"`` / ``"conv2d"`` readout, ``"spikes"``, ...; :data:`READOUTS`).
- :mod:`.simulate`: :func:`run` (the readout's values, optionally the spikes of every layer)
  and :func:`predict` (argmax of the readout's scores: classes, actions, per-pixel classes).

Build one from a trained model with :func:`whetstone.conversion.to_spiking`.
"""

from .errors import NetworkFileError
from .network import READOUTS, SHAPE_ONLY, SpikingNetwork
from .primitives import (
    PRIMITIVES,
    Affine,
    Conv2d,
    Decode,
    Flatten,
    Primitive,
    SumPool2d,
    Threshold,
    Unflatten,
    Upsample2d,
)
from .simulate import predict, run

__all__ = [
    "PRIMITIVES",
    "READOUTS",
    "SHAPE_ONLY",
    "Affine",
    "Conv2d",
    "Decode",
    "Flatten",
    "NetworkFileError",
    "Primitive",
    "SpikingNetwork",
    "SumPool2d",
    "Threshold",
    "Unflatten",
    "Upsample2d",
    "predict",
    "run",
]
