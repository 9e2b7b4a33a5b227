"""Greedy policies (torch model, spiking network on the numpy runtime) and their evaluation.

A policy maps one observation ``(n_obs,)`` to the action ``argmax_a Q(s, a)`` (numpy's
``argmax``: ties go to the lowest index, the same rule for every policy). Evaluation plays
``episodes`` episodes, episode ``i`` reset with seed ``seed + i``, so two policies that pick
the same actions see the same observations and get the same returns.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..conversion import to_spiking
from ..metrics import network_stats
from ..runtime import SpikingNetwork, run
from ..sharpening import get_layer_sharpness, is_fully_sharp
from .envs import make_env


class Policy(Protocol):
    """Anything with Q-values for a batch of observations ``(B, n_obs) -> (B, n_actions)``."""

    def q_values(self, obs: np.ndarray) -> np.ndarray: ...


class TorchPolicy:
    """Greedy policy of a torch Q-network, evaluated in ``dtype`` (a private copy, eval mode).

    float64 (the default) computes what the float64 spiking runtime computes up to summation
    order, so both pick the same actions; ``torch.float32`` is the model as trained.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float64) -> None:
        self.dtype = dtype
        self.model = copy.deepcopy(model).to(dtype).eval()

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values ``(B, n_actions)`` as float64 for observations ``(B, n_obs)``."""
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(obs), dtype=self.dtype)
            return self.model(x).double().numpy()


class SpikingPolicy:
    """Greedy policy of a converted spiking network run by :func:`whetstone.runtime.run`.

    The hidden layers are ``Threshold`` neurons (one time step, binary spikes); the last
    ``Affine`` is the real-valued readout whose outputs are the Q-values.
    """

    def __init__(self, net: SpikingNetwork, dtype: type[np.floating] = np.float64) -> None:
        self.net = net
        self.dtype = dtype

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values ``(B, n_actions)`` for observations ``(B, n_obs)``."""
        out = run(self.net, np.asarray(obs), dtype=self.dtype)
        assert isinstance(out, np.ndarray)
        return out.astype(np.float64, copy=False)


def greedy_action(policy: Policy, obs: np.ndarray) -> int:
    """``argmax_a Q(obs, a)`` for one observation ``(n_obs,)`` (ties: lowest index)."""
    return int(np.argmax(policy.q_values(np.asarray(obs)[None])[0]))


@dataclass
class Evaluation:
    """Episodes of one policy: ``returns`` ``(episodes,)``, ``actions`` (one int8 array per
    episode), ``observations`` (one ``(steps, n_obs)`` array per episode, the observation each
    action was chosen on) and the wall ``seconds``."""

    returns: np.ndarray
    actions: list[np.ndarray]
    observations: list[np.ndarray]
    seconds: float

    def summary(self) -> dict[str, Any]:
        """Mean, standard deviation, min and max return, the returns, steps and timing."""
        r = self.returns
        steps = int(sum(len(a) for a in self.actions))
        return {"mean_return": float(r.mean()), "std_return": float(r.std()),
                "min_return": float(r.min()), "max_return": float(r.max()),
                "returns": [float(v) for v in r], "steps": steps, "seconds": self.seconds,
                "us_per_step": 1e6 * self.seconds / max(steps, 1)}


