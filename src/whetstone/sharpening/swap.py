"""``whetstone.sharpen``: turn a trained ReLU network into a sharpenable Whetstone network.

Three steps, each a small table or function:

1. **Swap** (:data:`ACTIVATIONS`, :func:`register_activation`, :func:`swap_activations`):
   every module whose type is in the table is replaced by the table's factory's module
   (``nn.ReLU``, ``nn.ReLU6`` and ``nn.Hardtanh`` with ``min_val = 0`` give a
   :class:`~whetstone.nn.SpikingBReLU` at sharpness 0,
   ``y = clip((x - 0.5) / (1 - s + 0.001) + 0.5, 0, 1)``). Nested modules are walked
   (``named_modules``) and the new module is set on its parent.
2. **Calibrate** (:mod:`whetstone.sharpening.calibration`): ``lambda_l`` is the ``p``-th
   percentile (default 99.9) of each swapped activation's input on the calibration data; the
   producer's weights and bias (or its BatchNorm's affine) are divided by ``lambda_l`` and the
   consumers' weights multiplied by it, so the operating range ``[0, lambda_l]`` becomes the
   bounded ReLU's ``[0, 1]`` with the threshold 0.5 at ``lambda_l / 2``. At sharpness 0 the
   calibrated network computes ``min(relu(z_l), lambda_l)`` in units of ``lambda_l``: the
   original network up to clipping its top ``100 - p`` percent.
Functional activations. Before the swap, a model whose ``forward`` calls ``torch.relu``,
``F.relu``, ``x.relu()`` (and their in-place forms), ``F.relu6`` or ``F.hardtanh`` is traced
with ``torch.fx`` and each such call becomes a call of a new submodule (``nn.ReLU``,
``nn.ReLU6``, ``nn.Hardtanh(min_val, max_val)``: :data:`FUNCTIONAL_ACTIVATIONS`) named after
the call (``relu``, ``relu_1``, ``relu6``, ...), which the table then swaps like any other;
the model becomes a ``torch.fx.GraphModule`` (:func:`functional_to_modules`). A model that
``torch.fx`` cannot trace is refused, naming the functional calls seen on the example input.

3. **Head** (:class:`PopulationHead`, optional): the model's last module with parameters,
   a ``Linear(in, C)``, becomes ``Linear(in, W) -> SpikingBReLU -> SoftmaxDecode(K)`` with a
   seeded key ``K = key_generator(C, W)`` and **new, untrained** weights (to be learned while
   sharpening). Without a head the model's last layer is left as it is: a final ``Linear``
   stays a real-valued (affine) readout in the converted network.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.overrides import TorchFunctionMode

from ..nn.activations import Sharpenable, SpikingBReLU
from ..nn.decode import SoftmaxDecode, key_generator
from ..nn.surrogate import Surrogate
from .calibration import (
    DEFAULT_PERCENTILE,
    SharpenError,
    Site,
    apply_scales,
    measure_scales,
    plan_sites,
    trace,
)

ActivationFactory = Callable[[nn.Module], nn.Module]
"""Builds the sharpenable replacement of one activation module (and may refuse it by raising
:class:`SharpenError`)."""


@dataclass(frozen=True)
class ActivationRule:
    """How to swap one activation type: ``factory(module)`` gives the replacement; ``ceiling``
    gives the original's saturation value (``inf`` for an unbounded activation), an upper
    bound of ``lambda_l``."""

    factory: ActivationFactory
    ceiling: Callable[[nn.Module], float] = lambda _module: float("inf")


def _hardtanh(module: nn.Module) -> nn.Module:
    assert isinstance(module, nn.Hardtanh)
    if module.min_val != 0.0 or module.max_val <= 0.0:
        raise SharpenError(f"Hardtanh(min_val={module.min_val}, max_val={module.max_val}) is not "
                           "a ReLU-like activation: only min_val = 0 < max_val maps onto a "
                           "bounded ReLU")
    return SpikingBReLU()


ACTIVATIONS: dict[type[nn.Module], ActivationRule] = {
    nn.ReLU: ActivationRule(lambda _m: SpikingBReLU()),
    nn.ReLU6: ActivationRule(lambda _m: SpikingBReLU(), lambda _m: 6.0),
    nn.Hardtanh: ActivationRule(_hardtanh, lambda m: float(m.max_val)),
}
"""The swap table: activation type -> :class:`ActivationRule` (looked up along the type's
MRO, so a subclass uses its parent's rule unless it has its own)."""


def register_activation(cls: type[nn.Module], factory: ActivationFactory,
                        ceiling: Callable[[nn.Module], float] | None = None) -> None:
    """Swap modules of type ``cls`` (and its subclasses without their own rule) for
    ``factory(module)``; ``ceiling(module)`` is the original's saturation value, if any.

    The factory should return a :class:`~whetstone.nn.Sharpenable` (usually
    ``SpikingBReLU()``); the calibration assumes a ReLU-like activation, zero below 0 and
    increasing above.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"register_activation needs an nn.Module subclass, got {cls!r}")
    ACTIVATIONS[cls] = ActivationRule(factory, ceiling) if ceiling else ActivationRule(factory)


def activation_rule(module: nn.Module) -> ActivationRule | None:
    """The table's rule for ``module``'s type (the nearest registered type in its MRO)."""
    for cls in type(module).__mro__:
        if cls in ACTIVATIONS:
            return ACTIVATIONS[cls]
    return None


def swap_activations(model: nn.Module, names: Iterable[str] | None = None) -> list[str]:
    """Replace, in place, each activation of ``model`` with a rule in :data:`ACTIVATIONS`
    (only those in ``names`` when given) by its factory's module, set on the parent module
    (same name, same device). Returns the replaced modules' names."""
    chosen = None if names is None else set(names)
    targets = [(name, m) for name, m in model.named_modules()
               if name and activation_rule(m) is not None and (chosen is None or name in chosen)]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        rule = activation_rule(module)
        assert rule is not None
        setattr(parent, child, rule.factory(module).to(device))
    return [name for name, _ in targets]


def _relu_module(_args: tuple[Any, ...], _kwargs: dict[str, Any]) -> nn.Module:
    return nn.ReLU()


def _relu6_module(_args: tuple[Any, ...], _kwargs: dict[str, Any]) -> nn.Module:
    return nn.ReLU6()


def _hardtanh_module(args: tuple[Any, ...], kwargs: dict[str, Any]) -> nn.Module:
    low = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
    high = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
    if not all(isinstance(v, (int, float)) for v in (low, high)):
        raise SharpenError(f"hardtanh with bounds ({low!r}, {high!r}): constant numbers needed")
    return nn.Hardtanh(float(low), float(high))


FUNCTIONAL_ACTIVATIONS: dict[object, tuple[str, Callable[[tuple[Any, ...], dict[str, Any]],
                                                         nn.Module]]] = {
    torch.relu: ("relu", _relu_module), torch.relu_: ("relu", _relu_module),
    F.relu: ("relu", _relu_module), F.relu_: ("relu", _relu_module),
    "relu": ("relu", _relu_module), "relu_": ("relu", _relu_module),
    F.relu6: ("relu6", _relu6_module),
    F.hardtanh: ("hardtanh", _hardtanh_module), F.hardtanh_: ("hardtanh", _hardtanh_module),
}
"""Functional activations (``call_function`` targets, ``call_method`` names) -> (base name
of the new submodule, ``factory(args, kwargs)`` of the equivalent activation module, which
the swap table then replaces). ``args[0]`` is the input; other arguments are the call's."""


def _call_name(target: object) -> str:
    if isinstance(target, str):
        return f"x.{target}()"
    module = getattr(target, "__module__", None) or "torch"
    prefix = "F" if module == "torch.nn.functional" else "torch"
    return f"{prefix}.{getattr(target, '__name__', target)}"


def _functional_key(node: fx.Node) -> object | None:
    if node.op == "call_function" and node.target in FUNCTIONAL_ACTIVATIONS:
        return node.target
    if node.op == "call_method" and node.target in ("relu", "relu_"):
        return node.target
    return None


class _FunctionalProbe(TorchFunctionMode):
    """Records the functional activations a forward calls (for the refusal message)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        name = getattr(func, "__name__", "")
        key = name if getattr(func, "__module__", None) in (None, "") else func
        if key in FUNCTIONAL_ACTIVATIONS or (isinstance(key, str) and key in ("relu", "relu_")):
            call = _call_name(key)
            if call not in self.seen:
                self.seen.append(call)
        return func(*args, **(kwargs or {}))


def _functional_calls(model: nn.Module, example_input: Tensor) -> list[str]:
    """The functional activations ``model`` calls on ``example_input`` (one eval forward)."""
    was_training = model.training
    model.eval()
    probe = _FunctionalProbe()
    try:
        with torch.no_grad(), probe:
            model(example_input.to(next((p.device for p in model.parameters()),
                                        torch.device("cpu"))))
    except Exception:  # the model's own failure is reported by the caller's trace error
        pass
    finally:
        model.train(was_training)
    return probe.seen


def functional_to_modules(model: nn.Module, example_input: Tensor | None = None
                          ) -> tuple[nn.Module, list[str]]:
    """Replace the functional activations of ``model.forward`` by activation submodules.

    Traces ``model`` (childless modules as leaves); every ``call_function`` /
    ``call_method`` node of :data:`FUNCTIONAL_ACTIVATIONS` becomes a ``call_module`` of a new
    ``nn.ReLU`` / ``nn.ReLU6`` / ``nn.Hardtanh`` added at the top level, named after the
    node (``relu``, ``relu_1``, ...; ``relu_1``, ``relu_2``, ... when the name is taken), so
    the swap table turns it into a sharpenable activation like any module. Returns
    ``(model, [])`` when there is none, else a new ``torch.fx.GraphModule`` holding
    ``model``'s layers (shared, under their names; class name kept) and the new modules,
    and the new modules' names in forward order. ``model`` itself is not changed.

    Raises :class:`SharpenError` when ``torch.fx`` cannot trace ``model`` and its forward
    calls functional activations on ``example_input`` (naming them; such a model cannot be
    rewritten), or for a ``hardtanh`` that is not ReLU-like (``min_val != 0``).
    """
    try:
        graph = trace(model)
    except SharpenError as exc:
        calls = _functional_calls(model, example_input) if example_input is not None else []
        if calls:
            raise SharpenError(
                f"{type(model).__name__}.forward calls {', '.join(calls)}: sharpen replaces "
                "functional activations by sharpenable modules only in a model torch.fx can "
                f"trace, and this one cannot ({exc.__cause__ or exc}); use nn.ReLU modules "
                "or make forward traceable") from exc
        return model, []
    nodes = [n for n in graph.nodes if _functional_key(n) is not None]
    if not nodes:
        return model, []
    taken = {name for name, _ in model.named_modules()} | set(dir(model))
    added: dict[str, nn.Module] = {}
    for node in nodes:
        key = _functional_key(node)
        base, factory = FUNCTIONAL_ACTIVATIONS[key]
        args, kwargs = tuple(node.args), {k: v for k, v in node.kwargs.items() if k != "inplace"}
        module = factory(args, kwargs)
        rule = activation_rule(module)
        if rule is None:
            raise SharpenError(f"{_call_name(key)} ({node.name!r}): no swap rule for "
                               f"{type(module).__name__}")
        try:
            rule.factory(module)
        except SharpenError as exc:
            raise SharpenError(f"{_call_name(key)} ({node.name!r}): {exc}") from exc
        name = node.name if node.name not in taken else base
        suffix = 1
        while name in taken:
            name, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(name)
        added[name] = module
        with graph.inserting_after(node):
            new = graph.call_module(name, (args[0],))
        node.replace_all_uses_with(new)
        graph.erase_node(node)
    graph.lint()
    # the new GraphModule holds the model's own layers (shared, not copied) and the new
    # activations; ``model`` itself is left as it was
    owned: dict[str, Any] = {}
    for node in graph.nodes:
        target = str(node.target)
        if node.op == "call_module":
            owned[target] = added[target] if target in added else model.get_submodule(target)
        elif node.op == "get_attr":
            owner, _, attr = target.rpartition(".")
            owned[target] = getattr(model.get_submodule(owner) if owner else model, attr)
    rewritten = fx.GraphModule(owned, graph, class_name=type(model).__name__)
    rewritten.train(model.training)
    return rewritten, list(added)


@dataclass(frozen=True)
class PopulationHead:
    """Replace the final ``Linear(in, C)`` by ``Linear(in, W) -> SpikingBReLU ->
    SoftmaxDecode(key_generator(C, W, overlapping, seed))``; the new Linear is initialised
    by PyTorch's default under ``torch.manual_seed(seed)`` (the global RNG is left alone)."""

    classes: int
    width: int
    seed: int = 0
    overlapping: bool = True

    def __post_init__(self) -> None:
        if self.classes < 1 or self.width < self.classes:
            raise SharpenError(f"the output population needs width >= classes >= 1, got "
                               f"classes={self.classes}, width={self.width}")

    def target(self, model: nn.Module) -> tuple[str, nn.Linear]:
        """The final ``Linear(in, classes)`` this head replaces (name, module), or a
        :class:`SharpenError` saying why ``model`` has none."""
        name, module, node_users = _last_parametrised(model)
        if not isinstance(module, nn.Linear):
            raise SharpenError(f"the model's last layer with parameters, {name!r}, is a "
                               f"{type(module).__name__}; the population head replaces a final "
                               "nn.Linear only (pass classes=None, width=None to keep the head)")
        if node_users:
            raise SharpenError(f"the model's last layer with parameters, {name!r} (Linear), is "
                               f"followed by {', '.join(node_users)}; the population head "
                               "replaces a Linear whose output is the model's output (pass "
                               "classes=None, width=None to keep the head)")
        if module.out_features != self.classes:
            raise SharpenError(f"the final Linear {name!r} has {module.out_features} outputs, "
                               f"but classes={self.classes}")
        return name, module

    def replace(self, model: nn.Module) -> str:
        """Replace the head in place; returns the replaced module's name."""
        name, module = self.target(model)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            linear = nn.Linear(module.in_features, self.width)
        key = key_generator(self.classes, self.width, self.overlapping, seed=self.seed)
        head = nn.Sequential(linear, SpikingBReLU(), SoftmaxDecode(key))
        head.to(device=module.weight.device, dtype=module.weight.dtype)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, head)
        return name


