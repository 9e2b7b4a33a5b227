"""Callbacks: one protocol for everything that hooks into a training loop.

A :class:`Callback` is told what the loop does, in this order::

    on_train_begin(model, steps_per_epoch)        # once, before the first batch
    for each epoch:
        for each batch:
            ...forward, loss, backward...
            on_before_optimizer_step(model, optimizer)   # gradients are there
            ...optimizer step...
            on_batch_end(model)
        on_epoch_end(model, epoch, loss)          # 0-based epoch, its mean training loss
        ...validation...
        on_epoch_record(model, record, history)   # the epoch's EpochRecord, appended to history
        stop_reason()                             # not None: training stops after this epoch
    on_train_end(model, history)

Every hook is a no-op in :class:`Callback`, so a callback overrides only what it needs; the
sharpeners (:class:`~whetstone.sharpening.Sharpener`) are callbacks, and so are the loop's
logging (:class:`MetricsLogger`, :class:`EpochLines`), its stop when sharp
(:class:`StopWhenSharp`) and gradient clipping (:class:`GradientClipping`). ``state_dict()`` /
``load_state_dict()`` hold what a callback needs to continue exactly after a checkpoint
(:func:`~whetstone.training.fit` puts them in its :class:`~whetstone.training.LoopState`).
The same callbacks run under a ``lightning.Trainer`` through
:class:`whetstone.integrations.lightning.SharpeningCallback`.

A loop keeps its per-batch cost to a call per callback that overrides a per-batch hook
(:func:`overrides`): callbacks that act per epoch cost nothing per batch.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn
from torch.optim import Optimizer

from .history import EpochRecord, History, MetricsLog

if TYPE_CHECKING:  # pragma: no cover
    from ..sharpening.schedules import Sharpener

BATCH_HOOKS = ("on_before_optimizer_step", "on_batch_end")
"""The hooks a loop calls for every batch."""


class Callback:
    """Base class of the loop's callbacks: every hook does nothing, the state is empty.

    Subclasses override the hooks they need (see the module docstring for the order). The
    hooks receive the model being trained (under a ``lightning.Trainer``, the
    ``LightningModule``); a callback that must see the optimizer gets it in
    :meth:`on_before_optimizer_step`.
    """

    def on_train_begin(self, model: nn.Module, steps_per_epoch: int | None = None) -> None:
        """Once before training (and again when a run resumes); ``steps_per_epoch`` is the
        number of optimizer steps in an epoch, ``None`` if the loader has no length."""

    def on_before_optimizer_step(self, model: nn.Module, optimizer: Optimizer) -> None:
        """After the backward pass, before ``optimizer.step()`` (not called for a batch whose
        loss has no gradient)."""

    def on_batch_end(self, model: nn.Module) -> None:
        """After every training batch's optimizer step."""

    def on_epoch_end(self, model: nn.Module, epoch: int, loss: float | None = None) -> None:
        """After an epoch's last batch, before validation, with its 0-based index and its mean
        training loss (``None`` where the loop does not know it)."""

    def on_epoch_record(self, model: nn.Module, record: EpochRecord, history: History) -> None:
        """After validation, with the epoch's record; ``history`` (the run's records, earlier
        runs' included when it resumed) already ends with it. Not called under Lightning."""

    def on_train_end(self, model: nn.Module, history: History | None = None) -> None:
        """Once after the last epoch (or a stop request); ``history`` as in
        :meth:`on_epoch_record` (``None`` under Lightning). Not called when training raises."""

    def stop_reason(self) -> str | None:
        """Asked after every epoch, once its record is logged and its checkpoint written: a
        reason to stop training there (a stop request), or ``None`` to go on."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """What the callback needs to continue exactly after a checkpoint (JSON-serialisable:
        numbers, strings, lists, dicts). Stateless callbacks return ``{}``."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a stateless callback accepts only ``{}``."""
        if state:
            raise ValueError(f"{type(self).__name__} has no state; got keys {sorted(state)}")


def overrides(callback: object, hook: str) -> bool:
    """Whether ``callback`` implements ``hook`` other than :class:`Callback`'s no-op (an
    object that does not subclass :class:`Callback` counts for the hooks it defines)."""
    impl = getattr(type(callback), hook, None)
    return impl is not None and impl is not getattr(Callback, hook)


def callback_name(callback: object) -> str:
    """The name under which a callback's state is stored (its class's qualified name)."""
    return type(callback).__qualname__


def stateful(callbacks: Sequence[object]) -> list[object]:
    """The callbacks that keep a state (those that implement ``state_dict``), in order."""
    return [cb for cb in callbacks if overrides(cb, "state_dict")]


def callback_states(callbacks: Sequence[object]) -> list[dict[str, Any]]:
    """The name and a copy of the ``state_dict()`` of each callback that keeps a state
    (:func:`stateful`), in order: what :attr:`~whetstone.training.LoopState.callbacks`
    holds. Stateless callbacks are left out, so a run may resume with others (a progress
    line, a log) than it had."""
    return [{"callback": callback_name(cb), "state": copy.deepcopy(cb.state_dict())}  # type: ignore[attr-defined]
            for cb in stateful(callbacks)]