def evaluate_policy(policy: Policy, env_id: str, episodes: int = 100,
                    seed: int = 0) -> Evaluation:
    """Play ``episodes`` greedy episodes; episode ``i`` starts with ``reset(seed=seed + i)``.

    Raises:
        ImportError: gymnasium is not installed.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env = make_env(env_id)
    returns, actions, observations = [], [], []
    start = time.perf_counter()
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            ep_actions: list[int] = []
            ep_obs: list[np.ndarray] = []
            total, done = 0.0, False
            while not done:
                action = greedy_action(policy, obs)
                ep_obs.append(np.asarray(obs))
                ep_actions.append(action)
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
            actions.append(np.asarray(ep_actions, np.int8))
            observations.append(np.stack(ep_obs))
    finally:
        env.close()
    return Evaluation(np.asarray(returns), actions, observations, time.perf_counter() - start)


def action_agreement(a: Evaluation, b: Evaluation) -> dict[str, Any]:
    """How far two evaluations over the same episode seeds picked the same actions.

    ``identical_episodes``: episodes whose action sequences are equal (same length, same
    actions); ``first_difference``: ``[episode, step]`` of the first differing action, or
    ``None``.
    """
    if len(a.actions) != len(b.actions):
        raise ValueError(f"evaluations of {len(a.actions)} and {len(b.actions)} episodes")
    identical, first = 0, None
    for ep, (x, y) in enumerate(zip(a.actions, b.actions, strict=True)):
        n = min(len(x), len(y))
        diff = np.flatnonzero(x[:n] != y[:n])
        if len(x) == len(y) and len(diff) == 0:
            identical += 1
        elif first is None:
            first = [ep, int(diff[0]) if len(diff) else n]
    return {"identical_episodes": identical, "episodes": len(a.actions),
            "first_difference": first}


def evaluate_policies(model: nn.Sequential, conventional: nn.Sequential | None,
                      episodes: int = 100, seed: int = 1_000_000,
                      env_id: str = "CartPole-v1") -> dict[str, Any]:
    """Evaluate the conventional, the fully binary torch and the spiking policy.

    ``model`` must be fully sharpened; it is converted with
    :func:`whetstone.conversion.to_spiking` and run by the numpy runtime (float64) inside the
    environment loop; the binary torch policy runs ``model`` in float64; the conventional
    policy runs ``conventional`` (if given) in float32. Episode ``i`` of every policy resets
    with seed ``seed + i`` (keep these apart from the training's selection seeds,
    :data:`whetstone.rl.config.SELECT_SEED` and up). Returns (JSON-ready)::

        {"env_id", "episodes", "seed",
         "conventional": summary | None, "binary_torch": summary, "spiking": summary,
         "agreement": {"identical_episodes", "episodes", "first_difference",
                       "same_observations": share of the spiking run's steps on which the
                       binary torch policy picks the spiking policy's action,
                       "max_abs_q_difference": max |Q_torch - Q_spiking| over those steps},
         "spiking_stats": {"density_mean", "density_overall", "synops", "dense_mac",
                           "synops_per_dense_mac", "layers": [{"index", "kind", "density"}]}}

    where a summary is :meth:`Evaluation.summary`.

    Raises:
        ValueError: ``model`` is not fully sharpened.
    """
    if not is_fully_sharp(model):
        raise ValueError(f"model is not fully sharpened (layer sharpness "
                         f"{get_layer_sharpness(model)}); finish training first")
    net = to_spiking(model)
    torch_policy = TorchPolicy(model)
    spiking_policy = SpikingPolicy(net)
    binary = evaluate_policy(torch_policy, env_id, episodes, seed)
    spiking = evaluate_policy(spiking_policy, env_id, episodes, seed)
    conv = (evaluate_policy(TorchPolicy(conventional, torch.float32), env_id, episodes, seed)
            if conventional is not None else None)
    visited = np.concatenate(spiking.observations)
    q_torch = torch_policy.q_values(visited)
    q_spiking = spiking_policy.q_values(visited)
    agreement = action_agreement(binary, spiking)
    agreement["same_observations"] = float(np.mean(q_torch.argmax(1) == q_spiking.argmax(1)))
    agreement["max_abs_q_difference"] = float(np.abs(q_torch - q_spiking).max())
    stats = network_stats(net, visited, presets=())
    return {
        "env_id": env_id, "episodes": episodes, "seed": seed,
        "conventional": conv.summary() if conv is not None else None,
        "binary_torch": binary.summary(),
        "spiking": spiking.summary(),
        "agreement": agreement,
        "spiking_stats": {
            "density_mean": stats["total"]["density_mean"],
            "density_overall": stats["total"]["density_overall"],
            "synops": stats["total"]["synops"],
            "dense_mac": stats["total"]["dense_mac"],
            "synops_per_dense_mac": stats["total"]["synops_per_dense_mac"],
            "layers": [{"index": layer["index"], "kind": layer["kind"],
                        "density": layer["density"]}
                       for layer in stats["layers"] if layer["density"] is not None]},
    }
