"""Validation split in run folders, and distillation from a teacher run (or the twin)."""

import json

import numpy as np
import pytest
import torch

import whetstone as ws
from whetstone.cli.main import _config_from_args as config_from_args
from whetstone.cli.main import build_parser
from whetstone.conversion import to_spiking
from whetstone.presets.build import conventional_twin
from whetstone.runs import load_run, train_run
from whetstone.runtime import run as run_spiking

TINY = {"epochs": 2, "finetune_epochs": 1, "augment": None,
        "schedule": {"name": "simple", "start_epoch": 0, "steps": 1}}
LIMITS = {"train_limit": 1000, "val_limit": 300, "test_limit": 300}


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, mnist_ready):
    out = tmp_path_factory.mktemp("teacher") / "twin"
    config = conventional_twin(ws.presets.get_preset("mnist-dense").merged(TINY))
    train_run(config, out, progress=False, plot=False, **LIMITS)
    return out


def test_summary_separates_validation_and_test(teacher_dir):
    summary = json.loads((teacher_dir / "summary.json").read_text())
    assert summary["splits"] == {"train": "train", "validation": "val", "reported": "test"}
    assert (summary["train_samples"], summary["val_samples"], summary["test_samples"]) == (
        1000, 300, 300)
    history = load_run(teacher_dir).history
    assert summary["val_accuracy"] == history[-1].val_accuracy  # the history is validation
    model = load_run(teacher_dir).model
    x, y = ws.data.load("mnist", "test")
    test = ws.data.ArrayLoader(ws.data.to_float(x[:300]), y[:300].long(), 100)
    assert summary["test_accuracy"] == ws.training.evaluate(model, test)


def test_validation_split_is_the_end_of_the_training_set(mnist_ready):
    full_x, full_y = ws.data.load("mnist", "train-full")
    train_x, train_y = ws.data.load("mnist", "train")
    val_x, val_y = ws.data.load("mnist", "val")
    assert (len(train_y), len(val_y)) == (55000, 5000) and ws.data.VALIDATION_SIZE == 5000
    assert torch.equal(torch.cat([train_x, val_x]), full_x)
    assert torch.equal(torch.cat([train_y, val_y]), full_y)
    with pytest.raises(ws.data.DatasetError, match="unknown split"):
        ws.data.load("mnist", "validation")


def test_conventional_twin_drops_schedule_surrogate_and_teacher():
    config = ws.presets.get_preset("mnist-dense").merged(
        {"teacher": {"run": "twin", "weight": 0.3}})
    twin = conventional_twin(config)
    assert twin.schedule["name"] == "none" and twin.surrogate is None and twin.teacher == {}
    assert (twin.model, twin.optimizer, twin.epochs, twin.seed) == (
        config.model, config.optimizer, config.epochs, config.seed)


def test_student_distils_and_starts_from_the_teacher(tmp_path, teacher_dir):
    config = ws.presets.get_preset("mnist-dense").merged(
        {**TINY, "epochs": 1, "finetune_epochs": 0,
         "teacher": {"run": str(teacher_dir), "temperature": 8.0, "weight": 0.7, "init": True,
                     "distill": False}})
    # init alone, no training steps that change weights: lr 0 keeps the copied weights
    config = config.merged({"optimizer": {"name": "sgd", "lr": 0.0}})
    train_run(config, tmp_path / "student", progress=False, plot=False, **LIMITS)
    student, teacher = load_run(tmp_path / "student").model, load_run(teacher_dir).model
    for (name, a), b in zip(student.state_dict().items(), teacher.state_dict().values(),
                            strict=True):
        if not name.endswith("_sharpness"):
            assert torch.equal(a, b), name
    saved = json.loads((tmp_path / "student" / "config.json").read_text())
    assert saved["teacher"]["run"] == str(teacher_dir)


def test_twin_teacher_is_trained_once_and_reused(tmp_path, mnist_ready):
    config = ws.presets.get_preset("mnist-dense").merged(
        {**TINY, "teacher": {"run": "twin", "temperature": 4.0, "weight": 0.5}})
    first = train_run(config, tmp_path / "a", progress=False, plot=False, **LIMITS)
    twins = list(tmp_path.glob("twin-*"))
    assert len(twins) == 1 and first["teacher"] == str(twins[0])
    assert load_run(twins[0]).config.schedule["name"] == "none"
    stamp = (twins[0] / "model.safetensors").stat().st_mtime_ns
    other = config.merged({"schedule": {"steps": 2}})  # same twin: reused, not retrained
    train_run(other, tmp_path / "b", progress=False, plot=False, **LIMITS)
    assert list(tmp_path.glob("twin-*")) == twins
    assert (twins[0] / "model.safetensors").stat().st_mtime_ns == stamp
    assert first["fully_sharp"]


@pytest.mark.parametrize("teacher, match", [
    ({"run": "x", "tempreature": 2.0}, "did you mean 'temperature'"),
    ({"weight": 0.5}, "teacher.run"),
    ({"run": "x", "weight": 2.0}, "weight"),
    ({"run": "x", "distill": False}, "both off"),
    ({"run": "no/such/run"}, "no config.json"),
])
def test_bad_teacher_settings_fail_before_anything_is_written(tmp_path, teacher, match):
    with pytest.raises(ValueError, match=match):
        config = ws.presets.get_preset("mnist-dense").merged({**TINY, "teacher": teacher})
        train_run(config, tmp_path / "out", progress=False, **LIMITS)
    assert not (tmp_path / "out").exists()


def test_teacher_of_another_architecture_cannot_initialise(tmp_path, teacher_dir):
    config = ws.presets.get_preset("mnist-dense").merged(
        {**TINY, "model": {"arch": "dense", "hidden": [32]},
         "teacher": {"run": str(teacher_dir), "init": True}})
    with pytest.raises(ValueError, match="not the student's architecture"):
        train_run(config, tmp_path / "out", progress=False, plot=False, **LIMITS)


def test_cli_teacher_flags_reach_the_configuration():
    args = build_parser().parse_args([
        "train", "--preset", "mnist-dense", "--teacher", "runs/t", "--distill-temperature", "6",
        "--distill-weight", "0.25", "--init-from-teacher"])
    assert config_from_args(args).teacher == {"run": "runs/t", "temperature": 6.0,
                                              "weight": 0.25, "init": True}
    plain = build_parser().parse_args(["train", "--preset", "mnist-dense"])
    assert config_from_args(plain).teacher == {}


def test_dense_batchnorm_preset_converts_exactly(mnist_ready):
    """BatchNorm before every sharpenable layer of the dense network folds into the weights:
    the spiking network has the same neurons and synapses and the same outputs."""
    config = ws.presets.get_preset("mnist-dense").merged(
        {"model": {"arch": "dense", "hidden": [256, 64], "batchnorm": True}})
    model = ws.presets.build_model(config)
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.5, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)
            m.weight.data.uniform_(0.5, 1.5, generator=gen)
            m.bias.data.normal_(0, 0.5, generator=gen)
    ws.sharpening.set_model_sharpness(model, 1.0)
    model.eval()
    x, _ = ws.data.load("mnist", "val")
    x = ws.data.to_float(x[:500])
    net = to_spiking(model)
    assert [layer.weight.shape for layer in net.layers if hasattr(layer, "weight")] == [
        (256, 784), (64, 256), (100, 64), (10, 100)]  # as without BatchNorm; last: the decode
    assert [layer.kind for layer in net.layers].count("Threshold") == 3
    with torch.no_grad():
        expected = model.double()(x.double()).numpy()
    np.testing.assert_array_equal(run_spiking(net, x.numpy()), expected)
