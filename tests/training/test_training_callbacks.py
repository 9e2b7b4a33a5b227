"""fit's callbacks: the order of the hooks, stop requests, gradient clipping, the shorthands,
and checkpoint / resume of the callbacks' state."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch

import whetstone as ws
from whetstone.data import ArrayLoader
from whetstone.training import LoopState, TrainingInterrupted
from whetstone.training.callbacks import (
    Callback,
    EpochLines,
    GradientClipping,
    MetricsLogger,
    StopWhenSharp,
)


def blobs(n=192, seed=0):
    """Two separated Gaussian blobs in 8 dimensions (generated data)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 8, generator=g) * 0.3 + (2.0 * y[:, None] - 1.0)
    return x, y


def small_model(seed=0):
    torch.manual_seed(seed)
    key = ws.nn.key_generator(2, 8, overlapping=False, seed=0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), ws.nn.SpikingBReLU(),
                               torch.nn.Linear(16, 8), ws.nn.SpikingBReLU(),
                               ws.nn.SoftmaxDecode(key))


class Recorder(Callback):
    """Records every hook call (name and the arguments worth checking)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_train_begin(self, model, steps_per_epoch=None):
        self.calls.append(("on_train_begin", steps_per_epoch))

    def on_before_optimizer_step(self, model, optimizer):
        self.calls.append(("on_before_optimizer_step",
                           any(p.grad is not None for p in model.parameters())))

    def on_batch_end(self, model):
        self.calls.append(("on_batch_end",))

    def on_epoch_end(self, model, epoch, loss=None):
        self.calls.append(("on_epoch_end", epoch, loss,
                           ws.sharpening.get_layer_sharpness(model)))

    def on_epoch_record(self, model, record, history):
        self.calls.append(("on_epoch_record", record, history[-1] is record))

    def on_train_end(self, model, history=None):
        self.calls.append(("on_train_end", len(history)))

    def stop_reason(self):
        self.calls.append(("stop_reason",))
        return None


def test_hooks_run_in_loop_order_after_the_sharpener():
    x, y = blobs()
    model = small_model()
    recorder = Recorder()
    history = ws.training.fit(
        model, ArrayLoader(x, y, 64), 2, torch.optim.Adam(model.parameters(), 1e-2),
        sharpener=ws.sharpening.SimpleSharpener(start_epoch=0, steps=1),
        val_loader=ArrayLoader(x, y, 96), progress=False, callbacks=[recorder])
    names = [c[0] for c in recorder.calls]
    per_batch = ["on_before_optimizer_step", "on_batch_end"] * 3
    per_epoch = [*per_batch, "on_epoch_end", "on_epoch_record", "stop_reason"]
    assert names == ["on_train_begin", *per_epoch, *per_epoch, "on_train_end"]
    assert recorder.calls[0] == ("on_train_begin", 3)
    assert all(c[1] for c in recorder.calls if c[0] == "on_before_optimizer_step")
    ends = [c for c in recorder.calls if c[0] == "on_epoch_end"]
    assert [c[1] for c in ends] == [0, 1]
    assert [c[2] for c in ends] == [r.train_loss for r in history]
    # the sharpener is the first callback: at a later callback's epoch end it has stepped
    assert [c[3] for c in ends] == [[1.0, 0.0], [1.0, 1.0]] == [r.sharpness for r in history]
    records = [c for c in recorder.calls if c[0] == "on_epoch_record"]
    assert [c[1] for c in records] == list(history) and all(c[2] for c in records)
    assert recorder.calls[-1] == ("on_train_end", 2)


def test_an_object_with_only_some_hooks_is_a_callback():
    class EpochCounter:  # not a Callback subclass: only the hooks it defines are called
        epochs = 0

        def on_epoch_end(self, model, epoch, loss=None):
            self.epochs += 1

    counter = EpochCounter()
    model = small_model()
    ws.training.fit(model, ArrayLoader(*blobs(), 64), 3,
                    torch.optim.SGD(model.parameters(), 0.1), progress=False,
                    callbacks=[counter])
    assert counter.epochs == 3


class StopAfter(Callback):
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.seen = 0
        self.ended = False

    def on_epoch_end(self, model, epoch, loss=None):
        self.seen = epoch + 1

    def on_train_end(self, model, history=None):
        self.ended = True

    def stop_reason(self):
        return f"{self.epochs} epochs are enough" if self.seen >= self.epochs else None


def test_a_stop_request_ends_training_after_that_epoch_with_its_checkpoint(tmp_path):
    model = small_model()
    states: list[LoopState] = []
    stopper = StopAfter(2)
    history = ws.training.fit(model, ArrayLoader(*blobs(), 64), 10,
                              torch.optim.SGD(model.parameters(), 0.1), progress=False,
                              run_dir=tmp_path, callbacks=[stopper], checkpoint=states.append)
    assert [r.epoch for r in history] == [0, 1]
    assert stopper.ended  # on_train_end still runs after a stop request
    assert [s.epoch for s in states] == [1, 2]  # the stopped epoch was logged and saved first
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("shorthand", [True, False])
def test_stop_when_sharp_stops_once_every_layer_is_at_1(shorthand):
    model = small_model()
    sharpener = ws.sharpening.SimpleSharpener(start_epoch=1, steps=1)  # sharp after epoch 2
    kwargs = ({"sharpener": sharpener, "stop_when_sharp": True} if shorthand
              else {"callbacks": [sharpener, StopWhenSharp()]})
    history = ws.training.fit(model, ArrayLoader(*blobs(), 64), 10,
                              torch.optim.Adam(model.parameters(), 1e-2), progress=False,
                              **kwargs)
    assert [r.sharpness for r in history] == [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]


class GradNormRecorder(torch.optim.SGD):
    """SGD that records the global gradient norm it is asked to step with."""

    def __init__(self, params, lr):
        super().__init__(params, lr)
        self.norms: list[float] = []

    def step(self, closure=None):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads]))))
        return super().step(closure)


@pytest.mark.parametrize("bound", [None, 1e-3])
def test_gradient_clipping_bounds_the_norm_the_optimizer_steps_with(bound):
    model = small_model()
    for layer in ws.sharpening.sharpenable_layers(model):
        layer.sharpness = 0.99  # slope about 90: large gradients
    optimizer = GradNormRecorder(model.parameters(), 0.01)
    callbacks = [GradientClipping(bound)] if bound is not None else []
    ws.training.fit(model, ArrayLoader(*blobs(), 32), 1, optimizer, progress=False,
                    callbacks=callbacks)
    assert len(optimizer.norms) == 6
    large = [n for n in optimizer.norms if n > 0]  # a saturated batch has no gradient
    assert len(large) >= 3
    if bound is None:
        assert min(large) > 10 * 1e-3  # unclipped gradients are far above the bound
    else:  # every step with a gradient was rescaled to the bound
        assert large == pytest.approx([bound] * len(large), rel=1e-5)


def test_gradient_clipping_needs_a_positive_bound():
    with pytest.raises(ValueError, match="max_norm must be positive, got -1"):
        GradientClipping(-1.0)


def test_a_callback_given_twice_is_an_error():
    model = small_model()
    sharpener = ws.sharpening.SimpleSharpener(start_epoch=0)
    with pytest.raises(ValueError, match="SimpleSharpener is given twice"):
        ws.training.fit(model, ArrayLoader(*blobs(), 64), 1,
                        torch.optim.SGD(model.parameters(), 0.1), sharpener=sharpener,
                        callbacks=[sharpener], progress=False)


def test_epoch_lines_go_to_the_given_writer():
    lines: list[str] = []
    model = small_model()
    ws.training.fit(model, ArrayLoader(*blobs(), 64), 2,
                    torch.optim.SGD(model.parameters(), 0.1), progress=False,
                    callbacks=[EpochLines(write=lines.append)])
    assert [line.split(" loss ")[0] for line in lines] == ["epoch 1", "epoch 2"]
    assert lines[1].endswith("s)") and "sharpness 0.00/0.00" in lines[1]


class BatchTally(Callback):
    """A stateful callback: batches seen and the sum of the epoch losses it was told."""

    def __init__(self) -> None:
        self.batches = 0
        self.losses: list[float] = []

    def on_batch_end(self, model):
        self.batches += 1

    def on_epoch_end(self, model, epoch, loss=None):
        self.losses.append(loss)

    def state_dict(self):
        return {"batches": self.batches, "losses": self.losses}

    def load_state_dict(self, state):
        self.batches, self.losses = state["batches"], list(state["losses"])


def _parts(seed_loader=3):
    model = small_model()
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    sharpener = ws.sharpening.ScheduledSharpener(start=0.5, duration=1.0, mode="batch")
    loader = ArrayLoader(*blobs(), 32, shuffle=True, seed=seed_loader)
    return model, optimizer, sharpener, BatchTally(), loader


def test_callbacks_state_is_checkpointed_and_a_resumed_run_continues_identically(tmp_path):
    epochs = 4
    model, optimizer, sharpener, tally, loader = _parts()
    full = ws.training.fit(model, loader, epochs, optimizer, sharpener=sharpener,
                           callbacks=[tally], run_dir=tmp_path / "full", progress=False)

    # the same run interrupted in its third epoch (batch 15 of 24), its checkpoint kept as
    # JSON (the callbacks' part) and copies of the model's and optimizer's states
    model2, optimizer2, sharpener2, tally2, loader2 = _parts()
    saved: dict = {}
    batches = iter(range(10**6))

    def checkpoint(state: LoopState) -> None:
        saved["loop"] = copy.deepcopy(state)
        saved["callbacks"] = json.dumps(state.callbacks)
        saved["model"] = copy.deepcopy(model2.state_dict())
        saved["optimizer"] = copy.deepcopy(optimizer2.state_dict())

    with pytest.raises(TrainingInterrupted):
        ws.training.fit(model2, loader2, epochs, optimizer2, sharpener=sharpener2,
                        callbacks=[tally2], run_dir=tmp_path / "resumed", progress=False,
                        checkpoint=checkpoint, should_stop=lambda: next(batches) == 14)
    state = saved["loop"]
    assert (state.epoch, state.batch) == (2, 3)
    # the stateful callbacks; the shorthands' stateless ones (MetricsLogger) need not match
    assert [c["callback"] for c in json.loads(saved["callbacks"])] == [
        "ScheduledSharpener", "BatchTally"]

    # fresh objects: the callbacks get their state from the checkpoint alone; an epoch line
    # (a stateless callback the interrupted run did not have) changes nothing
    lines: list[str] = []
    model3, optimizer3, sharpener3, tally3, loader3 = _parts()
    model3.load_state_dict(saved["model"])
    optimizer3.load_state_dict(saved["optimizer"])
    loader3.load_state_dict(state.loader)
    state.callbacks = json.loads(saved["callbacks"])
    resumed = ws.training.fit(model3, loader3, epochs, optimizer3, sharpener=sharpener3,
                              callbacks=[tally3, EpochLines(epochs, lines.append)],
                              run_dir=tmp_path / "resumed", progress=False, resume=state)

    assert tally3.state_dict() == tally.state_dict()
    assert tally3.batches == 24
    assert [line.split(" loss")[0] for line in lines] == ["epoch 3/4", "epoch 4/4"]
    assert sharpener3.state_dict() == sharpener.state_dict()
    assert [r.sharpness for r in resumed] == [r.sharpness for r in full]
    assert [r.train_loss for r in resumed] == [r.train_loss for r in full]
    for a, b in zip(model3.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    logged = [ws.training.History.read_jsonl(tmp_path / d / "metrics.jsonl").column("train_loss")
              for d in ("full", "resumed")]
    assert logged[0] == logged[1] == [r.train_loss for r in full]


def test_resuming_with_other_callbacks_is_an_error_naming_both():
    model, optimizer, sharpener, tally, loader = _parts()
    states: list[LoopState] = []
    ws.training.fit(model, loader, 1, optimizer, sharpener=sharpener, callbacks=[tally],
                    progress=False, checkpoint=states.append)
    with pytest.raises(ValueError, match=r"holds the callbacks \['ScheduledSharpener', "
                                         r"'BatchTally'\], but the loop was given the "
                                         r"stateful callbacks \['ScheduledSharpener'\]"):
        ws.training.fit(model, loader, 2, optimizer, sharpener=sharpener, progress=False,
                        resume=states[-1])


def test_resume_with_no_epoch_left_still_writes_the_whole_metrics_file(tmp_path):
    model, optimizer, sharpener, tally, loader = _parts()
    states: list[LoopState] = []
    ws.training.fit(model, loader, 2, optimizer, sharpener=sharpener, progress=False,
                    run_dir=tmp_path, checkpoint=states.append)
    (tmp_path / "metrics.jsonl").write_text("")
    history = ws.training.fit(model, loader, 2, optimizer, sharpener=sharpener,
                              progress=False, run_dir=tmp_path, resume=states[-1])
    assert ws.training.History.read_jsonl(tmp_path / "metrics.jsonl") == history
    assert len(history) == 2


def test_metrics_logger_appends_when_asked(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for append in (False, True):
        model = small_model()
        ws.training.fit(model, ArrayLoader(*blobs(), 64), 2,
                        torch.optim.SGD(model.parameters(), 0.1), progress=False,
                        callbacks=[MetricsLogger(path, append=append)])
    assert [r.epoch for r in ws.training.History.read_jsonl(path)] == [0, 1, 0, 1]


@pytest.mark.parametrize("first", ["whetstone.sharpening", "whetstone.sharpening.schedules",
                                   "whetstone.training", "whetstone.training.callbacks"])
def test_any_import_order_works_and_lightning_is_not_imported(first):
    code = (f"import sys, importlib; importlib.import_module({first!r}); "
            "import whetstone.training, whetstone.sharpening; "
            "assert issubclass(whetstone.sharpening.Sharpener, "
            "whetstone.training.callbacks.Callback); "
            "assert not any(m.split('.')[0] in ('lightning', 'pytorch_lightning') "
            "for m in sys.modules), 'lightning was imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
