"""The conversion table: torch module type -> function that emits runtime primitives.

:func:`~whetstone.conversion.to_spiking` walks the model and, for every module, calls the
converter registered for its type (looked up along the type's MRO, so a subclass of a
registered type converts like it unless it has its own entry). A converter gets the module,
the walk's :class:`ConversionState` and the module's name, and appends primitives with
:meth:`ConversionState.emit` (or rewrites the last one, as BatchNorm folding does). Users add
module types without editing whetstone::

    from whetstone.conversion import register_converter
    from whetstone.runtime import Threshold

    @register_converter(MyStep)
    def _(module, state, name):
        state.emit(Threshold(module.theta), name, binary=True)

A converter that cannot convert its module exactly raises :class:`ConversionError` (use
:meth:`ConversionState.where` in the message, which names the module's index and type).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from torch import nn

from ..runtime.primitives import Primitive


class ConversionError(ValueError):
    """A model that cannot be converted exactly (unsupported or misplaced module)."""


@dataclass
class ConversionState:
    """What the walk has produced so far.

    Attributes:
        layers: the primitives emitted, in order.
        origin: for every primitive, the name(s) of the module(s) it came from.
        binary: whether the current activation is a spike map (the last value-producing
            primitive was a ``Threshold``); max-pooling converts only then.
    """

    layers: list[Primitive] = field(default_factory=list)
    origin: list[str] = field(default_factory=list)
    binary: bool = False

    def emit(self, primitive: Primitive, name: str, binary: bool | None = None) -> None:
        """Append ``primitive`` (from module ``name``); ``binary`` sets :attr:`binary` (left
        as it is when ``None``, for shape-only primitives)."""
        self.layers.append(primitive)
        self.origin.append(name)
        if binary is not None:
            self.binary = binary

    @staticmethod
    def where(module: nn.Module, name: str) -> str:
        """``"module NAME (Type)"``, for error messages."""
        return f"module {name} ({type(module).__name__})"


Converter = Callable[[nn.Module, ConversionState, str], None]
"""``converter(module, state, name)``: emit the module's primitives into ``state``."""

CONVERTERS: dict[type[nn.Module], Converter] = {}
"""Module type -> converter; fill with :func:`register_converter`."""

_C = TypeVar("_C", bound=Converter)


def register_converter(*module_types: type[nn.Module]) -> Callable[[_C], _C]:
    """Decorator: register the function as the converter of ``module_types`` (replacing any
    earlier entry for exactly those types)."""
    if not module_types or not all(isinstance(t, type) and issubclass(t, nn.Module)
                                   for t in module_types):
        raise TypeError("register_converter takes one or more nn.Module subclasses")

    def decorate(fn: _C) -> _C:
        for module_type in module_types:
            CONVERTERS[module_type] = fn
        return fn

    return decorate


def converter_for(module: nn.Module) -> Converter | None:
    """The converter of ``module``'s type, or of its nearest registered base class."""
    for cls in type(module).__mro__:
        fn = CONVERTERS.get(cls)
        if fn is not None:
            return fn
    return None
