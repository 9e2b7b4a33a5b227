"""Data-parallel training with 2 CPU processes (gloo), launched by torchrun.

Two processes at half the batch each compute one process's step at the global batch up to the
rounding of half-size matrix products: over the first Adadelta steps the ranks' losses average
to the single process's within 1e-5 and the ranks' weights stay identical. Over whole runs
Adadelta at lr 4 amplifies that rounding chaotically, so the full-run comparison trains with
Adam, where it does not. Stated tolerance for a full run (4 epochs, sharpening per batch,
binary fine-tuning): the same per-epoch sharpness sequence, every epoch's training loss within
0.1 %, training and validation accuracy and the binary test accuracy within half a point.
Only rank 0 writes the run folder; an interrupted 2-process run resumes byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from whetstone.runs import train_run
from whetstone.runs.transaction import partial_folder

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="gloo process groups")

RECIPE = """
preset = "mnist-dense"
epochs = 3
finetune_epochs = 1
augment = "none"
optimizer = { name = "adam", lr = 0.002 }
schedule = { name = "scheduled", start = 1, duration = 0.5, intermission = 0, mode = "batch" }
"""
"""Each layer sharpened over half an epoch from epoch 1 (per batch), then binary epochs."""

OPTIONS = ["--train-limit", "2600", "--test-limit", "500", "--no-progress", "--no-plot",
           "--seed", "1"]


def _torchrun(args: list[str], tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=tmp_path)


def _epochs(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, mnist_ready):
    tmp = tmp_path_factory.mktemp("ddp")
    (tmp / "recipe.toml").write_text(RECIPE)
    out = tmp / "ddp"
    proc = _torchrun(["-m", "whetstone", "train", "--config", str(tmp / "recipe.toml"),
                      *OPTIONS, "--out", str(out)], tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_two_processes_match_one_with_the_same_global_batch(ddp_run, tmp_path):
    out, proc = ddp_run
    from whetstone.presets import TrainConfig

    config = TrainConfig.load(out / "config.json")  # the same recipe, one process
    single = train_run(config, tmp_path / "single", progress=False, plot=False,
                       train_limit=2600, test_limit=500)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2
    ddp, one = _epochs(out), _epochs(tmp_path / "single")
    assert [r["sharpness"] for r in ddp] == [r["sharpness"] for r in one]
    assert ddp[-1]["sharpness"] == [1.0, 1.0, 1.0]
    for a, b in zip(ddp, one, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
        assert a["train_accuracy"] == pytest.approx(b["train_accuracy"], abs=0.005)
        assert a["val_accuracy"] == pytest.approx(b["val_accuracy"], abs=0.005)
    assert summary["test_accuracy_binary"] == pytest.approx(single["test_accuracy_binary"],
                                                            abs=0.005)
    assert summary["train_samples"] == 2600


STEPS = """
import json, sys, torch
from pathlib import Path
from torch.nn.parallel import DistributedDataParallel
from whetstone.data import ArrayLoader
from whetstone.presets import build_model, build_optimizer, get_preset
from whetstone.runs import load_split, seed_everything
from whetstone.training.distributed import init_distributed
config = get_preset("mnist-dense")
train = load_split("mnist", "train", limit=1024)
job = init_distributed("cpu")
rank, world = (job.rank, job.world_size) if job else (0, 1)
seed_everything(1)
model = build_model(config)
optimizer = build_optimizer(config, model)
net = DistributedDataParallel(model, forward_sync_buffers=False) if job else model
loader = ArrayLoader(train.x, train.y, 128 // world, shuffle=True, seed=1, shard=(rank, world))
losses = []
for x, y in loader:
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
weights = [p.detach().double().sum().item() for p in model.parameters()]
name = f"rank{rank}.json" if job else "single.json"  # one file each: no interleaved output
Path(sys.argv[1], name).write_text(json.dumps({"losses": losses, "weights": weights}))
"""


def test_each_step_is_the_single_process_step(tmp_path, mnist_ready):
    """8 Adadelta steps at global batch 128: 2 x 64 against 1 x 128."""
    (tmp_path / "steps.py").write_text(STEPS)
    proc = _torchrun([str(tmp_path / "steps.py"), str(tmp_path)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    alone = subprocess.run([sys.executable, str(tmp_path / "steps.py"), str(tmp_path)],
                           capture_output=True, text=True, env=env, timeout=120)
    assert alone.returncode == 0, alone.stderr[-3000:]
    single = json.loads((tmp_path / "single.json").read_text())
    assert len(ranks) == 2 and len(single["losses"]) == 8
    assert ranks[0]["weights"] == ranks[1]["weights"]  # gradients averaged: one model
    mean = [(a + b) / 2 for a, b in zip(ranks[0]["losses"], ranks[1]["losses"], strict=True)]
    assert mean == pytest.approx(single["losses"], rel=1e-5)
    assert ranks[0]["weights"] == pytest.approx(single["weights"], rel=1e-5, abs=1e-4)


def test_only_rank_zero_writes_and_reports(ddp_run):
    out, proc = ddp_run
    assert proc.stdout.count("run folder:") == 1
    assert not partial_folder(out).exists()
    siblings = sorted(p.name for p in out.parent.iterdir())
    assert siblings == [".ddp.lock", "ddp", "recipe.toml"]


def test_interrupted_two_process_run_resumes_byte_for_byte(ddp_run, tmp_path):
    out = tmp_path / "run"
    (tmp_path / "recipe.toml").write_text(RECIPE)
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import sys
        from contextlib import contextmanager
        import whetstone.runs.folder as folder
        from whetstone.cli.main import main
        if sys.argv[1] == "stop":  # every rank asks to stop from its 2nd agreement on
            # (ranks agree every 16 batches: batch 32 = epoch 2, batch 11 of 21)
            real = folder._stop_on_signals
            @contextmanager
            def stop_after_20(enabled):
                calls = []
                with real(enabled):
                    yield lambda: calls.append(1) or len(calls) >= 2
            folder._stop_on_signals = stop_after_20
            sys.exit(main(["train", "--config", {str(tmp_path / "recipe.toml")!r},
                           *{OPTIONS!r}, "--out", {str(out)!r}]))
        sys.exit(main(["train", "--resume", {str(out)!r}, "--no-progress", "--no-plot"]))
    """))
    stopped = _torchrun([str(driver), "stop"], tmp_path)
    assert stopped.returncode != 0 and "--resume" in stopped.stderr, stopped.stderr[-3000:]
    assert not out.exists()
    resumed = _torchrun([str(driver), "resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference = ddp_run[0] / "model.safetensors"
    assert (out / "model.safetensors").read_bytes() == reference.read_bytes()
