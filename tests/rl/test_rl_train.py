"""A short DQN run on CartPole-v1 (smoke test): sharpening finishes, runs repeat exactly, and
the binary torch and spiking policies play the same episodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium")

from whetstone.rl import (  # noqa: E402
    DQNConfig,
    DQNResult,
    evaluate_policies,
    plot_learning_curve,
    train_dqn,
)
from whetstone.sharpening import get_layer_sharpness  # noqa: E402

TINY = DQNConfig(hidden=(16, 16), total_steps=700, sharpen_start=200, layer_duration=150,
                 learning_starts=64, batch_size=32, buffer_size=1000, epsilon_decay_steps=300,
                 target_update=100, train_every=2, select_every=100, select_episodes=2,
                 finetune_lr=1e-4)


@pytest.fixture(scope="module")
def tiny_run() -> DQNResult:
    seen: list[tuple[str, int]] = []
    result = train_dqn(TINY, seed=3, progress=False,
                       on_episode=lambda phase, p: seen.append((phase, p["step"])))
    result.seen = seen  # type: ignore[attr-defined]
    return result


def test_sharpening_follows_the_step_schedule(tiny_run: DQNResult) -> None:
    assert get_layer_sharpness(tiny_run.model) == [1.0, 1.0]
    assert get_layer_sharpness(tiny_run.conventional) == [0.0, 0.0]
    curve = tiny_run.curve
    assert len(curve) >= 5
    steps = [p["step"] for p in curve]
    assert steps == sorted(steps) and steps[-1] <= TINY.total_steps
    for p in curve:  # m = clip((t - 200) / 300, 0, 1), bottom-up over two layers
        m = min(1.0, max(0.0, (p["step"] - 200) / 300))
        assert p["sharpness"] == pytest.approx(m, abs=1e-9)
        assert p["layer_sharpness"][0] == pytest.approx(min(1.0, 2 * m), abs=1e-9)
    assert all(p["sharpness"] == 0.0 for p in tiny_run.conventional_curve)
    phases = {phase for phase, _ in tiny_run.seen}  # type: ignore[attr-defined]
    assert phases == {"whetstone", "conventional"}
    assert set(tiny_run.seconds) == {"whetstone", "conventional"}


def test_snapshot_selection_in_the_binary_phase(tiny_run: DQNResult) -> None:
    for phase in ("whetstone", "conventional"):
        sel = tiny_run.selection[phase]
        assert [e["step"] for e in sel["evaluations"]] == [500, 600, 700]  # sharpen_end = 500
        scores = [e["mean_return"] for e in sel["evaluations"]]
        assert sel["selected_return"] == max(scores)
        latest_best = max(e["step"] for e in sel["evaluations"] if e["mean_return"] == max(scores))
        assert sel["selected_step"] == latest_best


def test_same_seed_same_run(tiny_run: DQNResult) -> None:
    again = train_dqn(TINY.replace(train_conventional=False), seed=3, progress=False)
    assert again.curve == tiny_run.curve
    for a, b in zip(again.model.state_dict().values(), tiny_run.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    other = train_dqn(TINY.replace(train_conventional=False), seed=4, progress=False)
    assert other.curve != tiny_run.curve


def test_binary_torch_and_spiking_policies_play_the_same_episodes(tiny_run: DQNResult,
                                                                  tmp_path) -> None:  # noqa: ANN001
    ev = evaluate_policies(tiny_run.model, tiny_run.conventional, episodes=3, seed=11)
    agree = ev["agreement"]
    assert agree["identical_episodes"] == 3 and agree["first_difference"] is None
    assert agree["same_observations"] == 1.0
    assert agree["max_abs_q_difference"] <= 1e-9
    assert ev["binary_torch"]["returns"] == ev["spiking"]["returns"]
    assert ev["conventional"]["mean_return"] >= 8.0  # CartPole gives >= 8 steps per episode
    assert 0.0 <= ev["spiking_stats"]["density_overall"] <= 1.0
    assert len(ev["spiking_stats"]["layers"]) == 2
    png = plot_learning_curve({"whetstone": tiny_run.curve,
                               "conventional": tiny_run.conventional_curve},
                              tmp_path / "curve.png", title="tiny")
    assert png.stat().st_size > 1000


def test_evaluate_policies_refuses_a_soft_model(tiny_run: DQNResult) -> None:
    with pytest.raises(ValueError, match="not fully sharpened"):
        evaluate_policies(tiny_run.conventional, None, episodes=1)
    assert np.isfinite(tiny_run.curve[-1]["loss"])
