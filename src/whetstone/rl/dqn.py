"""Deep Q-learning with sharpenable hidden layers and the step-based sharpener (§2).

The Q-network is ``obs -> [Linear -> SpikingBReLU] x N -> Linear``: the first layer sees
real observations (an affine map over reals), every later layer sees the previous layer's
output (spikes once sharpened), and the last ``Linear`` is a real-valued readout, the
Q-values ``Q(s, .)`` ``(n_actions,)``. :func:`whetstone.conversion.to_spiking` converts it
as it is.

One environment step of :func:`train_dqn` (state: :class:`ReplayBuffer`, the online and the
target network, Adam, a :class:`~whetstone.sharpening.StepSharpener`):

1. act epsilon-greedily: ``a = argmax_a Q(s, a)`` or, with probability ``eps(t)``, uniform;
2. store ``(s, a, r, s', terminated)`` (a time-limit truncation is not terminal);
3. one gradient step on a uniform minibatch, Huber loss on the TD error
   ``delta = Q(s, a) - (r + gamma (1 - terminated) Q_target(s', a*))`` with
   ``a* = argmax_a Q(s', a)`` (double DQN) or ``argmax_a Q_target(s', a)``;
4. ``sharpener.on_step(model)``: model sharpness ``m = clip((t - start) / (N d), 0, 1)``;
5. every ``target_update`` steps the target network becomes a copy of the online one.

From ``sharpen_end`` on (every hidden layer binary) Adam's learning rate is
``finetune_lr``, and with ``select_every > 0`` the greedy policy is scored every
``select_every`` steps on fixed selection episodes; the best snapshot is returned (see
:class:`~whetstone.rl.config.DQNConfig`). The conventional twin runs the same loop without
the sharpener (its layers stay at sharpness 0), with the same learning-rate change and
selection steps.

Determinism: the seed fixes torch (initialisation), one numpy ``Generator`` (exploration and
replay sampling) and the environment (``reset(seed=seed)`` once, its own RNG after that).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..nn.activations import SpikingBReLU
from ..nn.surrogate import StraightThrough
from ..runs.folder import seed_everything
from ..sharpening import StepSharpener, get_layer_sharpness, is_fully_sharp
from .config import SELECT_SEED, DQNConfig
from .envs import make_env
from .policy import evaluate_policy

CurvePoint = dict[str, Any]
"""One finished training episode: ``step`` (environment steps so far), ``episode`` (0-based),
``return`` (undiscounted, with exploration), ``sharpness`` (model sharpness, the mean over the
hidden layers), ``layer_sharpness``, ``epsilon`` and ``loss`` (mean Huber loss of the episode's
gradient steps, ``None`` before learning starts)."""


def build_q_network(n_obs: int, n_actions: int, hidden: tuple[int, ...],
                    straight_through: bool = False) -> nn.Sequential:
    """``Linear(n_obs, h0) -> SpikingBReLU -> ... -> Linear(h_last, n_actions)``.

    With ``straight_through`` the activations pass a boxcar straight-through gradient once at
    sharpness 1 (their forward is the exact step either way).
    """
    layers: list[nn.Module] = []
    width = n_obs
    for h in hidden:
        layers += [nn.Linear(width, h),
                   SpikingBReLU(surrogate=StraightThrough() if straight_through else None)]
        width = h
    layers.append(nn.Linear(width, n_actions))
    return nn.Sequential(*layers)


def fold_observation_scale(model: nn.Sequential, scale: tuple[float, ...]) -> nn.Sequential:
    """A copy of ``model`` that takes raw observations: ``W' = W diag(scale)`` in the first
    ``Linear`` (``model(scale * obs) == fold(model)(obs)``; bit for bit when every scale is a
    power of two)."""
    folded = copy.deepcopy(model)
    first = folded[0]
    if not isinstance(first, nn.Linear) or first.in_features != len(scale):
        raise ValueError(f"the model must start with a Linear over {len(scale)} inputs, got "
                         f"{first}")
    with torch.no_grad():
        first.weight.mul_(torch.tensor(scale, dtype=first.weight.dtype))
    return folded


class ReplayBuffer:
    """Circular buffer of transitions ``(s, a, r, s', terminated)``; uniform sampling.

    Arrays: observations ``(capacity, n_obs)`` float32, actions int64, rewards and
    ``terminated`` float32. Once full, the oldest transition is overwritten.
    """

    def __init__(self, capacity: int, n_obs: int) -> None:
        self.capacity = int(capacity)
        self.obs = np.zeros((capacity, n_obs), np.float32)
        self.next_obs = np.zeros((capacity, n_obs), np.float32)
        self.actions = np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.size = 0
        self._next = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray,
            terminated: bool) -> None:
        i = self._next
        self.obs[i] = obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.next_obs[i] = next_obs
        self.terminated[i] = float(terminated)
        self._next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[Tensor, ...]:
        """``batch_size`` transitions drawn uniformly with replacement, as torch tensors
        ``(obs (B, n_obs), actions (B,), rewards (B,), next_obs (B, n_obs), terminated (B,))``."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, size=batch_size)
        return tuple(torch.from_numpy(a[idx]) for a in
                     (self.obs, self.actions, self.rewards, self.next_obs, self.terminated))


def td_loss(online: nn.Module, target: nn.Module, batch: tuple[Tensor, ...], gamma: float,
            double_dqn: bool) -> Tensor:
    """Mean Huber loss (``delta = 1``) of the TD error of ``batch`` (see the module doc)."""
    obs, actions, rewards, next_obs, terminated = batch
    q = online(obs).gather(1, actions[:, None]).squeeze(1)
    with torch.no_grad():
        q_next = target(next_obs)
        if double_dqn:
            best = online(next_obs).argmax(dim=1, keepdim=True)
            bootstrap = q_next.gather(1, best).squeeze(1)
        else:
            bootstrap = q_next.max(dim=1).values
        y = rewards + gamma * (1.0 - terminated) * bootstrap
    return nn.functional.smooth_l1_loss(q, y)


@dataclass
class DQNResult:
    """What :func:`train_dqn` returns.

    ``model`` (sharpened, every hidden layer at 1) and ``conventional`` (never sharpened, or
    ``None``) take raw observations (the observation scale is folded in); ``curve`` and
    ``conventional_curve`` hold one :data:`CurvePoint` per training episode; ``selection``
    per phase the snapshot evaluations (``[{"step", "mean_return"}]``) and the selected step
    (``config.select_every > 0``); ``seconds`` the wall time of each training
    (``"whetstone"``, ``"conventional"``).
    """

    config: DQNConfig
    seed: int
    model: nn.Sequential
    curve: list[CurvePoint]
    conventional: nn.Sequential | None = None
    conventional_curve: list[CurvePoint] = field(default_factory=list)
    selection: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def train_dqn(config: DQNConfig, seed: int, progress: bool = True,
              on_episode: Callable[[str, CurvePoint], None] | None = None) -> DQNResult:
    """Train the sharpened Q-network (and, if ``config.train_conventional``, its never
    sharpened twin with the same seed and steps) on ``config.env_id``.

    Args:
        config: the hyperparameters.
        seed: seeds torch, the exploration / replay generator and the environment.
        progress: show a tqdm bar per training.
        on_episode: called after every training episode with the phase name
            (``"whetstone"`` or ``"conventional"``) and the episode's :data:`CurvePoint`.

    Raises:
        ImportError: gymnasium is not installed.
        RuntimeError: the sharpener did not reach every layer at 1 (cannot happen with a
            valid config; checked anyway before the model is returned).
    """
    result = DQNResult(config=config, seed=seed, model=nn.Sequential(), curve=[])
    start = time.perf_counter()
    result.model, result.curve, selection = _train(config, seed, True, progress, on_episode)
    result.seconds["whetstone"] = time.perf_counter() - start
    if selection:
        result.selection["whetstone"] = selection
    if config.train_conventional:
        start = time.perf_counter()
        result.conventional, result.conventional_curve, selection = _train(
            config, seed, False, progress, on_episode)
        result.seconds["conventional"] = time.perf_counter() - start
        if selection:
            result.selection["conventional"] = selection
    return result


def _train(config: DQNConfig, seed: int, sharpen: bool, progress: bool,
           on_episode: Callable[[str, CurvePoint], None] | None
           ) -> tuple[nn.Sequential, list[CurvePoint], dict[str, Any]]:
    """One DQN training; returns the (selected) model with the observation scale folded in,
    the curve and the selection record (empty without selection)."""
    phase = "whetstone" if sharpen else "conventional"
    env = make_env(config.env_id)
    n_obs = int(env.observation_space.shape[0])
    n_actions = int(env.action_space.n)
    if len(config.obs_scale) != n_obs:
        env.close()
        raise ValueError(f"obs_scale has {len(config.obs_scale)} entries, {config.env_id} "
                         f"observations have {n_obs}")
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    model = build_q_network(n_obs, n_actions, config.hidden,
                            straight_through=sharpen and config.straight_through)
    target = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, foreach=True)
    sharpener: StepSharpener | None = None
    if sharpen:
        sharpener = StepSharpener(config.sharpen_start, config.layer_duration)
        sharpener.on_train_begin(model)
    buffer = ReplayBuffer(config.buffer_size, n_obs)
    scale = np.asarray(config.obs_scale, np.float32)
    curve: list[CurvePoint] = []
    bar = _progress_bar(config.total_steps, phase, progress)
    obs_raw, _ = env.reset(seed=seed)
    obs = np.asarray(obs_raw, np.float32) * scale
    episode_return, losses = 0.0, []
    selector = _Selector(config) if config.select_every > 0 else None
    try:
        for step in range(config.total_steps):
            eps = config.epsilon(step)
            if rng.random() < eps:
                action = int(rng.integers(n_actions))
            else:
                with torch.no_grad():
                    action = int(model(torch.from_numpy(obs)[None]).argmax(dim=1))
            next_raw, reward, terminated, truncated, _ = env.step(action)
            next_obs = np.asarray(next_raw, np.float32) * scale
            buffer.add(obs, action, float(reward), next_obs, bool(terminated))
            episode_return += float(reward)
            done_steps = step + 1
            if done_steps >= config.learning_starts and done_steps % config.train_every == 0:
                loss = td_loss(model, target, buffer.sample(config.batch_size, rng),
                               config.gamma, config.double_dqn)
                optimizer.zero_grad(set_to_none=True)
                if loss.requires_grad:
                    loss.backward()
                    if config.grad_clip is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                    optimizer.step()
                losses.append(float(loss.detach()))
            if sharpener is not None:
                sharpener.on_step(model)
            if done_steps % config.target_update == 0:
                target.load_state_dict(model.state_dict())
            if done_steps == config.sharpen_end and config.finetune_lr is not None:
                for group in optimizer.param_groups:
                    group["lr"] = config.finetune_lr
            if selector is not None:
                selector.maybe_evaluate(model, done_steps)
            if terminated or truncated:
                layer_s = get_layer_sharpness(model)
                point: CurvePoint = {
                    "step": done_steps, "episode": len(curve), "return": episode_return,
                    "sharpness": sum(layer_s) / len(layer_s), "layer_sharpness": layer_s,
                    "epsilon": eps, "loss": float(np.mean(losses)) if losses else None}
                curve.append(point)
                if on_episode is not None:
                    on_episode(phase, point)
                if bar is not None:
                    bar.set_postfix(ret=f"{episode_return:.0f}", s=f"{point['sharpness']:.2f}")
                episode_return, losses = 0.0, []
                obs_raw, _ = env.reset()
                obs = np.asarray(obs_raw, np.float32) * scale
            else:
                obs = next_obs
            if bar is not None:
                bar.update(1)
    finally:
        env.close()
        if bar is not None:
            bar.close()
    if sharpener is not None and not (sharpener.done and is_fully_sharp(model)):
        raise RuntimeError(f"sharpening did not finish: layer sharpness "
                           f"{get_layer_sharpness(model)} after {config.total_steps} steps")
    record: dict[str, Any] = {}
    if selector is not None:
        record = selector.restore_best(model)
    return fold_observation_scale(model, config.obs_scale), curve, record


