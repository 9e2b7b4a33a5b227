"""``whetstone train --model MODULE:FUNCTION --data FILE.npz``: the user's own network and
arrays, recorded in the run folder so that every later command rebuilds the model and reads
the same data (a changed file is refused); the data file's checks, each naming ``--data``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from whetstone.cli.main import main
from whetstone.data.arrays import describe, load_split_arrays

MODULE = '''
import torch
from torch import nn

from whetstone.nn import SoftmaxDecode, SpikingBReLU, key_generator


class Net(nn.Module):
    """Not a Sequential: traced with torch.fx when converted."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 64)
        self.act1 = SpikingBReLU()
        self.fc2 = nn.Linear(64, 30)
        self.act2 = SpikingBReLU()
        self.decode = SoftmaxDecode(key_generator(3, 30, overlapping=False, seed=0))

    def forward(self, x):
        return self.decode(self.act2(self.fc2(self.act1(self.fc1(torch.flatten(x, 1))))))


def build():
    return Net()


def not_a_model():
    return 42
'''

DIGITS = (0, 1, 7)
"""The three MNIST classes of the data file (relabelled 0, 1, 2)."""


def _digits(split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    from whetstone.data import load

    images, labels = load("mnist", split)
    images, labels = images.numpy(), labels.numpy()
    keep = np.flatnonzero(np.isin(labels, DIGITS))[:count]
    relabel = {d: i for i, d in enumerate(DIGITS)}
    return images[keep][:, None], np.array([relabel[int(v)] for v in labels[keep]], np.int64)


@pytest.fixture
def own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mnist_ready: str) -> Path:
    """A folder with the module ``own_net_cli.py`` and ``digits.npz`` (real MNIST digits of
    three classes, uint8 ``(N, 1, 28, 28)``), made the current directory."""
    (tmp_path / "own_net_cli.py").write_text(MODULE)
    x_train, y_train = _digits("train", 900)
    x_test, y_test = _digits("test", 300)
    np.savez(tmp_path / "digits.npz", x_train=x_train, y_train=y_train, x_test=x_test,
             y_test=y_test)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the import path set by --model is undone
    yield tmp_path
    sys.modules.pop("own_net_cli", None)


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


def test_own_model_and_data_through_every_command(own: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = own / "run"
    assert main(["train", "--model", "own_net_cli:build", "--data", "digits.npz", "--epochs",
                 "5", "--batch-size", "32", "--lr", "0.003", "--seed", "1", "--out", str(run),
                 "--no-progress",
                 "--no-plot", "--json"]) == 0
    summary = _json(capsys)
    assert summary["dataset"] == "npz" and summary["fully_sharp"]
    assert summary["train_samples"] == 810 and summary["val_samples"] == 90  # 10 % held out
    assert summary["test_samples"] == 300
    assert summary["test_accuracy_binary"] > 0.6  # three digit classes, chance is 1/3
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == {"arch": "custom", "function": "own_net_cli:build"}
    info = describe(own / "digits.npz")
    assert config["data_file"] == {"path": str(info.path), "sha256": info.sha256,
                                   "input_shape": [1, 28, 28], "classes": 3}
    assert config["seed"] == 1 and config["key"]["classes"] == 3

    assert main(["evaluate", str(run), "--json"]) == 0
    result = _json(capsys)
    assert result["accuracy_binary"] == pytest.approx(summary["test_accuracy_binary"])
    assert result["spiking_agreement"] == 1.0  # the traced model converts exactly
    assert main(["convert", str(run), "--json"]) == 0
    assert _json(capsys)["layers"][-1] == "Decode"
    assert main(["simulate", str(run), "--json"]) == 0
    assert _json(capsys)["accuracy"] == pytest.approx(result["accuracy_spiking"])
    assert main(["stats", str(run), "--limit", "100", "--json"]) == 0
    assert _json(capsys)["total"]["synops"] > 0
    assert main(["quantize", str(run), "--bits", "8", "--limit", "100", "--json"]) == 0
    assert _json(capsys)["rows"][0]["bits"] == 8
    nir_file = own / "own.nir"
    assert main(["export", str(run), "--nir", str(nir_file), "--json"]) == 0
    assert nir_file.stat().st_size > 0

    # the same data file again: a changed byte is refused by every command that reads it
    data = dict(np.load(own / "digits.npz", allow_pickle=False))
    data["y_test"] = data["y_test"].copy()
    data["y_test"][0] = (data["y_test"][0] + 1) % 3
    np.savez(own / "digits.npz", **data)
    for command in (["evaluate", str(run)], ["simulate", str(run)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "digits.npz" in err and "changed since the run trained" in err, err


def test_same_seed_same_run(own: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = []
    for name in ("a", "b"):
        assert main(["train", "--model", "own_net_cli:build", "--data", "digits.npz",
                     "--epochs", "2", "--train-limit", "200", "--test-limit", "50",
                     "--seed", "5", "--out", str(own / name), "--no-progress", "--no-plot",
                     "--json"]) == 0
        weights.append(_json(capsys)["model_sha256"])
    assert weights[0] == weights[1]


def _write(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _good() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x_train": rng.integers(0, 255, (20, 1, 4, 4), dtype=np.uint8),
            "y_train": np.arange(20) % 2, "x_test": rng.random((6, 1, 4, 4)),
            "y_test": np.arange(6) % 2}


BAD_DATA = [
    ({"x_train": np.array([None] * 20, dtype=object)}, "without pickle"),
    ({"y_train": np.arange(19) % 2}, "x_train has 20 samples but y_train has 19 labels"),
    ({"x_train": np.zeros((20, 1, 4, 4), dtype=np.int32)}, "x_train has dtype int32"),
    ({"y_test": np.zeros(6)}, "y_test has dtype float64"),
    ({"x_test": np.zeros((6, 1, 5, 4))}, "every split needs the same"),
    ({"y_train": (np.arange(20) % 2)[:, None]}, "labels are (N,)"),
    ({"y_train": -(np.arange(20) % 2)}, "labels outside"),
    ({"x_test": np.full((6, 1, 4, 4), np.nan)}, "NaN"),
    ({"extra": np.zeros(3)}, "unknown array(s) extra"),
    ({"x_val": np.zeros((2, 1, 4, 4))}, "x_val and y_val go together"),
]


@pytest.mark.parametrize(("change", "message"), BAD_DATA)
def test_bad_data_file_is_refused_naming_the_option(tmp_path: Path, change: dict,
                                                    message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "bad.npz", **{**_good(), **change})
    assert main(["train", "--model", "nowhere:build", "--data", str(path), "--out",
                 str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "--data" in err and str(path) in err and message in err, err
    assert not (tmp_path / "run").exists()


def test_missing_arrays_and_files_are_refused(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    data = _good()
    del data["y_test"]
    path = _write(tmp_path / "partial.npz", **data)
    assert main(["train", "--data", str(path)]) == 2
    assert "missing array(s) y_test" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "none.npz")]) == 2
    assert "no such data file" in capsys.readouterr().err
    (tmp_path / "text.npz").write_text("not a zip")
    assert main(["train", "--data", str(tmp_path / "text.npz")]) == 2
    assert "not a readable .npz file" in capsys.readouterr().err


BAD_MODELS = [
    ("own_net_cli", "must name a function as 'package.module:function'"),
    ("own_net_cli:", "must name a function"),
    ("no_such_module_here:build", "cannot import 'no_such_module_here'"),
    ("own_net_cli:missing", "has no function 'missing'"),
    ("own_net_cli:not_a_model", "returned int, not a torch nn.Module"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_MODELS)
def test_bad_model_is_refused_naming_the_option(own: Path, spec: str, message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--model", spec, "--data", "digits.npz", "--epochs", "1",
                 "--out", str(own / "run")]) == 2
    err = capsys.readouterr().err
    assert "--model" in err and message in err, err
    assert not (own / "run").exists()


def test_validation_split_is_held_out_without_x_val(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.npz", **_good())
    x, y = load_split_arrays(path, "train")
    xv, yv = load_split_arrays(path, "val")
    assert len(x) == 18 and len(xv) == 2 and x.dtype == xv.dtype
    assert float(x.max()) <= 1.0  # uint8 pixels divided by 255
    full, _ = load_split_arrays(path, "train-full")
    assert len(full) == 20
    test, _ = load_split_arrays(path, "test")
    np.testing.assert_array_equal(test.numpy(), _good()["x_test"].astype(np.float32))
    assert describe(path).sizes == {"train": 20, "val": 0, "test": 6}
