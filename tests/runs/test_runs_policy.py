"""Policy run folders (DQN on CartPole): a tiny run trained, written as a transaction, loaded
back, evaluated from the CLI (conventional, binary and spiking policies), converted and
exported to NIR."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium", reason="the rl extra (gymnasium) is not installed")

from whetstone.cli.main import main  # noqa: E402
from whetstone.conversion import to_spiking  # noqa: E402
from whetstone.rl import DQNConfig  # noqa: E402
from whetstone.runs import load_run  # noqa: E402
from whetstone.runs.policy import (  # noqa: E402
    PolicyConfig,
    evaluate_policy_run,
    is_policy_run,
    train_policy_run,
)
from whetstone.runtime import run as run_network  # noqa: E402

TINY = DQNConfig(hidden=(16, 16), total_steps=1200, learning_starts=64, batch_size=32,
                 buffer_size=2000, epsilon_decay_steps=400, target_update=100,
                 sharpen_start=300, layer_duration=300, select_every=0)


@pytest.fixture(scope="module")
def policy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rl") / "run"
    summary = train_policy_run(PolicyConfig("cartpole-dqn", 3, TINY), out, progress=False,
                               plot=False, episodes=5)
    assert summary["task"] == "reinforcement" and summary["seed"] == 3
    return out


def test_policy_folder_holds_its_files(policy_run):
    names = {p.name for p in policy_run.iterdir()}
    assert {"config.json", "model.safetensors", "conventional.safetensors", "curve.jsonl",
            "summary.json"} <= names
    assert not list(policy_run.parent.glob(".*.partial"))
    assert is_policy_run(policy_run)
    curve = [json.loads(line) for line in (policy_run / "curve.jsonl").read_text().splitlines()]
    assert {c["policy"] for c in curve} == {"whetstone", "conventional"}
    assert max(c["step"] for c in curve if c["policy"] == "whetstone") <= TINY.total_steps


def test_loaded_policy_is_binary_and_converts_exactly(policy_run):
    run = load_run(policy_run)
    assert run.config.dqn == TINY and run.config.seed == 3
    net = to_spiking(run.model)
    assert net.readout == "affine"
    obs = np.random.default_rng(0).normal(size=(256, 4)) * np.array([1.0, 1.0, 0.1, 1.0])
    with torch.no_grad():
        expected = run.model.double()(torch.from_numpy(obs)).numpy()
    ours = run_network(net, obs, dtype=np.float64)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)
    assert np.array_equal(ours.argmax(1), expected.argmax(1))


def test_evaluate_runs_the_three_policies(policy_run, capsys):
    result = evaluate_policy_run(policy_run, episodes=3)
    assert result["agreement"]["same_observations"] == 1.0
    assert result["agreement"]["identical_episodes"] == 3
    assert result["spiking"]["returns"] == result["binary_torch"]["returns"]
    assert result["conventional"] is not None
    assert main(["evaluate", str(policy_run)]) == 0
    out = capsys.readouterr().out
    assert "conventional policy" in out and "spiking policy" in out and "mean return" in out


def test_policy_exports_to_nir_and_refuses_dataset_commands(policy_run, tmp_path, capsys):
    pytest.importorskip("nir")
    from whetstone.export import from_nir

    nir_file = tmp_path / "policy.nir"
    assert main(["export", str(policy_run), "--nir", str(nir_file)]) == 0
    capsys.readouterr()
    back = from_nir(nir_file)
    obs = np.random.default_rng(1).normal(size=(32, 4))
    net = to_spiking(load_run(policy_run).model)
    np.testing.assert_allclose(run_network(back, obs), run_network(net, obs), atol=1e-9)
    assert main(["simulate", str(policy_run)]) == 2
    assert "has no dataset" in capsys.readouterr().err


def test_train_refuses_supervised_options_for_a_policy_preset(tmp_path, capsys):
    assert main(["train", "--preset", "cartpole-dqn", "--epochs", "3",
                 "--out", str(tmp_path / "x")]) == 2
    assert "drop --epochs" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
