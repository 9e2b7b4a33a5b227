"""Transactional run folders, checkpoints and exact resume.

A run killed (or interrupted by a signal) at an epoch boundary or inside an epoch and resumed
ends with a ``model.safetensors`` byte for byte equal to an uninterrupted run's, for every
schedule; a rejected or failed command leaves an existing run exactly as it was.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import whetstone as ws
from whetstone.runs import load_run, train_run
from whetstone.runs.checkpoint import CHECKPOINT
from whetstone.runs.io import WeightsFileError
from whetstone.runs.transaction import RunFolderError, lock_file, partial_folder, run_lock
from whetstone.training import TrainingError, TrainingInterrupted

LIMITS = {"train_limit": 1200, "test_limit": 300}
"""Tiny runs: 1,200 training images at batch 128 (10 batches per epoch), 300 to score."""

SCHEDULES = {
    "simple": {"name": "simple", "start_epoch": 1, "steps": 2},
    "scheduled": {"name": "scheduled", "start": 1, "duration": 1, "intermission": 0,
                  "mode": "batch"},
    "adaptive": {"name": "adaptive", "min_init_epochs": 1},
    "step": {"name": "step", "start_step": 5, "layer_duration": 6},
}


def _config(schedule: str) -> ws.presets.TrainConfig:
    return ws.presets.get_preset("mnist-dense").merged(
        {"epochs": 4, "finetune_epochs": 0, "schedule": SCHEDULES[schedule], "seed": 3,
         "augment": "shift-1", "lr_schedule": "cosine"})


def _diverging(config: ws.presets.TrainConfig) -> ws.presets.TrainConfig:
    """``config`` with SGD at a learning rate that makes the loss infinite in epoch 2."""
    return ws.presets.TrainConfig.from_dict(
        {**config.to_dict(), "optimizer": {"name": "sgd", "lr": 1e38}})


class StopAfter:
    """``should_stop`` stand-in: True from the ``n``-th batch on (counted over all epochs)."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.n


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_ready):
    """Uninterrupted runs, one per schedule: their weights files' bytes."""
    root = tmp_path_factory.mktemp("reference")
    out = {}
    for name in SCHEDULES:
        train_run(_config(name), root / name, progress=False, plot=False, **LIMITS)
        out[name] = (root / name / "model.safetensors").read_bytes()
    return out


def _interrupt(monkeypatch, config, out: Path, after_batches: int) -> None:
    """Train ``config`` into ``out`` and stop it after ``after_batches`` batches."""
    import whetstone.runs.folder as folder

    stop = StopAfter(after_batches)
    real = folder._stop_on_signals

    def fake(enabled):  # the same context manager, but stopping on our count
        from contextlib import contextmanager

        @contextmanager
        def ctx():
            with real(enabled):
                yield stop
        return ctx()

    monkeypatch.setattr(folder, "_stop_on_signals", fake)
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train_run(config, out, progress=False, plot=False, **LIMITS)
    monkeypatch.setattr(folder, "_stop_on_signals", real)


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("after", [10, 17], ids=["epoch-boundary", "mid-epoch"])
def test_interrupted_and_resumed_run_is_byte_identical(reference, schedule, after, tmp_path,
                                                       monkeypatch):
    out = tmp_path / "run"
    _interrupt(monkeypatch, _config(schedule), out, after)
    assert not out.exists(), "an interrupted run is not swapped in"
    assert (partial_folder(out) / CHECKPOINT).is_file()
    summary = train_run(None, out, progress=False, plot=False, resume=True)
    assert summary["resumed"] and summary["epochs"] == 4
    assert (out / "model.safetensors").read_bytes() == reference[schedule]
    assert not partial_folder(out).exists()
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1, 2, 3]


