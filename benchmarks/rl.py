"""Beyond classification: a DQN policy on CartPole-v1 run as a binary, single-step spiking
network (issue 12).

Per seed, :func:`whetstone.rl.train_dqn` trains the Q-network with sharpened hidden layers
(step-based sharpener) and its never-sharpened twin (same seed, same steps); then
:func:`whetstone.rl.evaluate_policies` plays 100 greedy episodes with fixed reset seeds for

- the conventional policy (the twin, float32 torch),
- the fully binary torch policy (float64 torch),
- the spiking policy (the converted network on the numpy runtime, float64, inside the
  environment loop),

and compares the binary torch and spiking action sequences. The JSON is rewritten after every
seed; the learning-curve figure (return against step, sharpness on a second axis) at the end.

    OMP_NUM_THREADS=1 python -m benchmarks.rl                 # 3 seeds, DQNConfig defaults
    OMP_NUM_THREADS=1 python -m benchmarks.rl --quick         # tiny run, checks the plumbing
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from whetstone.rl import DQNConfig, evaluate_policies, plot_learning_curve, train_dqn

from .common import RESULTS, environment, write_json

QUICK = {"hidden": [16, 16], "total_steps": 1500, "sharpen_start": 500, "layer_duration": 300,
         "learning_starts": 64, "batch_size": 32, "epsilon_decay_steps": 500}


def _compact_curve(curve: list[dict[str, Any]]) -> dict[str, list[float]]:
    return {"step": [p["step"] for p in curve], "return": [p["return"] for p in curve],
            "sharpness": [round(p["sharpness"], 6) for p in curve]}


def _aggregate(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("conventional", "binary_torch", "spiking"):
        means = [s["evaluation"][key]["mean_return"] for s in per_seed
                 if s["evaluation"][key] is not None]
        if means:
            out[key] = {"mean_return": float(np.mean(means)),
                        "std_over_seeds": float(np.std(means)), "per_seed": means}
    out["identical_episodes"] = [s["evaluation"]["agreement"]["identical_episodes"]
                                 for s in per_seed]
    out["same_observations"] = [s["evaluation"]["agreement"]["same_observations"]
                                for s in per_seed]
    out["max_abs_q_difference"] = max(s["evaluation"]["agreement"]["max_abs_q_difference"]
                                      for s in per_seed)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--eval-seed", type=int, default=1_000_000,
                   help="episode i of the evaluation resets with seed eval_seed + i")
    p.add_argument("--config", type=json.loads, default={},
                   help="JSON object of DQNConfig fields to change")
    p.add_argument("--quick", action="store_true", help="a tiny configuration (plumbing only)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    config = DQNConfig.from_dict({**(QUICK if args.quick else {}), **args.config})
    name = "rl-cartpole-quick" if args.quick else "rl-cartpole"
    out = args.out or RESULTS / f"{name}.json"
    result: dict[str, Any] = {"config": config.to_dict(), "episodes": args.episodes,
                              "eval_seed": args.eval_seed, "environment": environment(),
                              "seeds": []}
    curves: dict[str, list[dict[str, Any]]] = {}
    for seed in args.seeds:
        trained = train_dqn(config, seed, progress=False)
        evaluation = evaluate_policies(trained.model, trained.conventional, args.episodes,
                                       args.eval_seed, config.env_id)
        result["seeds"].append({
            "seed": seed, "train_seconds": trained.seconds, "selection": trained.selection,
            "evaluation": evaluation,
            "curve": _compact_curve(trained.curve),
            "conventional_curve": _compact_curve(trained.conventional_curve)})
        result["summary"] = _aggregate(result["seeds"])
        write_json(out, result)
        curves[f"whetstone, seed {seed}"] = trained.curve
        if trained.conventional_curve:
            curves[f"conventional, seed {seed}"] = trained.conventional_curve
        line = ", ".join(f"{k} {evaluation[k]['mean_return']:.1f}"
                         for k in ("conventional", "binary_torch", "spiking")
                         if evaluation[k] is not None)
        print(f"seed {seed}: {line}; identical episodes "
              f"{evaluation['agreement']['identical_episodes']}/{args.episodes}; "
              f"train {sum(trained.seconds.values()):.0f} s", flush=True)
    first = f"whetstone, seed {args.seeds[0]}"
    plot_learning_curve(curves, out.with_suffix(".png"), sharpness_of=first,
                        title=f"DQN on {config.env_id}: sharpened vs conventional")
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
