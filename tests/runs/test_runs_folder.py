"""Run folders: every file written, the model rebuilt from the folder alone, bad files refused."""

import json

import pytest
import torch

import whetstone as ws
from whetstone.runs import evaluate_run, load_run, train_run

QUICK = {"epochs": 3, "finetune_epochs": 0,
         "schedule": {"name": "simple", "start_epoch": 0, "steps": 1}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, mnist_ready):
    out = tmp_path_factory.mktemp("runs") / "quick"
    config = ws.presets.get_preset("mnist-dense").merged(QUICK)
    train_run(config, out, progress=False, train_limit=3000, test_limit=1000)
    return out


def test_run_folder_holds_every_file(run_dir):
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "summary.json",
                 "sharpening.png"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("test_accuracy", "test_accuracy_binary", "seed", "versions", "train_seconds",
                "final_sharpness"):
        assert key in summary
    assert summary["final_sharpness"] == [1.0, 1.0, 1.0]
    assert not list(run_dir.glob(".*tmp*")), "no temporary files left behind"


def test_evaluate_rebuilds_the_model_from_the_folder(run_dir):
    result = evaluate_run(run_dir, limit=1000)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert result["accuracy_binary"] == pytest.approx(summary["test_accuracy_binary"])
    assert result["sharpness"] == [1.0, 1.0, 1.0]


def test_same_seed_same_weights(run_dir, tmp_path):
    config = ws.presets.get_preset("mnist-dense").merged(QUICK)
    train_run(config, tmp_path / "again", progress=False, train_limit=3000, test_limit=1000,
              plot=False)
    a = load_run(run_dir).model.state_dict()
    b = load_run(tmp_path / "again").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_corrupt_weights_are_a_clear_error(run_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((run_dir / "config.json").read_text())
    data = (run_dir / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.safetensors"):
        load_run(bad)


def test_weights_of_another_model_are_refused(run_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    config = ws.presets.get_preset("mnist-dense").merged({"model": {"hidden": [128, 64]}})
    config.save(other / "config.json")
    (other / "model.safetensors").write_bytes((run_dir / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="shape"):
        load_run(other)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_run(tmp_path)