def test_hard_kill_resumes_from_the_last_epoch_checkpoint(reference, tmp_path, mnist_ready):
    """SIGKILL in the middle of epoch 3 (no chance to save): resume replays from epoch 2's end."""
    out = tmp_path / "run"
    script = textwrap.dedent(f"""
        import os, signal
        import whetstone as ws
        from whetstone.runs import train_run
        import whetstone.training.loop as loop
        real = loop.LoopState
        config = ws.presets.get_preset("mnist-dense").merged({json.dumps(
            {"epochs": 4, "finetune_epochs": 0, "schedule": SCHEDULES["scheduled"], "seed": 3,
             "augment": "shift-1", "lr_schedule": "cosine"})})
        import whetstone.runs.folder as folder
        save = folder.save_checkpoint
        def save_then_die(path, state, *a, **k):
            save(path, state, *a, **k)
            if state.epoch == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        folder.save_checkpoint = save_then_die
        train_run(config, {str(out)!r}, progress=False, plot=False, train_limit=1200,
                  test_limit=300)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not out.exists()
    train_run(None, out, progress=False, plot=False, resume=True)
    assert (out / "model.safetensors").read_bytes() == reference["scheduled"]


def test_sigint_writes_a_checkpoint_and_says_how_to_resume(tmp_path, mnist_ready):
    """A real SIGINT to ``whetstone train``: one line, no traceback, non-zero exit, resumable."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "whetstone", "train", "--preset", "mnist-dense", "--epochs",
           "50", "--train-limit", "1200", "--test-limit", "300", "--out", str(out),
           "--no-progress", "--no-plot"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    checkpoint = partial_folder(out) / CHECKPOINT
    import time

    deadline = time.monotonic() + 120
    while not checkpoint.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert checkpoint.is_file(), proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "--resume" in lines[0], err
    assert checkpoint.is_file() and not out.exists()


def test_rejected_retrain_leaves_the_existing_run_untouched(tmp_path, mnist_ready):
    out = tmp_path / "run"
    config = _config("simple").merged({"epochs": 2})
    train_run(config, out, progress=False, plot=False, **LIMITS)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "spiking.npz").write_bytes(b"derived from the old model")
    with pytest.raises(ValueError):
        train_run(config.merged({"batch_size": 0}), out, progress=False, **LIMITS)
    with pytest.raises(TrainingError):  # fails while training: the loss diverges
        train_run(_diverging(config), out, progress=False, **LIMITS)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "spiking.npz"}
    assert after == before
    load_run(out)  # still loads


def test_retrain_replaces_the_whole_folder(tmp_path, mnist_ready):
    """Derived files of the previous model (spiking.npz, stats.json) do not survive a retrain."""
    out = tmp_path / "run"
    config = _config("simple").merged({"epochs": 2})
    train_run(config, out, progress=False, plot=False, **LIMITS)
    (out / "spiking.npz").write_bytes(b"old")
    (out / "stats.json").write_text("{}")
    train_run(config.merged({"seed": 4}), out, progress=False, plot=False, **LIMITS)
    assert not (out / "spiking.npz").exists() and not (out / "stats.json").exists()
    assert json.loads((out / "config.json").read_text())["seed"] == 4
    assert not partial_folder(out).exists()


def test_a_second_writer_is_refused(tmp_path, mnist_ready):
    out = tmp_path / "run"
    with run_lock(out):
        code = ("import sys; from whetstone.runs.transaction import run_lock\n"
                f"with run_lock({str(out)!r}): pass")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode != 0 and "another whetstone process" in proc.stderr
        with pytest.raises(RunFolderError, match="another whetstone process"):
            with run_lock(out):
                pass
    assert lock_file(out).is_file()
    with run_lock(out):  # released
        pass


def test_nothing_to_resume_is_a_clear_error(tmp_path, mnist_ready):
    with pytest.raises(RunFolderError, match="nothing to resume"):
        train_run(None, tmp_path / "never", resume=True)


