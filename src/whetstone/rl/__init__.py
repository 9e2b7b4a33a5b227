"""Reinforcement learning with binary, single-step spiking policies (DQN, §5 of the method).

- :class:`DQNConfig` (:mod:`.config`): hyperparameters, CartPole-v1 defaults.
- :func:`train_dqn` (:mod:`.dqn`): DQN with sharpened hidden layers and the step-based
  sharpener; also trains the never-sharpened twin; returns a :class:`DQNResult`.
- :func:`evaluate_policies` (:mod:`.policy`): the conventional, the fully binary torch and the
  spiking policy (numpy runtime inside the environment loop) over fixed-seed episodes, with
  their action agreement and the spiking network's activity.
- :func:`plot_learning_curve` (:mod:`.plot`): return against environment step, sharpness on a
  second axis (needs matplotlib).

Importing this package needs no gymnasium; running an environment does and raises an
ImportError naming ``pip install 'whetstone[rl]'`` without it.
"""

from .config import DQNConfig
from .dqn import (
    CurvePoint,
    DQNResult,
    ReplayBuffer,
    build_q_network,
    fold_observation_scale,
    td_loss,
    train_dqn,
)
from .envs import INSTALL_HINT, make_env, require_gymnasium
from .plot import plot_learning_curve
from .policy import (
    Evaluation,
    Policy,
    SpikingPolicy,
    TorchPolicy,
    action_agreement,
    evaluate_policies,
    evaluate_policy,
    greedy_action,
)

__all__ = [
    "INSTALL_HINT",
    "CurvePoint",
    "DQNConfig",
    "DQNResult",
    "Evaluation",
    "Policy",
    "ReplayBuffer",
    "SpikingPolicy",
    "TorchPolicy",
    "action_agreement",
    "build_q_network",
    "evaluate_policies",
    "evaluate_policy",
    "fold_observation_scale",
    "greedy_action",
    "make_env",
    "plot_learning_curve",
    "require_gymnasium",
    "td_loss",
    "train_dqn",
]
