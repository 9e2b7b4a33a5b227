"""Issue 12's presets end to end on small real data: an autoencoder and a segmentation network
trained from the CLI, evaluated (conventional, binary, spiking), converted, simulated, counted,
quantized and exported; the spiking outputs equal the float64 torch model's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from whetstone.cli.main import main
from whetstone.conversion import to_spiking
from whetstone.runs import evaluate_run, load_run, load_split
from whetstone.runtime import run as run_network

QUICK = ('epochs = 2\n'
         '[schedule]\nname = "scheduled"\nstart = 0\nduration = 0.25\nintermission = 0\n')


def _train(tmp_path: Path, preset: str, limits: list[str]) -> Path:
    out = tmp_path / preset
    toml = tmp_path / f"{preset}.toml"
    toml.write_text(QUICK)
    code = main(["train", "--preset", preset, "--config", str(toml), "--out", str(out),
                 *limits, "--no-progress", "--no-plot", "--json"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def autoencoder_run(tmp_path_factory: pytest.TempPathFactory, mnist_ready: str) -> Path:
    return _train(tmp_path_factory.mktemp("ae"), "mnist-autoencoder",
                  ["--train-limit", "3000", "--test-limit", "300"])


@pytest.fixture(scope="module")
def segmentation_run(tmp_path_factory: pytest.TempPathFactory, mnist_ready: str) -> Path:
    return _train(tmp_path_factory.mktemp("seg"), "digits-segmentation",
                  ["--train-limit", "600", "--test-limit", "60"])


def test_autoencoder_summary_holds_the_reconstruction_scores(autoencoder_run):
    summary = json.loads((autoencoder_run / "summary.json").read_text())
    assert summary["task"] == "reconstruction" and summary["metric"] == "psnr"
    assert summary["fully_sharp"]
    binary = summary["test_metrics_binary"]
    assert set(binary) == {"mse", "psnr", "psnr_of_mse"}
    assert 0.0 < binary["mse"] < 0.2 and binary["psnr"] == pytest.approx(
        summary["test_accuracy_binary"])


def test_autoencoder_spiking_network_equals_the_float64_model(autoencoder_run):
    run = load_run(autoencoder_run)
    net = to_spiking(run.model)
    assert net.readout == "affine"
    x = load_split("mnist", "test", limit=64).x
    with torch.no_grad():
        expected = run.model.double()(x.double()).numpy()
    ours = run_network(net, x.numpy(), dtype=np.float64)
    assert ours.shape == (64, 784)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)
    _, spikes = run_network(net, x.numpy(), record=True)
    code = spikes[1]
    # a binary code, neither silent nor full
    assert code.shape == (64, run.config.model["code"]) and 0 < code.mean() < 1


def test_evaluate_reports_conventional_binary_and_spiking(autoencoder_run, capsys):
    result = evaluate_run(autoencoder_run, limit=300)
    twin = Path(result["twin"])  # the preset trains its never-sharpened twin beside the run
    assert twin.parent == autoencoder_run.parent and twin.name.startswith("twin-")
    assert json.loads((twin / "config.json").read_text())["schedule"]["name"] == "none"
    assert result["metrics_conventional"]["mse"] > 0
    assert result["metrics_conventional_thresholded"] != result["metrics_conventional"]
    assert result["metrics_spiking"]["mse"] == pytest.approx(result["metrics_binary"]["mse"],
                                                             rel=1e-5)
    assert result["agreement"]["max_abs_difference"] <= 1e-9
    assert main(["evaluate", str(autoencoder_run), "--limit", "100"]) == 0
    out = capsys.readouterr().out
    assert "psnr" in out and "dB" in out and "largest difference" in out
    assert "conventional twin" in out and "simply thresholded" in out


def test_autoencoder_spiking_commands(autoencoder_run, tmp_path, capsys):
    assert main(["simulate", str(autoencoder_run), "--limit", "100", "--json"]) == 0
    simulated = json.loads(capsys.readouterr().out)
    assert simulated["metric"] == "psnr" and simulated["metrics"]["mse"] > 0
    assert main(["stats", str(autoencoder_run), "--limit", "100", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["total"]["synops"] > 0 and stats["readout"]["kind"] == "affine"
    assert main(["quantize", str(autoencoder_run), "--limit", "100", "--bits", "8",
                 "--json"]) == 0
    quantized = json.loads(capsys.readouterr().out)
    row = quantized["rows"][0]
    assert row["max_abs_difference"] > 0  # real values: compared by their difference
    assert abs(row["metrics"]["psnr"] - quantized["reference"]["psnr"]) < 1.0
    nir = tmp_path / "ae.nir"
    assert main(["export", str(autoencoder_run), "--nir", str(nir)]) == 0
    assert nir.is_file()


def test_segmentation_run_converts_exactly(segmentation_run):
    summary = json.loads((segmentation_run / "summary.json").read_text())
    assert summary["task"] == "segmentation" and summary["metric"] == "mean_iou"
    assert set(summary["test_metrics_binary"]) >= {"pixel_accuracy", "mean_iou", "iou"}
    result = evaluate_run(segmentation_run, limit=60)
    assert result["spiking_agreement"] == 1.0  # every pixel's class as the float64 model's
    assert result["metrics_spiking"]["pixel_accuracy"] == pytest.approx(
        result["metrics_binary"]["pixel_accuracy"], abs=1e-3)
    run = load_run(segmentation_run)
    net = to_spiking(run.model)
    x = load_split("mnist-segmentation", "test", limit=4).x
    with torch.no_grad():
        expected = run.model.double()(x.double()).numpy()
    ours = run_network(net, x.numpy(), dtype=np.float64)
    assert ours.shape == (4, 11, 64, 64)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)


def test_segmentation_export_refuses_upsampling(segmentation_run, tmp_path, capsys):
    assert main(["export", str(segmentation_run), "--nir", str(tmp_path / "s.nir")]) == 2
    err = capsys.readouterr().err
    assert "Upsample2d" in err and "NIR" in err
    assert not (tmp_path / "s.nir").exists()
