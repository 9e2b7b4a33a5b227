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

In a graph (a model traced with ``torch.fx``, :mod:`.graph`) a module reads the value
:attr:`ConversionState.current` (the index of the layer that produced it, ``-1`` for the
network input), which need not be the last layer emitted: a converter that rewrites the
layer producing its input uses ``state.layers[state.current]`` (in a chain that is
``state.layers[-1]``) and only when :attr:`ConversionState.foldable` says nothing else reads
that value. Functions and tensor methods in a traced ``forward`` (``a + b``,
``torch.cat``, ``x.flatten(1)``) have their own table, :data:`FUNCTION_CONVERTERS`
(:func:`register_function_converter`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from torch import nn

from ..runtime.primitives import Primitive

if TYPE_CHECKING:
    from torch import fx


class ConversionError(ValueError):
    """A model that cannot be converted exactly (unsupported or misplaced module)."""


@dataclass
class ConversionState:
    """What the walk has produced so far.

    Attributes:
        layers: the primitives emitted, in order.
        origin: for every primitive, the name(s) of the module(s) it came from.
        inputs: for every primitive, the indices of the layers it reads (``-1``: the
            network input).
        binary: whether the current value is a spike map (the last value-producing
            primitive before it was a ``Threshold``); max-pooling converts only then.
        current: index of the layer whose output the next module reads (``-1``: the
            network input); :meth:`emit` moves it to the new layer.
        foldable: whether the layer ``current`` may be rewritten in place (BatchNorm
            folding): nothing but the module being converted reads its output.
        input_shape: the batch-free input shape, when an example input gave it.
        shapes: for every primitive its batch-free output shape, ``None`` when unknown.
        example_shape: the example input's shape ``(N, ...)``, for error messages.
    """

    layers: list[Primitive] = field(default_factory=list)
    origin: list[str] = field(default_factory=list)
    inputs: list[tuple[int, ...]] = field(default_factory=list)
    binary: bool = False
    current: int = -1
    foldable: bool = True
    input_shape: tuple[int, ...] | None = None
    shapes: list[tuple[int, ...] | None] = field(default_factory=list)
    example_shape: tuple[int, ...] | None = None

    def shape_of(self, index: int) -> tuple[int, ...] | None:
        """The batch-free shape of value ``index`` (``-1``: the input), ``None`` if unknown."""
        return self.input_shape if index == -1 else self.shapes[index]

    @property
    def shape(self) -> tuple[int, ...] | None:
        """The batch-free shape of the current value, ``None`` when unknown."""
        return self.shape_of(self.current)

    def emit(self, primitive: Primitive, name: str, binary: bool | None = None,
             sources: Sequence[int] | None = None) -> int:
        """Append ``primitive`` (from module ``name``) reading ``sources`` (default: the
        current value) and make it the current value; returns its index. ``binary`` sets
        :attr:`binary` (left as it is when ``None``, for shape-only primitives).

        Raises:
            ConversionError: the known input shapes do not fit the primitive.
        """
        while len(self.inputs) < len(self.layers):  # appended to layers directly: a chain
            self.inputs.append((len(self.inputs) - 1,))
            self.shapes.append(None)
            self.current = len(self.inputs) - 1
        src = (self.current,) if sources is None else tuple(sources)
        ins = [self.shape_of(j) for j in src]
        shape = None
        if all(s is not None for s in ins):
            try:
                shape = primitive.output_shape(*ins)  # type: ignore[arg-type]
            except ValueError as exc:
                raise ConversionError(
                    f"example_input of shape {self.example_shape} does not fit the network "
                    f"at {name}: {exc}") from exc
        self.layers.append(primitive)
        self.origin.append(name)
        self.inputs.append(src)
        self.shapes.append(shape)
        self.current = len(self.layers) - 1
        self.foldable = True
        if binary is not None:
            self.binary = binary
        return self.current

    def replace(self, index: int, primitive: Primitive, name: str) -> None:
        """Rewrite layer ``index`` with ``primitive`` (same sources and output shape), adding
        ``name`` to its origin (used by BatchNorm folding)."""
        self.layers[index] = primitive
        self.origin[index] = f"{self.origin[index]}+{name}"

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


FunctionConverter = Callable[["fx.Node", Sequence[Any], dict[str, Any], ConversionState, str],
                             Any]
"""``converter(node, args, kwargs, state, name) -> value``: the node's arguments with every
traced value replaced by what its own conversion returned (a
:class:`~whetstone.conversion.graph.Value` for tensors); emits primitives into ``state`` and
returns the node's value (see :mod:`whetstone.conversion.functions`)."""

FUNCTION_CONVERTERS: dict[Any, FunctionConverter] = {}
"""``call_function`` target (a function such as ``operator.add``, ``torch.cat``) or
``call_method`` name (a string such as ``"flatten"``) -> converter; fill with
:func:`register_function_converter`."""

_F = TypeVar("_F", bound=FunctionConverter)


def register_function_converter(*targets: Any) -> Callable[[_F], _F]:
    """Decorator: register the function as the converter of the ``call_function`` targets
    (callables) and ``call_method`` names (strings) in ``targets``."""
    if not targets or not all(callable(t) or isinstance(t, str) for t in targets):
        raise TypeError("register_function_converter takes functions or method names")

    def decorate(fn: _F) -> _F:
        for target in targets:
            FUNCTION_CONVERTERS[target] = fn
        return fn

    return decorate


def converter_for(module: nn.Module) -> Converter | None:
    """The converter of ``module``'s type, or of its nearest registered base class."""
    for cls in type(module).__mro__:
        fn = CONVERTERS.get(cls)
        if fn is not None:
            return fn
    return None
