"""A run folder whose model is a graph (the ``resnet`` architecture, not an ``nn.Sequential``)
on the user's own arrays (``dataset = "npz"``): trained, evaluated with the converted network
(the conversion needs the input shape, taken from the configuration), converted again from the
folder alone, and refused once the data file changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from whetstone.data import DatasetError
from whetstone.data.arrays import describe
from whetstone.presets import get_preset
from whetstone.runs import evaluate_run, load_run, train_run
from whetstone.runs.derived import run_input_shape, spiking_network


def _images(path: Path) -> Path:
    """Colour 8x8 images of two classes: a bright top half or a bright bottom half."""
    rng = np.random.default_rng(0)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        x = rng.integers(0, 80, (n, 3, 8, 8))
        for i, label in enumerate(y):
            x[i, :, 4 * label:4 * label + 4] += 150
        return x.astype(np.uint8), y

    x_train, y_train = split(300)
    x_test, y_test = split(100)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def test_resnet_run_on_own_arrays(tmp_path: Path) -> None:
    info = describe(_images(tmp_path / "two.npz"))
    config = get_preset("cifar10-resnet").merged({
        "dataset": "npz", "augment": "none", "epochs": 8, "batch_size": 32,
        "optimizer": {"name": "adam", "lr": 3e-3},
        "data_file": {"path": str(info.path), "sha256": info.sha256,
                      "input_shape": list(info.input_shape), "classes": info.classes},
        "key": {"classes": 2, "width": 20},
        "model": {"arch": "resnet", "widths": [4, 8], "blocks": [1, 1]},
        "schedule": {"name": "scheduled", "start": 2.0, "duration": 0.5}})
    out = tmp_path / "run"
    summary = train_run(config, out, progress=False, plot=False)
    assert summary["fully_sharp"] and summary["test_samples"] == 100
    assert run_input_shape(out) == (3, 8, 8)
    result = evaluate_run(out)
    assert result["spiking_agreement"] == 1.0
    assert result["accuracy_spiking"] == pytest.approx(result["accuracy_binary"])
    assert result["accuracy_binary"] > 0.8  # two easy classes
    net = spiking_network(out)
    assert not net.is_chain and [layer.kind for layer in net.layers].count("Add") == 2
    assert type(load_run(out).model).__name__ == "ResNet"

    data = dict(np.load(info.path, allow_pickle=False))
    data["x_test"] = data["x_test"] // 2
    np.savez(info.path, **data)
    with pytest.raises(DatasetError, match="changed since the run trained"):
        evaluate_run(out)
