"""Sharpening schedules ("sharpeners"): when and how fast each layer becomes a step (§2).

Every sharpener is a :class:`~whetstone.training.callbacks.Callback` (``fit(callbacks=[...])``,
or ``fit(sharpener=...)``, its shorthand) and works from any training loop through three
hooks::

    sharpener.on_train_begin(model, steps_per_epoch=len(loader))
    for epoch in range(epochs):
        for batch in loader:
            ...optimizer step...
            sharpener.on_batch_end(model)
        sharpener.on_epoch_end(model, epoch, loss)    # epochs count from 0
        if sharpener.done: ...                          # every layer at 1

``state_dict()`` / ``load_state_dict()`` hold the schedule's counters, so a resumed run
continues exactly (the layers' sharpness itself lives in the model's ``state_dict``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from torch import nn

from ..nn.activations import Sharpenable, SpikingBReLU
from ..training.callbacks import Callback
from .allocation import (
    get_layer_sharpness,
    set_layer_sharpness,
    set_model_sharpness,
    sharpenable_layers,
    uniform,
)

Mode = Literal["epoch", "batch"]
SNAP_TOLERANCE = 0.001
"""A layer within this of 1 snaps to exactly 1 (adaptive schedule)."""


class Sharpener(Callback):
    """Base class: counts batches and epochs; subclasses decide the sharpness.

    A sharpener is a training-loop :class:`~whetstone.training.callbacks.Callback` (the
    first of ``fit``'s callbacks) that uses its ``on_train_begin``, ``on_batch_end``,
    ``on_epoch_end`` and ``state_dict`` / ``load_state_dict`` hooks."""

    def __init__(self) -> None:
        self.steps_per_epoch: int | None = None
        self.epoch = 0  # epoch in progress (0-based)
        self.batch = 0  # batches finished in the epoch in progress
        self._layers: list[Sharpenable] = []
        self._finished = False

    # -- hooks -------------------------------------------------------------------------
    def on_train_begin(self, model: nn.Module, steps_per_epoch: int | None = None) -> None:
        """Call once before training; ``steps_per_epoch`` is needed by per-batch modes."""
        if steps_per_epoch is not None:
            self.steps_per_epoch = int(steps_per_epoch)
        # found once: the per-batch hooks then touch only these layers, not the module tree
        self._layers = sharpenable_layers(model)
        if not self._layers:
            raise ValueError("the model has no sharpenable layers (SpikingBReLU/SpikingSigmoid)")

    def on_batch_end(self, model: nn.Module) -> None:
        """Call after every optimizer step."""
        self.batch += 1

    def on_epoch_end(self, model: nn.Module, epoch: int, loss: float | None = None) -> None:
        """Call after every epoch with its 0-based index and its (training) loss."""
        if self.steps_per_epoch is None and self.batch > 0:
            self.steps_per_epoch = self.batch
        self.epoch = epoch + 1
        self.batch = 0

    # -- state -------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True once the schedule has set every layer to 1."""
        return bool(self._finished)

    def state_dict(self) -> dict[str, Any]:
        """Counters and flags (JSON-serialisable) that fully determine the schedule's future."""
        return {k: v for k, v in vars(self).items() if k != "_layers"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; unknown keys are an error."""
        unknown = set(state) - set(vars(self))
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown state keys {sorted(unknown)}")
        for k, v in state.items():
            setattr(self, k, v)

    @property
    def _n_layers(self) -> int:
        assert self._layers, "call on_train_begin(model) first"
        return len(self._layers)

    def _need_steps(self) -> int:
        if not self.steps_per_epoch:
            raise ValueError(
                f"{type(self).__name__} in per-batch mode needs steps_per_epoch: pass it to "
                "the constructor or to on_train_begin(model, steps_per_epoch=len(loader))"
            )
        return self.steps_per_epoch

    def config(self) -> dict[str, Any]:
        """Constructor arguments (for run folders)."""
        return {}


class SimpleSharpener(Sharpener):
    """Raise model sharpness by equal steps from the end of ``start_epoch`` on.

    Per-epoch mode: at the end of every epoch ``>= start_epoch`` the model sharpness grows by
    ``1 / (steps * N)`` (bottom-up) or ``1 / steps`` (uniform); the last step sets exactly 1.
    Per-batch mode spreads each epoch's step over its batches (starting with the first batch
    of ``start_epoch``), reaching the same values at every epoch end.
    """

    def __init__(
        self,
        start_epoch: int,
        steps: int = 4,
        bottom_up: bool = True,
        mode: Mode = "epoch",
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__()
        if steps < 1 or start_epoch < 0:
            raise ValueError("need steps >= 1 and start_epoch >= 0")
        if mode not in ("epoch", "batch"):
            raise ValueError(f"mode must be 'epoch' or 'batch', got {mode!r}")
        self.start_epoch = int(start_epoch)
        self.steps = int(steps)
        self.bottom_up = bool(bottom_up)
        self.mode: Mode = mode
        self.steps_per_epoch = steps_per_epoch
        self.ticks = 0  # steps (epoch mode) or batches (batch mode) taken

    def config(self) -> dict[str, Any]:
        return {"start_epoch": self.start_epoch, "steps": self.steps,
                "bottom_up": self.bottom_up, "mode": self.mode}

    def total_steps(self) -> int:
        """Number of increments from 0 to 1: ``steps * N`` bottom-up, ``steps`` uniform."""
        return self.steps * (self._n_layers if self.bottom_up else 1)

    def _apply(self, model: nn.Module, ticks_total: int) -> None:
        self.ticks = min(self.ticks, ticks_total)
        m = 1.0 if self.ticks >= ticks_total else self.ticks / ticks_total
        set_model_sharpness(self._layers, m, bottom_up=self.bottom_up)
        self._finished = self.ticks >= ticks_total

    def on_batch_end(self, model: nn.Module) -> None:
        super().on_batch_end(model)
        if self.mode == "batch" and self.epoch >= self.start_epoch and not self._finished:
            self.ticks += 1
            self._apply(model, self.total_steps() * self._need_steps())

    def on_epoch_end(self, model: nn.Module, epoch: int, loss: float | None = None) -> None:
        super().on_epoch_end(model, epoch, loss)
        if self.mode == "epoch" and epoch >= self.start_epoch and not self._finished:
            self.ticks += 1
            self._apply(model, self.total_steps())


class ScheduledSharpener(Sharpener):
    """Each layer sharpens linearly over its own window of epochs, one layer after another.

    Layer ``i`` goes from 0 to 1 over ``[start + i (duration + intermission),
    start + i (duration + intermission) + duration)`` epochs, batch by batch (``mode="batch"``,
    the original) or at epoch ends (``mode="epoch"``). The original took whole epochs; here
    ``start``, ``duration`` and ``intermission`` may be fractions of an epoch (batch mode),
    which compresses the schedule for short runs.
    """

    def __init__(
        self,
        start: float,
        duration: float,
        intermission: float = 0,
        mode: Mode = "batch",
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__()
        if duration <= 0 or start < 0 or intermission < 0:
            raise ValueError("need start >= 0, duration > 0 and intermission >= 0")
        if mode not in ("epoch", "batch"):
            raise ValueError(f"mode must be 'epoch' or 'batch', got {mode!r}")
        self.start = start
        self.duration = duration
        self.intermission = intermission
        self.mode: Mode = mode
        self.steps_per_epoch = steps_per_epoch

    def config(self) -> dict[str, Any]:
        return {"start": self.start, "duration": self.duration,
                "intermission": self.intermission, "mode": self.mode}

    def layer_sharpness(self, t: float, n_layers: int) -> list[float]:
        """Per-layer sharpness at training time ``t`` (epochs elapsed, fractional)."""
        out = []
        for i in range(n_layers):
            begin = self.start + i * (self.duration + self.intermission)
            value = min(1.0, max(0.0, (t - begin) / self.duration))
            # fractional windows accumulate rounding: a window's end must give exactly 1.0
            out.append(1.0 if value > 1.0 - 1e-9 else value)
        return out

    def end_epoch(self, n_layers: int) -> float:
        """Epochs elapsed when the last layer reaches 1."""
        return self.start + (n_layers - 1) * (self.duration + self.intermission) + self.duration

    def _apply(self, model: nn.Module, t: float) -> None:
        values = self.layer_sharpness(t, self._n_layers)
        set_layer_sharpness(self._layers, values)
        self._finished = all(v >= 1.0 for v in values)

    def on_batch_end(self, model: nn.Module) -> None:
        super().on_batch_end(model)
        if self.mode == "batch" and not self._finished:
            steps = self._need_steps()
            self._apply(model, self.epoch + self.batch / steps)

    def on_epoch_end(self, model: nn.Module, epoch: int, loss: float | None = None) -> None:
        super().on_epoch_end(model, epoch, loss)
        if not self._finished:
            self._apply(model, float(epoch + 1))


class AdaptiveSharpener(Sharpener):
    """Sharpen when the loss plateaus, pause when it degrades (the original's adaptive mode).

    Per batch, while sharpening is on, the lowest layer below 1 gains ``rate`` (``cz_rate``
    once above ``critical``; times ``first_layer_relative_rate`` for layer 0) divided by the
    batches per epoch; within 0.001 of 1 it snaps to 1 and the next layer waits for the next
    epoch. At each epoch end the relative change of the loss against a reference,
    ``(loss - ref) / max(|ref|, loss_floor)`` (guarded near 0), decides: sharpening starts or
    resumes once the loss has not improved by ``sig_increase`` for more than ``patience``
    epochs, and pauses whenever the loss rises ``sig_decrease`` above the reference. Before
    ``min_init_epochs`` epochs nothing sharpens.
    """

    def __init__(
        self,
        min_init_epochs: int = 10,
        rate: float = 0.25,
        cz_rate: float = 0.126,
        critical: float = 0.75,
        first_layer_relative_rate: float = 1.0,
        patience: int = 1,
        sig_increase: float = 0.15,
        sig_decrease: float = 0.15,
        loss_floor: float = 1e-3,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__()
        self.min_init_epochs = int(min_init_epochs)
        self.rate = float(rate)
        self.cz_rate = float(cz_rate)
        self.critical = float(critical)
        self.first_layer_relative_rate = float(first_layer_relative_rate)
        self.patience = int(patience)
        self.sig_increase = float(sig_increase)
        self.sig_decrease = float(sig_decrease)
        self.loss_floor = float(loss_floor)
        self.steps_per_epoch = steps_per_epoch
        self.sharpening = False
        self.waiting = False  # a layer just finished: the next one waits for the next epoch
        self.reference: float | None = None
        self.stale_epochs = 0
        self.sharpened_epochs: list[int] = []

    def config(self) -> dict[str, Any]:
        keys = ("min_init_epochs", "rate", "cz_rate", "critical", "first_layer_relative_rate",
                "patience", "sig_increase", "sig_decrease", "loss_floor")
        return {k: getattr(self, k) for k in keys}

    def on_batch_end(self, model: nn.Module) -> None:
        super().on_batch_end(model)
        if not self.sharpening or self.waiting or self._finished:
            return
        values = get_layer_sharpness(self._layers)
        i = next(j for j, v in enumerate(values) if v < 1.0)
        rate = self.cz_rate if values[i] > self.critical else self.rate
        if i == 0:
            rate *= self.first_layer_relative_rate
        values[i] = min(1.0, values[i] + rate / self._need_steps())
        if values[i] >= 1.0 - SNAP_TOLERANCE:
            values[i] = 1.0
            self.waiting = True
        set_layer_sharpness(self._layers, values)
        self._finished = all(v >= 1.0 for v in values)
        if not self.sharpened_epochs or self.sharpened_epochs[-1] != self.epoch:
            self.sharpened_epochs.append(self.epoch)

    def relative_change(self, loss: float) -> float:
        """``(loss - ref) / max(|ref|, loss_floor)``; 0 when there is no reference yet."""
        if self.reference is None:
            return 0.0
        return (loss - self.reference) / max(abs(self.reference), self.loss_floor)

    def on_epoch_end(self, model: nn.Module, epoch: int, loss: float | None = None) -> None:
        super().on_epoch_end(model, epoch, loss)
        self.waiting = False
        if loss is None or not math.isfinite(loss):
            raise ValueError(f"AdaptiveSharpener needs the epoch's finite loss, got {loss!r}")
        if self.reference is None:
            self.reference = loss
            return
        change = self.relative_change(loss)
        if self.sharpening:
            if change > self.sig_decrease:  # loss degraded: pause, wait for a new plateau
                self.sharpening = False
                self.reference = loss
                self.stale_epochs = 0
            elif loss < self.reference:
                self.reference = loss
            return
        if change < -self.sig_increase:  # still improving substantially
            self.reference = loss
            self.stale_epochs = 0
        else:
            self.stale_epochs += 1
        if self.stale_epochs > self.patience and epoch + 1 >= self.min_init_epochs:
            self.sharpening = True
            self.reference = loss
            self.stale_epochs = 0


class StepSharpener(Sharpener):
    """For reinforcement learning: model sharpness grows with the environment step count.

    ``m = clip((step - start_step) / (layer_duration * N), 0, 1)`` allocated bottom-up; call
    :meth:`on_step` (or :meth:`on_batch_end`) once per environment step.
    """

    def __init__(self, start_step: int, layer_duration: int) -> None:
        super().__init__()
        if layer_duration < 1 or start_step < 0:
            raise ValueError("need start_step >= 0 and layer_duration >= 1")
        self.start_step = int(start_step)
        self.layer_duration = int(layer_duration)
        self.step = 0

    def config(self) -> dict[str, Any]:
        return {"start_step": self.start_step, "layer_duration": self.layer_duration}

    def on_step(self, model: nn.Module, steps: int = 1) -> None:
        self.step += steps
        total = self.layer_duration * self._n_layers
        done_steps = min(total, max(0, self.step - self.start_step))
        set_model_sharpness(self._layers, done_steps / total)
        self._finished = done_steps >= total

    def on_batch_end(self, model: nn.Module) -> None:
        super().on_batch_end(model)
        self.on_step(model)


SHARPENERS: dict[str, type[Sharpener]] = {
    "simple": SimpleSharpener,
    "scheduled": ScheduledSharpener,
    "adaptive": AdaptiveSharpener,
    "step": StepSharpener,
}


def make_sharpener(name: str, **kwargs: Any) -> Sharpener:
    """Build a sharpener from its name (``simple``, ``scheduled``, ``adaptive``, ``step``)."""
    try:
        cls = SHARPENERS[name]
    except KeyError:
        raise ValueError(f"unknown schedule {name!r}; choose from {sorted(SHARPENERS)}") from None
    return cls(**kwargs)


class UniformAllocation(Sharpener):
    """Any sharpener's model sharpness given to every layer alike (``allocation = "uniform"``).

    The wrapped sharpener drives stand-in layers exactly as it would drive the model (bottom-up,
    or by its own per-layer windows); after every hook each real layer is set to the mean of the
    stand-ins' sharpness, i.e. the model sharpness ``m`` (for a bottom-up allocation the mean is
    exactly ``m``), allocated by :func:`whetstone.sharpening.allocation.uniform`. The timing is
    the wrapped schedule's: ``m`` reaches 1 at the same batch, only its spread over the layers
    differs. (``SimpleSharpener(bottom_up=False)`` is the original's uniform Simple schedule,
    which takes ``steps`` rather than ``steps * N`` increments.)
    """

    def __init__(self, inner: Sharpener) -> None:
        super().__init__()
        self.inner = inner
        self._stand_ins: list[Sharpenable] = []
        self._stand_in_model = nn.Sequential()
        self._pending: list[float] | None = None

    def on_train_begin(self, model: nn.Module, steps_per_epoch: int | None = None) -> None:
        super().on_train_begin(model, steps_per_epoch)
        if len(self._stand_ins) != len(self._layers):
            self._stand_ins = [SpikingBReLU() for _ in self._layers]
        if self._pending is not None:
            set_layer_sharpness(self._stand_ins, self._pending)
            self._pending = None
        self._stand_in_model = nn.Sequential(*self._stand_ins)
        self.inner.on_train_begin(self._stand_in_model, steps_per_epoch)

    def _sync(self) -> None:
        m = min(1.0, sum(get_layer_sharpness(self._stand_ins)) / len(self._stand_ins))
        set_layer_sharpness(self._layers, uniform(m, len(self._layers)))

    def on_batch_end(self, model: nn.Module) -> None:
        super().on_batch_end(model)
        self.inner.on_batch_end(self._stand_in_model)
        self._sync()

    def on_epoch_end(self, model: nn.Module, epoch: int, loss: float | None = None) -> None:
        super().on_epoch_end(model, epoch, loss)
        self.inner.on_epoch_end(self._stand_in_model, epoch, loss)
        self._sync()

    @property
    def done(self) -> bool:
        return self.inner.done

    def state_dict(self) -> dict[str, Any]:
        """The wrapped schedule's state and the stand-in layers' sharpness."""
        stand_ins = get_layer_sharpness(self._stand_ins) if self._stand_ins else self._pending
        return {"inner": self.inner.state_dict(), "stand_ins": stand_ins}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = set(state) - {"inner", "stand_ins"}
        if unknown:
            raise ValueError(f"UniformAllocation: unknown state keys {sorted(unknown)}")
        self.inner.load_state_dict(state["inner"])
        values = state.get("stand_ins")
        if values is not None and len(values) == len(self._stand_ins):
            set_layer_sharpness(self._stand_ins, values)
        else:
            self._pending = values

    def config(self) -> dict[str, Any]:
        return {**self.inner.config(), "allocation": "uniform"}