def load_callback_states(callbacks: Sequence[object], states: Sequence[dict[str, Any]]) -> None:
    """Load :func:`callback_states` into ``callbacks``, whose stateful ones must be the same
    kinds in the same order; raises :class:`ValueError` naming the difference."""
    targets = stateful(callbacks)
    given = [callback_name(cb) for cb in targets]
    saved = [s.get("callback") for s in states]
    if given != saved:
        raise ValueError(f"the state to resume holds the callbacks {saved}, but the loop was "
                         f"given the stateful callbacks {given}; pass the same ones (fit's "
                         "sharpener= included) in the same order")
    for cb, entry in zip(targets, states, strict=True):
        load = getattr(cb, "load_state_dict", None)
        if load is None:
            raise ValueError(f"{callback_name(cb)} has a state_dict but no load_state_dict")
        load(copy.deepcopy(entry["state"]))


class MetricsLogger(Callback):
    """Writes every epoch's record as one JSON line to ``path`` (``metrics.jsonl``, read back
    with :meth:`History.read_jsonl`), flushed at once.

    The file is emptied when training begins, unless ``append`` (continuing a run whose
    earlier epochs are in the file already, without a :class:`LoopState`); when a run resumes
    from a :class:`LoopState`, its earlier records are written again with the first record, so
    that the file holds the whole history, as an uninterrupted run's does.
    """

    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        self.append = bool(append)
        self._rewrite = False

    def on_train_begin(self, model: nn.Module, steps_per_epoch: int | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.append:
            self.path.write_text("", encoding="utf-8")
            self._rewrite = True

    def _write(self, records: list[EpochRecord]) -> None:
        log = MetricsLog(self.path, append=True)
        for record in records:
            log.write(record)

    def on_epoch_record(self, model: nn.Module, record: EpochRecord, history: History) -> None:
        self._write(list(history) if self._rewrite else [record])
        self._rewrite = False

    def on_train_end(self, model: nn.Module, history: History | None = None) -> None:
        if self._rewrite and history:  # resumed with no epoch left to train
            self._write(list(history))
        self._rewrite = False


def _stderr_line(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)  # standard output is for results (--json)


class EpochLines(Callback):
    """One plain line per finished epoch (:func:`~whetstone.training.loop.epoch_line`:
    ``epoch 3/13 loss 0.4120 accuracy 0.8810 ... sharpness 1.00/0.50 (2.1s)``), handed to
    ``write`` (default: standard error, beside any progress bar). ``epochs`` is the run's
    length shown after the slash (``None``: the epoch number alone)."""

    def __init__(self, epochs: int | None = None,
                 write: Callable[[str], None] | None = None) -> None:
        self.epochs = epochs
        self.write = write or _stderr_line

    def on_epoch_record(self, model: nn.Module, record: EpochRecord, history: History) -> None:
        from .loop import epoch_line

        self.write(epoch_line(record, self.epochs))


class OnEpochRecord(Callback):
    """Calls ``fn(record)`` with every epoch's :class:`EpochRecord` (``fit(on_epoch=fn)``)."""

    def __init__(self, fn: Callable[[EpochRecord], None]) -> None:
        self.fn = fn

    def on_epoch_record(self, model: nn.Module, record: EpochRecord, history: History) -> None:
        self.fn(record)


class StopWhenSharp(Callback):
    """Stops training after the epoch at whose end the network is binary: ``sharpener.done``
    if a sharpener is given (the schedule has set every layer to 1), else every sharpenable
    layer of the model at sharpness 1 (``fit(stop_when_sharp=True)``). Put it after the
    sharpener in the callbacks."""

    def __init__(self, sharpener: Sharpener | None = None) -> None:
        self.sharpener = sharpener
        self._sharp = False

    def on_train_begin(self, model: nn.Module, steps_per_epoch: int | None = None) -> None:
        self._sharp = False

    def on_epoch_end(self, model: nn.Module, epoch: int, loss: float | None = None) -> None:
        if self.sharpener is not None:
            self._sharp = bool(self.sharpener.done)
        else:
            from ..sharpening.allocation import is_fully_sharp, sharpenable_layers

            self._sharp = bool(sharpenable_layers(model)) and is_fully_sharp(model)

    def stop_reason(self) -> str | None:
        return "every layer is at sharpness 1" if self._sharp else None


class GradientClipping(Callback):
    """Rescales the gradient of all trainable parameters together before each optimizer step
    so that its L2 norm is at most ``max_norm`` (:func:`torch.nn.utils.clip_grad_norm_`;
    ``fit(clip_grad_norm=...)``). A sharpened BReLU's slope grows as ``1 / (1 - s + 0.001)``,
    so optimizers whose step scales with the gradient (SGD) may need it."""

    def __init__(self, max_norm: float, norm_type: float = 2.0) -> None:
        if not max_norm > 0:
            raise ValueError(f"GradientClipping: max_norm must be positive, got {max_norm}")
        self.max_norm = float(max_norm)
        self.norm_type = float(norm_type)
        self._params: list[nn.Parameter] = []

    def on_train_begin(self, model: nn.Module, steps_per_epoch: int | None = None) -> None:
        self._params = [p for p in model.parameters() if p.requires_grad]

    def on_before_optimizer_step(self, model: nn.Module, optimizer: Optimizer) -> None:
        if not self._params:
            raise RuntimeError("GradientClipping: on_train_begin(model) was not called")
        nn.utils.clip_grad_norm_(self._params, self.max_norm, norm_type=self.norm_type)
