"""Sharpen under a ``lightning.Trainer``: :class:`SharpeningCallback`.

::

    import lightning as L
    from whetstone.integrations.lightning import SharpeningCallback

    sharpener = ws.sharpening.ScheduledSharpener(start=1, duration=1)
    trainer = L.Trainer(max_epochs=4, callbacks=[SharpeningCallback(sharpener)])
    trainer.fit(lit_module, train_dataloaders=loader)   # lit_module wraps a whetstone model

The callback hands Lightning's events to whetstone callbacks (:mod:`whetstone.training.callbacks`:
any sharpener, :class:`~whetstone.training.callbacks.GradientClipping`,
:class:`~whetstone.training.callbacks.StopWhenSharp`, your own): ``on_train_begin`` at the
start of ``fit`` with the trainer's optimizer steps per epoch, ``on_before_optimizer_step``,
``on_batch_end`` after every batch that stepped the optimizer, ``on_epoch_end`` with the
epoch's training loss, ``on_train_end``; a callback's stop request sets
``trainer.should_stop``. Their states go into Lightning's checkpoints
(``checkpoint["callbacks"]``) and come back when ``trainer.fit(..., ckpt_path=...)`` resumes.
The hooks get the ``LightningModule`` as the model (its sharpenable layers are the wrapped
network's). ``on_epoch_record`` is not called: Lightning makes no whetstone
:class:`~whetstone.training.EpochRecord`.

Once every layer is at sharpness 1 (a step, without a surrogate gradient) the loss has no
gradient: let ``training_step`` return ``None`` then (Lightning skips the optimizer step),
as ``fit`` skips it::

    return loss if loss.requires_grad else None

Needs the optional extra ``lightning`` (``pip install 'whetstone[lightning]'``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

try:
    import lightning.pytorch as pl
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"whetstone.integrations.lightning needs the lightning package ({exc}); install it "
        "with: pip install 'whetstone[lightning]'") from exc
import torch
from torch.optim import Optimizer

from ..training.callbacks import (
    callback_name,
    callback_states,
    load_callback_states,
    overrides,
)

__all__ = ["SharpeningCallback"]


class SharpeningCallback(pl.Callback):
    """A ``lightning.Callback`` that drives whetstone sharpeners and callbacks (in order).

    ``monitor`` names the logged metric read as the epoch's training loss (log it from
    ``training_step`` with ``self.log(monitor, loss, on_epoch=True)``); when it is not logged,
    the loss is the mean over the epoch's batches of the loss ``training_step`` returned, and
    ``None`` if it returned none (an :class:`~whetstone.sharpening.AdaptiveSharpener` needs
    a loss and says so).
    """

    def __init__(self, *callbacks: object, monitor: str = "train_loss") -> None:
        if not callbacks:
            raise ValueError("SharpeningCallback needs at least one sharpener or callback")
        names = [callback_name(cb) for cb in callbacks]
        for cb, name in zip(callbacks, names, strict=True):
            if not any(hasattr(cb, hook) for hook in ("on_train_begin", "on_batch_end",
                                                      "on_epoch_end")):
                raise TypeError(f"SharpeningCallback: {name} is not a whetstone callback (it "
                                "has none of on_train_begin, on_batch_end, on_epoch_end)")
        self.callbacks = list(callbacks)
        self.monitor = monitor
        self._step_hooks = [cb.on_before_optimizer_step for cb in callbacks  # type: ignore[attr-defined]
                            if overrides(cb, "on_before_optimizer_step")]
        self._batch_hooks = [cb.on_batch_end for cb in callbacks  # type: ignore[attr-defined]
                             if overrides(cb, "on_batch_end")]
        self._loss_sum: torch.Tensor | None = None
        self._loss_batches = 0

    @property
    def state_key(self) -> str:
        """Key of this callback's state in a Lightning checkpoint (unique per wrapped list)."""
        return f"SharpeningCallback[{','.join(callback_name(cb) for cb in self.callbacks)}]"

    # -- Lightning hooks -----------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``on_train_begin`` with the optimizer steps per epoch (``None`` if unknown)."""
        batches = trainer.num_training_batches
        steps = (math.ceil(batches / max(1, trainer.accumulate_grad_batches))
                 if isinstance(batches, int) or math.isfinite(batches) else None)
        self._reset_loss()
        self._call("on_train_begin", pl_module, steps_per_epoch=steps)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 optimizer: Optimizer) -> None:
        for hook in self._step_hooks:
            hook(pl_module, optimizer)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        """``on_batch_end`` after each optimizer step's batch (with gradient accumulation, the
        last batch of each group), as :func:`~whetstone.training.fit` does even where
        ``training_step`` returned ``None`` (no step); keeps the returned loss for the
        epoch's mean."""
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor):
            loss = loss.detach().float()
            self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
            self._loss_batches += 1
        group = trainer.accumulate_grad_batches
        if group > 1 and (batch_idx + 1) % group and batch_idx + 1 != trainer.num_training_batches:
            return
        for hook in self._batch_hooks:
            hook(pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``on_epoch_end`` with the epoch's training loss; a stop request stops the trainer."""
        loss = self.epoch_loss(trainer)
        self._reset_loss()
        self._call("on_epoch_end", pl_module, trainer.current_epoch, loss)
        for cb in self.callbacks:
            if overrides(cb, "stop_reason") and cb.stop_reason() is not None:  # type: ignore[attr-defined]
                trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._call("on_train_end", pl_module, None)

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Every wrapped stateful callback's name and ``state_dict()``, in order."""
        return {"callbacks": callback_states(self.callbacks)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the same stateful callbacks in the same order, or an
        error naming both lists)."""
        load_callback_states(self.callbacks, copy.deepcopy(state_dict["callbacks"]))

    # -- helpers -------------------------------------------------------------------------
    def epoch_loss(self, trainer: pl.Trainer) -> float | None:
        """The epoch's training loss: the ``monitor`` metric if logged, else the mean loss
        ``training_step`` returned, else ``None``."""
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None:
            return float(value)
        if self._loss_sum is None or self._loss_batches == 0:
            return None
        return float(self._loss_sum) / self._loss_batches

    def _reset_loss(self) -> None:
        self._loss_sum, self._loss_batches = None, 0

    def _call(self, hook: str, *args: Any, **kwargs: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(*args, **kwargs)