class _ScaledPolicy:
    """The training-time greedy policy: ``Q(obs_scale * obs)`` with the model as it is."""

    def __init__(self, model: nn.Module, scale: tuple[float, ...]) -> None:
        self.model = model
        self.scale = np.asarray(scale, np.float32)

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(np.asarray(obs, np.float32) * self.scale)
            return self.model(x).double().numpy()


class _Selector:
    """Snapshot selection in the binary phase (see ``DQNConfig.select_every``)."""

    def __init__(self, config: DQNConfig) -> None:
        self.config = config
        self.evaluations: list[dict[str, Any]] = []
        self.best: tuple[float, int, dict[str, Tensor]] | None = None

    def maybe_evaluate(self, model: nn.Module, step: int) -> None:
        c = self.config
        due = step >= c.sharpen_end and ((step - c.sharpen_end) % c.select_every == 0
                                         or step == c.total_steps)
        if not due:
            return
        score = float(evaluate_policy(_ScaledPolicy(model, c.obs_scale), c.env_id,
                                      c.select_episodes, SELECT_SEED).returns.mean())
        self.evaluations.append({"step": step, "mean_return": score})
        if self.best is None or score >= self.best[0]:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.best = (score, step, state)

    def restore_best(self, model: nn.Module) -> dict[str, Any]:
        assert self.best is not None, "no selection evaluation ran"
        model.load_state_dict(self.best[2])
        return {"evaluations": self.evaluations, "selected_step": self.best[1],
                "selected_return": self.best[0]}


def _progress_bar(total: int, phase: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"dqn {phase}", unit="step", mininterval=1.0)
