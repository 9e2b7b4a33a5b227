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

import torch
from torch import Tensor, nn

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
        inplace: modify ``model`` itself.

    Returns:
        The sharpenable model (every swapped activation at sharpness 0), in the mode
        ``model`` was in. Train it with :func:`whetstone.training.fit` and a sharpener, then
        convert it with :func:`whetstone.conversion.to_spiking`.

    Raises:
        SharpenError: (a ``ValueError``) no activation to swap; an activation whose producer
            or a consumer is not a Linear / Conv / BatchNorm, possibly through pooling,
            flatten or dropout (a residual ``add``, a ``cat``, the model input: their scales
            cannot be compensated, so such models are refused, naming the node); a module
            called at several places; a model ``torch.fx`` cannot trace; a layer that never
            fires on the calibration data; a Hardtanh with ``min_val != 0``; only one of
            ``classes`` and ``width``; a head that is not a final ``Linear(in, classes)``.
    """
    if (classes is None) != (width is None):
        raise SharpenError(f"give both classes and width for a population head, or neither "
                           f"(got classes={classes}, width={width})")
    head = PopulationHead(classes, width, seed, overlapping) if classes is not None else None
    net = model if inplace else copy.deepcopy(model)
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
