"""Gymnasium, imported only when an environment is needed (the optional ``rl`` extra)."""

from __future__ import annotations

from typing import Any

INSTALL_HINT = "pip install 'whetstone[rl]'"


def require_gymnasium() -> Any:
    """The ``gymnasium`` module, or an ImportError that says how to install it."""
    try:
        import gymnasium
    except ImportError as exc:
        raise ImportError(
            f"whetstone.rl needs gymnasium to run environments: {INSTALL_HINT} "
            "(or pip install 'gymnasium>=1.0')") from exc
    return gymnasium


def make_env(env_id: str) -> Any:
    """``gymnasium.make(env_id)`` after checking it has discrete actions and flat observations.

    Raises:
        ImportError: gymnasium is not installed (names the extra to install).
        ValueError: the environment's action space is not ``Discrete`` or its observation
            space is not a one-dimensional ``Box``.
    """
    gym = require_gymnasium()
    env = gym.make(env_id)
    spaces = gym.spaces
    if not isinstance(env.action_space, spaces.Discrete):
        env.close()
        raise ValueError(f"{env_id}: DQN needs a Discrete action space, got {env.action_space}")
    if not isinstance(env.observation_space, spaces.Box) or len(env.observation_space.shape) != 1:
        env.close()
        raise ValueError(f"{env_id}: needs a one-dimensional Box observation space, got "
                         f"{env.observation_space}")
    return env
