"""The settings of a DQN run on a gymnasium environment (a frozen dataclass, JSON-ready).

One run is ``total_steps`` environment steps in three phases:

1. ``[0, sharpen_start)``: ordinary DQN with soft (sharpness 0) bounded ReLUs;
2. ``[sharpen_start, sharpen_start + N * layer_duration)``: the step sharpener raises the
   model sharpness ``m = (step - sharpen_start) / (N * layer_duration)``, bottom-up over the
   ``N`` hidden layers;
3. the remaining ``total_steps - sharpen_start - N * layer_duration`` steps: binary
   fine-tuning (every hidden layer a step; with ``straight_through`` their weights keep
   learning through a boxcar straight-through gradient, otherwise only the readout learns).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

SELECT_SEED = 10_000_000
"""Reset seeds of the snapshot-selection episodes are ``SELECT_SEED + i``."""


def _power_of_two(v: float) -> bool:
    return v > 0 and math.isfinite(v) and math.frexp(v)[0] == 0.5


@dataclass(frozen=True)
class DQNConfig:
    """Hyperparameters of :func:`whetstone.rl.train_dqn` (defaults: CartPole-v1).

    Attributes:
        env_id: gymnasium environment id (discrete actions, flat ``Box`` observations).
        hidden: widths of the hidden layers, each ``Linear -> SpikingBReLU``; a ``Linear``
            readout gives one Q-value per action.
        obs_scale: fixed per-feature input scale ``x' = obs_scale * obs`` used while training
            and folded into the first layer afterwards (``W' = W diag(obs_scale)``). Powers of
            two only: scaling by ``2^k`` commutes with floating-point rounding, so the folded
            model computes bit for bit what the trained one computed. CartPole: cart
            position, cart velocity, pole angle, pole angular velocity.
        lr: Adam learning rate.
        gamma: discount factor.
        buffer_size: replay buffer capacity (transitions, oldest overwritten).
        batch_size: transitions per gradient step.
        learning_starts: environment steps before the first gradient step.
        train_every: one gradient step every this many environment steps.
        epsilon_start, epsilon_end, epsilon_decay_steps: epsilon-greedy exploration,
            ``eps(t) = eps_end + (eps_start - eps_end) max(0, 1 - t / decay_steps)``.
        target_update: the target network is copied from the online one every this many
            environment steps (hard update; the copy includes the layers' sharpness).
        double_dqn: bootstrap with ``Q_target(s', argmax_a Q_online(s', a))`` instead of
            ``max_a Q_target(s', a)``.
        grad_clip: maximum global gradient norm (``None``: no clipping).
        total_steps: environment steps of the whole run (all three phases).
        sharpen_start: environment step at which sharpening begins.
        layer_duration: environment steps over which each hidden layer goes from 0 to 1.
        straight_through: fully sharpened layers pass a boxcar straight-through gradient
            (:class:`whetstone.nn.StraightThrough`); the forward stays exactly binary.
        finetune_lr: Adam learning rate from ``sharpen_end`` on (``None``: ``lr`` throughout).
        select_every: snapshot selection in the binary phase: from ``sharpen_end`` on, every
            this many steps and at the last step, the greedy policy plays ``select_episodes``
            episodes (reset seeds ``SELECT_SEED + i``, apart from any evaluation seeds) and the
            best-scoring snapshot (latest on ties) is the one returned. ``0``: the final
            weights are returned. The conventional twin is selected the same way over the same
            steps.
        select_episodes: episodes per selection evaluation.
        train_conventional: also train the never-sharpened twin (same seed, same steps).
    """

    env_id: str = "CartPole-v1"
    hidden: tuple[int, ...] = (128, 128)
    obs_scale: tuple[float, ...] = (0.5, 0.5, 4.0, 0.5)
    lr: float = 1e-3
    gamma: float = 0.98
    buffer_size: int = 40_000
    batch_size: int = 64
    learning_starts: int = 1_000
    train_every: int = 2
    epsilon_start: float = 1.0
    epsilon_end: float = 0.02
    epsilon_decay_steps: int = 8_000
    target_update: int = 250
    double_dqn: bool = True
    grad_clip: float | None = 10.0
    total_steps: int = 40_000
    sharpen_start: int = 12_000
    layer_duration: int = 6_000
    straight_through: bool = True
    finetune_lr: float | None = 2e-4
    select_every: int = 1_000
    select_episodes: int = 10
    train_conventional: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "obs_scale", tuple(float(s) for s in self.obs_scale))
        problems = []
        if not self.hidden or any(h < 1 for h in self.hidden):
            problems.append(f"hidden must be one or more widths >= 1, got {self.hidden}")
        bad = [s for s in self.obs_scale if not _power_of_two(s)]
        if bad:
            problems.append(f"obs_scale entries must be powers of two (exact fold), got {bad}")
        if not 0.0 < self.lr:
            problems.append(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.gamma <= 1.0:
            problems.append(f"gamma must lie in [0, 1], got {self.gamma}")
        for name in ("buffer_size", "batch_size", "train_every", "target_update",
                     "epsilon_decay_steps", "layer_duration", "total_steps"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size > self.buffer_size:
            problems.append(f"batch_size {self.batch_size} exceeds buffer_size "
                            f"{self.buffer_size}")
        if self.learning_starts < self.batch_size:
            problems.append(f"learning_starts ({self.learning_starts}) must be >= batch_size "
                            f"({self.batch_size})")
        if not 0.0 <= self.epsilon_end <= self.epsilon_start <= 1.0:
            problems.append("need 0 <= epsilon_end <= epsilon_start <= 1, got "
                            f"{self.epsilon_end}, {self.epsilon_start}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            problems.append(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.finetune_lr is not None and not self.finetune_lr > 0:
            problems.append(f"finetune_lr must be > 0 or None, got {self.finetune_lr}")
        if self.select_every < 0 or self.select_episodes < 1:
            problems.append(f"need select_every >= 0 and select_episodes >= 1, got "
                            f"{self.select_every}, {self.select_episodes}")
        if self.sharpen_start < 0:
            problems.append(f"sharpen_start must be >= 0, got {self.sharpen_start}")
        if self.sharpen_end > self.total_steps:
            problems.append(
                f"sharpening ends at step {self.sharpen_end} (sharpen_start + "
                f"{len(self.hidden)} layers x layer_duration) after total_steps "
                f"{self.total_steps}: every hidden layer must reach sharpness 1 in the run")
        if problems:
            raise ValueError("invalid DQNConfig: " + "; ".join(problems))

    @property
    def sharpen_end(self) -> int:
        """Environment step at which every hidden layer reaches sharpness 1."""
        return self.sharpen_start + len(self.hidden) * self.layer_duration

    @property
    def finetune_steps(self) -> int:
        """Environment steps of the binary phase after sharpening."""
        return self.total_steps - self.sharpen_end

    def epsilon(self, step: int) -> float:
        """Exploration rate at environment step ``step`` (linear decay, then constant)."""
        frac = max(0.0, 1.0 - step / self.epsilon_decay_steps)
        return self.epsilon_end + (self.epsilon_start - self.epsilon_end) * frac

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DQNConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown DQNConfig keys {unknown}; known: {sorted(names)}")
        return cls(**data)

    def replace(self, **changes: Any) -> DQNConfig:
        """A copy with ``changes`` applied (checked again)."""
        return dataclasses.replace(self, **changes)
