"""Run folders of reinforcement-learning policies (DQN, :mod:`whetstone.rl`).

``runs/NAME/`` of a policy holds ``config.json`` (``{"task": "reinforcement", "name", "seed",
"dqn": DQNConfig}``), ``model.safetensors`` (the fully sharpened Q-network, the observation
scale folded in), ``conventional.safetensors`` (its never-sharpened twin, when trained),
``curve.jsonl`` (one line per training episode, both trainings), ``summary.json`` (the
evaluation of the conventional, binary torch and spiking policies over fixed-seed episodes,
times, versions) and ``learning-curve.png``. It is written as a transaction like every run
folder (:mod:`whetstone.runs.transaction`).
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .folder import CONFIG, SUMMARY, WEIGHTS, versions
from .io import MODEL_HASH_KEY, atomic_write_text, load_weights, save_weights
from .transaction import commit, partial_folder, run_lock

POLICY_TASK = "reinforcement"
"""The ``task`` a policy run's ``config.json`` names."""
CONVENTIONAL = "conventional.safetensors"
CURVE = "curve.jsonl"
CURVE_PLOT = "learning-curve.png"
EVAL_EPISODES = 100
"""Evaluation episodes per policy (reset seeds ``EVAL_SEED + i``)."""
EVAL_SEED = 1_000_000


@dataclass(frozen=True)
class PolicyConfig:
    """A policy run's configuration: the preset ``name``, the ``seed`` and the DQN settings."""

    name: str
    seed: int
    dqn: Any  # whetstone.rl.DQNConfig
    task: str = POLICY_TASK

    @property
    def dataset(self) -> str:
        """The environment, where a supervised run names its dataset."""
        return str(self.dqn.env_id)

    @property
    def input_shape(self) -> tuple[int]:
        """Observation shape of the network (one value per observation feature)."""
        return (len(self.dqn.obs_scale),)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "name": self.name, "seed": self.seed,
                "dqn": self.dqn.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path | None = None) -> PolicyConfig:
        from ..rl import DQNConfig

        where = f"{source}: " if source else ""
        if data.get("task") != POLICY_TASK or set(data) != {"task", "name", "seed", "dqn"}:
            raise ValueError(f"{where}not a policy configuration (keys task, name, seed, dqn "
                             f"expected, got {sorted(data)})")
        try:
            return cls(str(data["name"]), int(data["seed"]), DQNConfig.from_dict(data["dqn"]))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}{exc}") from None


