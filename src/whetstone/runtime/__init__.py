"""A framework-neutral spiking network: numpy only, no torch (not even indirectly).

A converted Whetstone network is a list of primitives run in one time step:

- :mod:`.primitives`: ``Affine`` (``y = W x + b``), ``Conv2d``, ``SumPool2d`` (OR-pooling
  with a ``Threshold(0.5)`` after it, or average pooling with ``scale = 1 / (kh kw)``),
  ``Flatten``, ``Unflatten`` (its inverse), ``Upsample2d`` (nearest:
  ``y[c, i, j] = x[c, i // sh, j // sw]``), ``Threshold`` (``z = 1[x >= theta]``, ties fire)
  and ``Decode`` (N-hot population to class logits); the merges of a graph, ``Add``
  (``y = x_1 + ... + x_k``) and ``Concat`` (along the first batch-free axis). Each has its
  ``arity`` and ``output_shape(*input_shapes)``.
- :mod:`.network`: :class:`SpikingNetwork`, a chain or a graph (``inputs[i]``: the sources
  of layer ``i``, ``-1`` the network input), with ``save`` / ``load`` (one ``.npz``, no
  pickle, sha256-checked; bad files raise :class:`NetworkFileError`) and its
  :attr:`~SpikingNetwork.readout`: what the network ends with (``"decode"``, a real-valued
  ``"affine"`` / ``"conv2d"`` readout, ``"spikes"``, ...; :data:`READOUTS`).
- :mod:`.simulate`: :func:`run` (the readout's values, optionally the spikes of every layer)
  and :func:`predict` (argmax of the readout's scores: classes, actions, per-pixel classes);
  the kernels are a table, :data:`KERNELS` (:func:`register_kernel` adds one), and so are
  the engines, :data:`ENGINES` (``"numpy"``, the reference; ``"fast"``, numba, the extra
  ``whetstone[fast]``; :func:`register_engine` adds one).

Build one from a trained model with :func:`whetstone.conversion.to_spiking`.
"""

from .errors import NetworkFileError
from .network import INPUT, READOUTS, SHAPE_ONLY, SpikingNetwork
from .primitives import (
    PRIMITIVES,
    Add,
    Affine,
    Concat,
    Conv2d,
    Decode,
    Flatten,
    Primitive,
    SumPool2d,
    Threshold,
    Unflatten,
    Upsample2d,
)
from .simulate import (
    ENGINES,
    KERNELS,
    Context,
    Engine,
    Kernel,
    engine_for,
    kernel_for,
    predict,
    register_engine,
    register_kernel,
    run,
    walk,
)

__all__ = [
    "ENGINES",
    "INPUT",
    "KERNELS",
    "PRIMITIVES",
    "READOUTS",
    "SHAPE_ONLY",
    "Add",
    "Affine",
    "Concat",
    "Context",
    "Conv2d",
    "Decode",
    "Engine",
    "Flatten",
    "Kernel",
    "NetworkFileError",
    "Primitive",
    "SpikingNetwork",
    "SumPool2d",
    "Threshold",
    "Unflatten",
    "Upsample2d",
    "engine_for",
    "kernel_for",
    "predict",
    "register_engine",
    "register_kernel",
    "run",
    "walk",
]
