"""SharpeningCallback under a real lightning.Trainer (CPU, generated data): the schedule runs
to sharpness 1, stop requests, gradient accumulation, and resuming from a Lightning
checkpoint restores the sharpener's state."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import whetstone as ws
from whetstone.training.callbacks import Callback, StopWhenSharp

try:
    import lightning.pytorch as pl
except ImportError as exc:  # only where the lightning extra cannot be installed
    pytest.skip(f"lightning is not installed: {exc!r}", allow_module_level=True)

from whetstone.integrations.lightning import SharpeningCallback  # noqa: E402


def blobs(n=192, seed=0):
    """Two separated Gaussian blobs in 8 dimensions (generated data)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 8, generator=g) * 0.3 + (2.0 * y[:, None] - 1.0)
    return x, y


def loader():
    return DataLoader(TensorDataset(*blobs()), batch_size=32, shuffle=False)  # 6 batches


class LitMLP(pl.LightningModule):
    """A small whetstone MLP (two sharpenable layers) in a LightningModule."""

    def __init__(self, log_loss: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        key = ws.nn.key_generator(2, 8, overlapping=False, seed=0)
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), ws.nn.SpikingBReLU(),
                                       torch.nn.Linear(16, 8), ws.nn.SpikingBReLU(),
                                       ws.nn.SoftmaxDecode(key))
        self.task = ws.tasks.Classification()
        self.log_loss = log_loss

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.task.loss(self.net(x), y)
        if self.log_loss:
            self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss if loss.requires_grad else None  # fully sharp: no gradient, no step

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), 1e-2)


def trainer(max_epochs=2, **kwargs):
    options = {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
               "logger": False, "enable_checkpointing": False, "enable_model_summary": False}
    return pl.Trainer(max_epochs=max_epochs, **{**options, **kwargs})


class Recorder(Callback):
    def __init__(self, sharpener=None) -> None:
        self.sharpener = sharpener
        self.begins: list[tuple] = []
        self.steps = 0
        self.batches = 0
        self.epochs: list[tuple] = []
        self.ended = False

    def on_train_begin(self, model, steps_per_epoch=None):
        state = copy.deepcopy(self.sharpener.state_dict()) if self.sharpener else None
        self.begins.append((steps_per_epoch, state))

    def on_before_optimizer_step(self, model, optimizer):
        self.steps += 1

    def on_batch_end(self, model):
        self.batches += 1

    def on_epoch_end(self, model, epoch, loss=None):
        self.epochs.append((epoch, loss, ws.sharpening.get_layer_sharpness(model)))

    def on_train_end(self, model, history=None):
        self.ended = True


def schedule():
    # layer 0 sharpens over epochs [0.5, 1), layer 1 over [1, 1.5): both at 1 within 2 epochs
    return ws.sharpening.ScheduledSharpener(start=0.5, duration=0.5, mode="batch")


def test_the_trainer_drives_the_schedule_to_sharpness_1():
    lit, sharpener = LitMLP(), schedule()
    recorder = Recorder()
    trainer_ = trainer(callbacks=[SharpeningCallback(sharpener, recorder)])
    trainer_.fit(lit, train_dataloaders=loader())
    assert ws.sharpening.get_layer_sharpness(lit.net) == [1.0, 1.0]
    assert sharpener.done and sharpener.steps_per_epoch == 6
    assert recorder.begins == [(6, None)]
    # sharp after batch 9 of 12: the last 3 have no gradient, but count as in fit
    assert recorder.batches == 12 and recorder.steps >= 9
    assert [(e, s) for e, _, s in recorder.epochs] == [(0, [1.0, 0.0]), (1, [1.0, 1.0])]
    # the logged epoch loss is handed over (equal batches: Lightning's mean is the plain mean)
    losses = [loss for _, loss, _ in recorder.epochs]
    assert all(isinstance(v, float) and 0 < v < 10 for v in losses)
    assert recorder.ended


def test_without_a_logged_loss_the_mean_returned_loss_is_used():
    lit = LitMLP(log_loss=False)
    recorder = Recorder()
    trainer(max_epochs=1, callbacks=[SharpeningCallback(recorder)]).fit(
        lit, train_dataloaders=loader())
    (epoch, loss, _), = recorder.epochs
    assert epoch == 0 and isinstance(loss, float) and 0 < loss < 10


def test_a_stop_request_stops_the_trainer():
    lit, sharpener = LitMLP(), ws.sharpening.SimpleSharpener(start_epoch=0, steps=1)
    trainer_ = trainer(max_epochs=10,
                       callbacks=[SharpeningCallback(sharpener, StopWhenSharp(sharpener))])
    trainer_.fit(lit, train_dataloaders=loader())
    assert ws.sharpening.get_layer_sharpness(lit.net) == [1.0, 1.0]
    assert trainer_.current_epoch == 2  # sharp after the second epoch: no third


def test_with_gradient_accumulation_a_step_is_a_group_of_batches():
    recorder = Recorder()
    trainer(max_epochs=1, accumulate_grad_batches=2,
            callbacks=[SharpeningCallback(recorder)]).fit(LitMLP(), train_dataloaders=loader())
    assert recorder.begins == [(3, None)]
    assert (recorder.steps, recorder.batches) == (3, 3)


def test_a_lightning_checkpoint_restores_the_sharpeners_state(tmp_path):
    # uninterrupted: two epochs
    full, full_sharpener = LitMLP(), schedule()
    trainer(callbacks=[SharpeningCallback(full_sharpener)]).fit(
        full, train_dataloaders=loader())

    # one epoch, a checkpoint, then a fresh module and sharpener resumed from it
    first, sharpener = LitMLP(), schedule()
    trainer_ = trainer(max_epochs=1, callbacks=[SharpeningCallback(sharpener)])
    trainer_.fit(first, train_dataloaders=loader())
    saved = copy.deepcopy(sharpener.state_dict())
    assert saved["epoch"] == 1 and not sharpener.done
    path = tmp_path / "epoch1.ckpt"
    trainer_.save_checkpoint(path)

    resumed, fresh = LitMLP(), schedule()
    recorder = Recorder(fresh)  # its own callback: the checkpoint's is the sharpener's alone
    trainer(callbacks=[SharpeningCallback(fresh), SharpeningCallback(recorder)]).fit(
        resumed, train_dataloaders=loader(), ckpt_path=path)
    # the sharpener had its state back before training went on
    assert recorder.begins == [(6, saved)]
    assert len(recorder.epochs) == 1 and recorder.epochs[0][0] == 1
    assert fresh.state_dict() == full_sharpener.state_dict()
    assert ws.sharpening.get_layer_sharpness(resumed.net) == [1.0, 1.0]
    for a, b in zip(resumed.state_dict().values(), full.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_a_checkpoint_of_other_callbacks_is_refused():
    callback = SharpeningCallback(schedule())
    other = SharpeningCallback(ws.sharpening.SimpleSharpener(start_epoch=0))
    with pytest.raises(ValueError, match=r"holds the callbacks \['SimpleSharpener'\], but "
                                         r"the loop was given the stateful callbacks "
                                         r"\['ScheduledSharpener'\]"):
        callback.load_state_dict(other.state_dict())
    assert callback.state_key != other.state_key


def test_only_whetstone_callbacks_are_accepted():
    with pytest.raises(TypeError, match="int is not a whetstone callback"):
        SharpeningCallback(3)
    with pytest.raises(ValueError, match="at least one"):
        SharpeningCallback()