def is_policy_run(path: str | Path) -> bool:
    """Does the folder's ``config.json`` name the reinforcement-learning task?"""
    from ..presets.config import MAX_CONFIG_BYTES

    try:
        with open(Path(path) / CONFIG, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            return False
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return False  # not a readable policy configuration: the supervised reader says why
    return isinstance(data, dict) and data.get("task") == POLICY_TASK


def _network(config: PolicyConfig, weights: Path) -> nn.Sequential:
    """The Q-network of ``config`` to load ``weights`` into (observations ``len(obs_scale)``,
    actions from the readout's weight in the file; no environment needed)."""
    from ..rl import build_q_network
    from .io import load_tensors

    tensors, _ = load_tensors(weights)
    readout = f"{2 * len(config.dqn.hidden)}.weight"
    if readout not in tensors:
        raise ValueError(f"{weights}: no readout weight {readout!r} for hidden layers "
                         f"{list(config.dqn.hidden)}")
    n_actions = int(tensors[readout].shape[0])
    return build_q_network(config.input_shape[0], n_actions, config.dqn.hidden,
                           config.dqn.straight_through)


@dataclass
class PolicyRun:
    """A policy run folder loaded back."""

    path: Path
    config: PolicyConfig
    model: nn.Sequential
    conventional: nn.Sequential | None
    history: None = None


def load_policy_run(path: str | Path) -> PolicyRun:
    """Rebuild the sharpened (and, if saved, the conventional) Q-network of a policy run."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise FileNotFoundError(f"{path}: no {CONFIG}; is this a whetstone run folder?")
    if not (path / WEIGHTS).is_file():
        raise FileNotFoundError(f"{path}: no {WEIGHTS}; did the training finish?")
    config = PolicyConfig.from_dict(json.loads((path / CONFIG).read_text(encoding="utf-8")),
                                    source=path / CONFIG)
    model = _network(config, path / WEIGHTS)
    load_weights(model, path / WEIGHTS)
    model.eval()
    conventional = None
    if (path / CONVENTIONAL).is_file():
        conventional = _network(config, path / CONVENTIONAL)
        load_weights(conventional, path / CONVENTIONAL)
        conventional.eval()
    return PolicyRun(path, config, model, conventional)


def train_policy_run(config: PolicyConfig, out: str | Path, progress: bool = True,
                     plot: bool = True, episodes: int = EVAL_EPISODES) -> dict[str, Any]:
    """Train ``config`` (:func:`whetstone.rl.train_dqn`), evaluate the conventional, binary
    torch and spiking policies over ``episodes`` fixed-seed episodes
    (:func:`whetstone.rl.evaluate_policies`) and write the run folder ``out``; returns the
    summary. A failed or interrupted call leaves an existing ``out`` as it was."""
    from ..rl import evaluate_policies, require_gymnasium, train_dqn

    require_gymnasium()
    out = Path(out)
    partial = partial_folder(out)
    t_start = time.perf_counter()
    with run_lock(out):
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        try:
            atomic_write_text(partial / CONFIG, json.dumps(config.to_dict(), indent=2) + "\n")
            result = train_dqn(config.dqn, config.seed, progress=progress)
            checksum = save_weights(result.model, partial / WEIGHTS,
                                    metadata={"format": "whetstone-policy-run"})
            if result.conventional is not None:
                save_weights(result.conventional, partial / CONVENTIONAL,
                             metadata={"format": "whetstone-policy-run"})
            lines = [json.dumps({"policy": "whetstone", **p}) for p in result.curve]
            lines += [json.dumps({"policy": "conventional", **p})
                      for p in result.conventional_curve]
            atomic_write_text(partial / CURVE, "\n".join(lines) + "\n")
            t_eval = time.perf_counter()
            evaluation = evaluate_policies(result.model, result.conventional, episodes=episodes,
                                           seed=EVAL_SEED, env_id=config.dqn.env_id)
            summary = {
                "name": config.name, "task": POLICY_TASK, "env_id": config.dqn.env_id,
                "seed": config.seed, "metric": "mean_return",
                "mean_return": {k: (evaluation[k] or {}).get("mean_return")
                                for k in ("conventional", "binary_torch", "spiking")},
                "evaluation": evaluation,
                "selection": result.selection,
                "train_seconds": result.seconds,
                "eval_seconds": time.perf_counter() - t_eval,
                "total_seconds": time.perf_counter() - t_start,
                MODEL_HASH_KEY: checksum,
                "machine": platform.machine(), "versions": versions(),
                "command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            atomic_write_text(partial / SUMMARY, json.dumps(summary, indent=2) + "\n")
            if plot:
                from ..rl import plot_learning_curve

                curves = {"whetstone": result.curve}
                if result.conventional_curve:
                    curves["conventional"] = result.conventional_curve
                plot_learning_curve(curves, partial / CURVE_PLOT,
                                    title=f"{config.name} (seed {config.seed})")
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        commit(partial, out)
    return summary


def evaluate_policy_run(path: str | Path, episodes: int = EVAL_EPISODES,
                        seed: int = EVAL_SEED) -> dict[str, Any]:
    """The conventional, binary torch and spiking policies of a run over ``episodes``
    episodes (reset seeds ``seed + i``): :func:`whetstone.rl.evaluate_policies` plus the run."""
    from ..rl import evaluate_policies

    run = load_policy_run(path)
    result = evaluate_policies(run.model, run.conventional, episodes=episodes, seed=seed,
                               env_id=run.config.dqn.env_id)
    return {"run": str(run.path), "task": POLICY_TASK, "name": run.config.name, **result}
