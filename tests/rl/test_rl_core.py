"""whetstone.rl without training: config checks, the network, the fold, the replay buffer,
the TD loss, and the spiking network against the fully sharpened torch model (incl. NIR)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from whetstone.conversion import to_spiking
from whetstone.rl import (
    DQNConfig,
    ReplayBuffer,
    SpikingPolicy,
    TorchPolicy,
    build_q_network,
    fold_observation_scale,
    td_loss,
)
from whetstone.runtime import Affine, Threshold, run
from whetstone.sharpening import set_model_sharpness

# CartPole-like observations: position, velocity, angle, angular velocity
OBS_RANGE = np.array([2.4, 3.0, 0.21, 3.5])


def _observations(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1, 1, size=(n, 4)) * OBS_RANGE).astype(np.float32)


def _sharp_network(seed: int = 0, hidden: tuple[int, ...] = (16, 12)) -> nn.Sequential:
    """A fully sharpened Q-network with random weights scaled so that hidden neurons sit on
    both sides of their threshold (a default initialisation leaves later layers silent)."""
    torch.manual_seed(seed)
    model = build_q_network(4, 2, hidden)
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                layer.weight.normal_(0.0, 1.5 / layer.in_features**0.5)
                layer.bias.normal_(0.5, 0.3)
    set_model_sharpness(model, 1.0)
    return fold_observation_scale(model, DQNConfig().obs_scale)


# -- config ------------------------------------------------------------------------------

def test_config_rejects_a_schedule_that_does_not_finish() -> None:
    with pytest.raises(ValueError, match="sharpening ends at step 3000"):
        DQNConfig(total_steps=2000, sharpen_start=1000, layer_duration=1000, hidden=(8, 8))


def test_config_rejects_scales_that_are_not_powers_of_two() -> None:
    with pytest.raises(ValueError, match=r"powers of two.*\[0\.3\]"):
        DQNConfig(obs_scale=(0.5, 0.3, 4.0, 0.5))
    with pytest.raises(ValueError, match="learning_starts"):
        DQNConfig(learning_starts=10, batch_size=64)


def test_config_phases_epsilon_and_round_trip() -> None:
    c = DQNConfig(total_steps=100, sharpen_start=20, layer_duration=30, hidden=(4, 4),
                  epsilon_start=1.0, epsilon_end=0.1, epsilon_decay_steps=10,
                  learning_starts=64, batch_size=64)
    assert (c.sharpen_end, c.finetune_steps) == (80, 20)
    assert c.epsilon(0) == 1.0
    assert c.epsilon(5) == pytest.approx(0.55)
    assert c.epsilon(10) == c.epsilon(1000) == pytest.approx(0.1)
    assert DQNConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown DQNConfig keys"):
        DQNConfig.from_dict({**c.to_dict(), "epsilon": 0.3})


# -- network and fold ------------------------------------------------------------------

def test_q_network_layout_converts_to_thresholds_and_a_real_readout() -> None:
    net = to_spiking(_sharp_network())
    kinds = [type(layer) for layer in net.layers]
    assert kinds == [Affine, Threshold, Affine, Threshold, Affine]
    assert net.layers[-1].weight.shape == (2, 12)


def test_fold_is_bit_exact_for_power_of_two_scales() -> None:
    torch.manual_seed(1)
    model = build_q_network(4, 2, (32, 32))
    set_model_sharpness(model, 0.6)  # soft layers: any rounding difference would show
    scale = (0.5, 0.5, 4.0, 0.5)
    x = torch.from_numpy(_observations(500, seed=1))
    with torch.no_grad():
        trained = model(x * torch.tensor(scale))
        folded = fold_observation_scale(model, scale)(x)
    assert torch.equal(trained, folded)
    assert not torch.equal(model[0].weight, fold_observation_scale(model, scale)[0].weight)


# -- spiking network == fully sharpened torch model -------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spiking_q_values_equal_float64_torch(seed: int) -> None:
    model = _sharp_network(seed)
    x = _observations(2000, seed)
    with torch.no_grad():
        q_torch = model.double()(torch.from_numpy(x).double()).numpy()
    q_spiking = run(to_spiking(model), x, dtype=np.float64)
    np.testing.assert_allclose(q_spiking, q_torch, rtol=0, atol=1e-9)
    assert np.array_equal(q_spiking.argmax(1), q_torch.argmax(1))
    # the hidden layers really are binary and both actions occur (not a constant policy)
    _, spikes = run(to_spiking(model), x, record=True)
    assert all(0.0 < s.mean() < 1.0 for s in spikes)
    assert 0 < q_torch.argmax(1).sum() < len(x)


def test_policies_pick_the_same_actions() -> None:
    model = _sharp_network(3)
    x = _observations(300, seed=3)
    torch_q = TorchPolicy(model).q_values(x)
    spiking_q = SpikingPolicy(to_spiking(model)).q_values(x)
    assert np.abs(torch_q - spiking_q).max() <= 1e-9
    assert np.array_equal(torch_q.argmax(1), spiking_q.argmax(1))
    assert TorchPolicy(model).model[0].weight.dtype == torch.float64
    assert model[0].weight.dtype == torch.float32  # the policy works on its own copy


def test_nir_round_trip_of_the_policy(tmp_path) -> None:  # noqa: ANN001
    pytest.importorskip("nir")
    from whetstone.export import from_nir, to_nir

    net = to_spiking(_sharp_network(4))
    path = tmp_path / "policy.nir"
    to_nir(net, path)
    back = from_nir(path)
    x = _observations(1000, seed=4)
    q = run(net, x)
    q_back = run(back, x)
    np.testing.assert_allclose(q_back, q, rtol=0, atol=1e-9)
    assert np.array_equal(q_back.argmax(1), q.argmax(1))


# -- replay buffer and TD loss ---------------------------------------------------------

def test_replay_buffer_overwrites_oldest_and_samples_deterministically() -> None:
    buf = ReplayBuffer(3, 2)
    for i in range(5):
        buf.add(np.full(2, i), i % 2, float(i), np.full(2, i + 1), i == 4)
    assert len(buf) == 3
    assert sorted(buf.rewards.tolist()) == [2.0, 3.0, 4.0]
    a = buf.sample(8, np.random.default_rng(7))
    b = buf.sample(8, np.random.default_rng(7))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    obs, actions, rewards, next_obs, terminated = a
    assert obs.shape == (8, 2) and actions.dtype == torch.int64
    assert torch.equal(next_obs, obs + 1)
    assert torch.equal(terminated, (rewards == 4.0).float())
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(2, 2).sample(1, np.random.default_rng(0))


def _linear(weight: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


def test_td_loss_targets_by_hand() -> None:
    # online Q(s) = (s, 2s); target Q(s) = (3s, -s). One transition s=1, a=0, r=1, s'=2.
    online, target = _linear([[1.0], [2.0]]), _linear([[3.0], [-1.0]])
    batch = (torch.tensor([[1.0]]), torch.tensor([0]), torch.tensor([1.0]),
             torch.tensor([[2.0]]), torch.tensor([0.0]))
    # plain DQN: y = 1 + 0.5 * max(6, -2) = 4; delta = 1 - 4 = -3 -> Huber 3 - 0.5
    assert td_loss(online, target, batch, 0.5, double_dqn=False).item() == pytest.approx(2.5)
    # double DQN: a* = argmax online(s') = 1 -> y = 1 + 0.5 * (-2) = 0; delta 1 -> 0.5
    assert td_loss(online, target, batch, 0.5, double_dqn=True).item() == pytest.approx(0.5)
    # terminal: y = r = 1; delta 0
    ended = batch[:4] + (torch.tensor([1.0]),)
    assert td_loss(online, target, ended, 0.5, double_dqn=False).item() == 0.0


# -- optional dependency ---------------------------------------------------------------

def test_import_without_gymnasium_and_clear_error_when_an_env_is_needed() -> None:
    code = (
        "import sys; sys.modules['gymnasium'] = None\n"
        "import whetstone.rl as rl\n"
        "try:\n"
        "    rl.make_env('CartPole-v1')\n"
        "except ImportError as exc:\n"
        "    print('ERR', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert "ERR" in out.stdout and "pip install 'whetstone[rl]'" in out.stdout


def test_make_env_rejects_continuous_actions() -> None:
    pytest.importorskip("gymnasium")
    from whetstone.rl import make_env

    with pytest.raises(ValueError, match="Pendulum-v1: DQN needs a Discrete action space"):
        make_env("Pendulum-v1")


def test_policy_weights_round_trip_through_safetensors(tmp_path) -> None:  # noqa: ANN001
    from whetstone.runs import load_weights, save_weights
    from whetstone.sharpening import get_layer_sharpness

    model = _sharp_network(5)
    save_weights(model, tmp_path / "policy.safetensors")
    rebuilt = build_q_network(4, 2, (16, 12))
    assert get_layer_sharpness(rebuilt) == [0.0, 0.0]
    load_weights(rebuilt, tmp_path / "policy.safetensors")
    assert get_layer_sharpness(rebuilt) == [1.0, 1.0]
    x = torch.from_numpy(_observations(200, seed=5))
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