def _last_parametrised(model: nn.Module) -> tuple[str, nn.Module, list[str]]:
    """Name and module of the last module with parameters in forward (graph) order, and the
    names of what its output goes to besides the model's output."""
    from .calibration import trace

    graph = trace(model)
    last = None
    for node in graph.nodes:
        if node.op == "call_module":
            module = model.get_submodule(str(node.target))
            if next(module.parameters(), None) is not None:
                last = node
    if last is None:
        raise SharpenError("the model has no layer with parameters to replace by a head")
    users = [str(u.target) if u.op == "call_module" else u.name
             for u in last.users if u.op != "output"]
    return str(last.target), model.get_submodule(str(last.target)), users


def sharpen(
    model: nn.Module,
    example_input: Tensor,
    calibration: Iterable[object] | None = None,
    *,
    classes: int | None = None,
    width: int | None = None,
    percentile: float = DEFAULT_PERCENTILE,
    max_batches: int | None = None,
    seed: int = 0,
    overlapping: bool = True,
    surrogate: Surrogate | None = None,
    inplace: bool = False,
) -> nn.Module:
    """A sharpenable Whetstone network from a trained ReLU network (at sharpness 0).

    Args:
        model: the network; copied (``copy.deepcopy``) unless ``inplace``. Its activations
            with a rule in :data:`ACTIVATIONS` (ReLU, ReLU6, Hardtanh(0, m), and registered
            types) are swapped for bounded ReLUs.
        example_input: a batch the model takes; the result is run on it once as a check
            (and ``to_spiking`` needs the same).
        calibration: batches (tensors or ``(x, y)`` pairs, e.g. the training loader) for the
            data-based rescaling: ``lambda_l = min(P_p(z_l), ceiling_l)`` of each swapped
            activation's input ``z_l`` in the original network; producer ``W, b <- W /
            lambda_l, b / lambda_l`` (BatchNorm: ``gamma, beta``), consumers ``W <- W
            lambda_l`` (see :mod:`whetstone.sharpening.calibration`). ``None`` swaps without
            rescaling (every ``lambda_l = 1``).
        classes: with ``width``, the final ``Linear(in, classes)`` is replaced by
            ``Linear(in, width) -> SpikingBReLU -> SoftmaxDecode(key_generator(classes,
            width, overlapping, seed))`` with **new** weights (:class:`PopulationHead`).
            Neither given: the head is kept.
        width: the output population's size (with ``classes``).
        percentile: ``p`` in ``(0, 100]``; 100 is the maximum.
        max_batches: use at most this many calibration batches.
        seed: the head's key and initial weights; the calibration's subsampling.
        overlapping: whether the head's class codes may share neurons.
        surrogate: the backward strategy at sharpness 1 of every swapped activation and of
            the head's (e.g. :class:`~whetstone.nn.StraightThrough`, so fine-tuning keeps
            learning below fully sharpened layers); ``None`` keeps the true, zero gradient.
        inplace: modify ``model`` itself (but see Returns for functional activations).

    Returns:
        The sharpenable model (every swapped activation at sharpness 0), in the mode
        ``model`` was in. Train it with :func:`whetstone.training.fit` and a sharpener, then
        convert it with :func:`whetstone.conversion.to_spiking`. When ``forward`` calls
        functional activations (``F.relu``, ``torch.relu``, ``x.relu()``, ``F.relu6``,
        ``F.hardtanh``), the result is a ``torch.fx.GraphModule`` (class name kept) in which
        each call is a new sharpenable submodule at the top level, named after the call
        (``relu``, ``relu_1``, ...: :func:`functional_to_modules`); it holds the (copied, or
        with ``inplace`` the model's own) layers under their old names, and the sharpeners,
        ``fit``, ``to_spiking`` and ``state_dict`` work on it as on any module.

    Raises:
        SharpenError: (a ``ValueError``) no activation to swap; an activation whose producer
            or a consumer is not a Linear / Conv / BatchNorm, possibly through pooling,
            flatten or dropout (a residual ``add``, a ``cat``, the model input: their scales
            cannot be compensated, so such models are refused, naming the node; a sum of
            such producers, a projection shortcut, is calibrated), a module
            called at several places; a model ``torch.fx`` cannot trace (naming its
            functional activations, if it calls any); a layer that never
            fires on the calibration data; a Hardtanh with ``min_val != 0``; only one of
            ``classes`` and ``width``; a head that is not a final ``Linear(in, classes)``.
    """
    if (classes is None) != (width is None):
        raise SharpenError(f"give both classes and width for a population head, or neither "
                           f"(got classes={classes}, width={width})")
    head = PopulationHead(classes, width, seed, overlapping) if classes is not None else None
    net = model if inplace else copy.deepcopy(model)
    net, _ = functional_to_modules(net, example_input)
    rules = {name: activation_rule(m) for name, m in net.named_modules()}
    sites: list[Site] = plan_sites(net, lambda m: activation_rule(m) is not None)
    if not sites:
        known = ", ".join(t.__name__ for t in ACTIVATIONS)
        raise SharpenError(f"{type(model).__name__} has no activation to swap (known: {known}; "
                           "register_activation adds types)")
    if head is not None:
        head.target(net)  # refuse before anything changes (the model itself when inplace)
    names = [s.name for s in sites]
    if calibration is not None:
        ceilings = {n: rules[n].ceiling(net.get_submodule(n)) for n in names}  # type: ignore[union-attr]
        scales = measure_scales(net, names, calibration, percentile, max_batches, ceilings, seed)
    else:
        scales = dict.fromkeys(names, 1.0)
    swap_activations(net, names)
    apply_scales(net, sites, scales)
    head_name = head.replace(net) if head is not None else ""
    if surrogate is not None:
        for name in [*names, *([f"{head_name}.1"] if head is not None else [])]:
            layer = net.get_submodule(name)
            if isinstance(layer, Sharpenable):
                layer.surrogate = surrogate
    was_training = net.training
    net.eval()
    with torch.no_grad():
        out = net(example_input.to(next(net.parameters()).device))
    net.train(was_training)
    if head is not None and tuple(out.shape[1:]) != (head.classes,):
        raise SharpenError(f"the sharpened model gives outputs of shape {tuple(out.shape)}, "
                           f"expected (N, {head.classes})")
    return net
