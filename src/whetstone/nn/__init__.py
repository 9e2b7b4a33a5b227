"""Layers of a Whetstone network: sharpenable activations and the N-hot decode.

- :class:`SpikingBReLU`, :class:`SpikingSigmoid` (state) around :mod:`.functional` (math)
- :class:`SoftmaxDecode`, :func:`key_generator`, :func:`encode`, :func:`decode`
- :mod:`.surrogate`: optional straight-through gradients for the binary step
"""

from . import functional, surrogate
from .activations import Sharpenable, SpikingBReLU, SpikingSigmoid
from .decode import SoftmaxDecode, decode, decode_affine, decode_logits, encode, key_generator
from .surrogate import ArcTan, StraightThrough

__all__ = [
    "Sharpenable",
    "SoftmaxDecode",
    "SpikingBReLU",
    "SpikingSigmoid",
    "ArcTan",
    "StraightThrough",
    "decode",
    "decode_affine",
    "decode_logits",
    "encode",
    "functional",
    "key_generator",
    "surrogate",
]