def test_resume_refuses_another_configuration(tmp_path, monkeypatch, mnist_ready):
    out = tmp_path / "run"
    _interrupt(monkeypatch, _config("simple"), out, 5)
    with pytest.raises(RunFolderError, match="another configuration"):
        train_run(_config("simple").merged({"seed": 9}), out, resume=True, progress=False)


def test_diverging_run_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, mnist_ready):
    """The loss turns NaN in epoch 2: the error says so, epoch 1's checkpoint stays."""
    from whetstone.tasks import Classification

    real = Classification.loss
    calls = []

    def nan_from_batch_15(self, logits, target):
        calls.append(1)
        loss = real(self, logits, target)
        return loss * float("nan") if len(calls) >= 15 else loss

    monkeypatch.setattr(Classification, "loss", nan_from_batch_15)
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match="last good checkpoint"):
        train_run(_config("simple"), out, progress=False, plot=False, **LIMITS)
    assert not out.exists()
    assert (partial_folder(out) / CHECKPOINT).is_file()


def test_a_run_that_fails_before_any_checkpoint_leaves_nothing(tmp_path, mnist_ready):
    out = tmp_path / "run"
    with pytest.raises(TrainingError):
        train_run(_diverging(_config("simple")), out, progress=False, plot=False, **LIMITS)
    assert not out.exists() and not partial_folder(out).exists()


def test_files_get_the_users_permissions(tmp_path, mnist_ready):
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        train_run(_config("simple").merged({"epochs": 1}), out, progress=False, plot=False,
                  **LIMITS)
    finally:
        os.umask(old)
    for path in out.iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_flipped_weight_byte_is_refused(tmp_path, mnist_ready):
    out = tmp_path / "run"
    train_run(_config("simple").merged({"epochs": 1}), out, progress=False, plot=False,
              **LIMITS)
    data = bytearray((out / "model.safetensors").read_bytes())
    data[-5] ^= 0x01  # a weight's low mantissa bit
    (out / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsFileError, match="checksum"):
        load_run(out)


def test_same_weights_same_bytes(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    ws.runs.save_weights(model, a, metadata={"x": "1", "format": "f", "y": "2"})
    ws.runs.save_weights(model, b, metadata={"y": "2", "x": "1", "format": "f"})
    assert a.read_bytes() == b.read_bytes()


def test_full_disk_at_the_end_keeps_the_old_run_and_a_checkpoint(tmp_path, monkeypatch,
                                                                 mnist_ready):
    """ENOSPC while writing the model: the previous run stays, the new one can be resumed."""
    import errno

    import whetstone.runs.folder as folder

    out = tmp_path / "run"
    config = _config("simple").merged({"epochs": 1})
    train_run(config, out, progress=False, plot=False, **LIMITS)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def no_space(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(folder, "save_weights", no_space)
    with pytest.raises(OSError, match="No space left"):
        train_run(config.merged({"seed": 8}), out, progress=False, plot=False, **LIMITS)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert (partial_folder(out) / CHECKPOINT).is_file()
    assert not list(tmp_path.glob("**/*.tmp"))
    monkeypatch.undo()
    summary = train_run(None, out, progress=False, plot=False, resume=True)
    assert summary["seed"] == 8 and summary["resumed"]


@pytest.mark.parametrize("extra", [["--epochs", "3"], ["--preset", "mnist-dense"],
                                   ["--out", "elsewhere"], ["--seed", "2"]])
def test_cli_resume_refuses_other_training_options(extra, capsys):
    from whetstone.cli.main import main

    assert main(["train", "--resume", "runs/x", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume" in err[0] and extra[0] in err[0]


def test_cli_resume_of_a_finished_run_says_so(tmp_path, capsys, mnist_ready):
    out = tmp_path / "run"
    train_run(_config("simple").merged({"epochs": 1}), out, progress=False, plot=False,
              **LIMITS)
    from whetstone.cli.main import main

    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing to resume" in err[0] and "finished" in err[0]
