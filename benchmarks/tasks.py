"""Beyond classification (issue 12): a preset's conventional, fully binary and spiking networks.

For each seed: train the preset (every layer sharpened to 1) and the same network never
sharpened (the conventional twin, which the issue-12 presets train beside their run); both
train on ``train`` and are validated on ``val``; each
finished network is scored once on the full test set: the conventional one as trained and
simply thresholded, the sharpened one in torch and as the converted spiking network (numpy
runtime, float64), whose outputs are compared with the float64 torch model's. The spiking
network's SynOps and spike density are counted on the test set. For an autoencoder, a linear
probe (logistic regression on the training images' binary codes, scored on the test images')
says how much of the class the code keeps. Results are rewritten after every seed; a finished
run with the same configuration is reused. A figure of seed 0's outputs goes beside the JSON.

    python -m benchmarks.tasks --preset mnist-autoencoder --seeds 0 1 2
    python -m benchmarks.tasks --preset digits-segmentation --seeds 0 1 2
    python -m benchmarks.tasks --merge a.json b.json --out task-PRESET.json

``--merge`` joins result files of one preset run as separate processes (seeds side by side).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from whetstone.conversion import to_spiking
from whetstone.metrics import network_stats
from whetstone.metrics.probe import linear_probe
from whetstone.presets import get_preset
from whetstone.presets.build import build_task, conventional_twin
from whetstone.runs import evaluate_run, load_run, load_split, train_run
from whetstone.runtime import run as run_network
from whetstone.sharpening import fully_sharpened

from .common import RESULTS, environment, write_json


def _trained(config: Any, folder: Path, limits: dict[str, Any]) -> dict[str, Any]:
    """The summary of ``config`` trained into ``folder`` (reused when it is already there with
    the same configuration)."""
    if (folder / "summary.json").is_file() and (folder / "config.json").is_file():
        if json.loads((folder / "config.json").read_text()) == config.to_dict():
            return json.loads((folder / "summary.json").read_text())
    return train_run(config, folder, progress=False, plot=True, **limits)


def _codes(run_dir: Path, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The binary codes (the spikes of the autoencoder's middle layer) of a split's images."""
    run = load_run(run_dir)
    net = to_spiking(run.model)
    data = load_split(run.config.dataset, split, None, limit)
    _, spikes = run_network(net, data.x.numpy(), record=True)
    middle = len(run.config.model.get("hidden", [256]))
    return spikes[middle], data.y.numpy()


def _figure(preset: str, conventional: Path, sharpened: Path, path: Path) -> Path:
    """Seed 0's outputs on the first test images: reconstructions or masks."""
    from whetstone.plotting.tasks import plot_reconstructions, plot_segmentation

    conv, sharp = load_run(conventional), load_run(sharpened)
    data = load_split(sharp.config.dataset, "test", None, 10)
    net = to_spiking(sharp.model)
    with torch.no_grad():
        conv_out = conv.model(data.x)
        with fully_sharpened(conv.model):
            thresholded = conv.model(data.x)
    spiking = torch.from_numpy(run_network(net, data.x.numpy()))
    if sharp.config.task == "reconstruction":
        shape = data.x.shape[1:]
        images = {"conventional": conv_out, "conventional thresholded": thresholded,
                  "binary (spiking)": spiking}
        return plot_reconstructions(
            data.x[:, 0].numpy(),
            {k: v.reshape(-1, *shape)[:, 0].numpy() for k, v in images.items()}, path,
            title=f"{preset}: test images and their reconstructions (seed 0)")
    return plot_segmentation(
        data.x[:8, 0].numpy(), data.y[:8].numpy(),
        {"conventional": conv_out[:8].argmax(1).numpy(),
         "binary (spiking)": spiking[:8].argmax(1).numpy()}, path,
        classes=int(sharp.config.model.get("classes", 11)),
        title=f"{preset}: test canvases, true and predicted masks (seed 0)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset")
    p.add_argument("--merge", type=Path, nargs="+", help="result files of one preset to join")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--runs-dir", type=Path, default=Path("runs/bench/tasks"))
    p.add_argument("--quick", action="store_true",
                   help="2,000 training / 500 validation and test images, 2 epochs")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.merge:
        parts = [json.loads(path.read_text()) for path in args.merge]
        if len({part["preset"] for part in parts}) != 1 or args.out is None:
            p.error("--merge joins files of one preset and needs --out")
        runs = {r["seed"]: r for part in parts for r in part["runs"]}
        merged = {**parts[0], "runs": [runs[k] for k in sorted(runs)],
                  "invocations": [part["environment"] for part in parts]}
        merged["figure"] = next((part["figure"] for part in parts if part.get("figure")), None)
        write_json(args.out, merged)
        return
    if args.preset is None:
        p.error("--preset is needed (or --merge)")
    limits: dict[str, Any] = ({"train_limit": 2000, "val_limit": 500, "test_limit": 500}
                              if args.quick else {})
    label = args.preset + ("-quick" if args.quick else "")
    out = args.out or RESULTS / f"task-{label}.json"
    result: dict[str, Any] = {"study": "tasks", "preset": args.preset,
                              "environment": environment(), "quick": args.quick, "runs": []}
    if out.exists():
        old = json.loads(out.read_text())
        result["runs"] = [r for r in old.get("runs", []) if r["seed"] not in args.seeds]
    for seed in args.seeds:
        config = get_preset(args.preset).merged({"seed": seed})
        if args.quick:
            config = config.merged({"epochs": 2, "finetune_epochs": 0,
                                    "schedule": {"name": "scheduled", "start": 0,
                                                 "duration": 0.5, "intermission": 0}})
        base = args.runs_dir / label
        t0 = time.perf_counter()
        sharp_dir = base / f"sharpened-seed{seed}"
        if not config.twin:  # the preset's run trains its twin beside it otherwise
            _trained(conventional_twin(config), base / f"conventional-seed{seed}", limits)
        sharp_summary = _trained(config, sharp_dir, limits)
        conv_dir = (Path(sharp_summary["twin"]) if sharp_summary.get("twin")
                    else base / f"conventional-seed{seed}")
        conv_summary = json.loads((conv_dir / "summary.json").read_text())
        limit = limits.get("test_limit")
        conv_eval = evaluate_run(conv_dir, limit=limit, spiking=False)
        sharp_eval = evaluate_run(sharp_dir, limit=limit)
        task = build_task(config)
        test = load_split(config.dataset, "test", None, limit)
        net = to_spiking(load_run(sharp_dir).model)
        stats = network_stats(net, test.x.numpy(), test.y.numpy() if task.discrete else None)
        row: dict[str, Any] = {
            "seed": seed, "task": config.task, "metric": sharp_eval["metric"],
            "config": config.to_dict(),
            "conventional": conv_eval["metrics"],
            "conventional_thresholded": conv_eval["metrics_binary"],
            "binary": sharp_eval["metrics_binary"],
            "spiking": sharp_eval["metrics_spiking"],
            "agreement": sharp_eval["agreement"],
            "synops": {k: stats["total"].get(k) for k in
                       ("synops", "ac", "mac", "dense_mac", "synops_per_dense_mac")},
            "density": {k: stats["total"].get(k) for k in ("density_mean", "density_overall")},
            "train_seconds": {"conventional": conv_summary["train_seconds"],
                              "sharpened": sharp_summary["train_seconds"]},
            "val": {"conventional": conv_summary["val_accuracy"],
                    "binary": sharp_summary["val_accuracy_binary"]},
            "run_dirs": {"conventional": str(conv_dir), "sharpened": str(sharp_dir)},
            "splits": {"train": "train", "validation": "val", "reported": "test"},
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        if config.task == "reconstruction":
            train_codes, train_y = _codes(sharp_dir, "train", limits.get("train_limit"))
            test_codes, test_y = _codes(sharp_dir, "test", limit)
            probe = linear_probe(train_codes, train_y, test_codes, test_y)
            row["probe"] = {"code_bits": int(train_codes.shape[1]),
                            "train_accuracy": probe.train_accuracy,
                            "test_accuracy": probe.test_accuracy}
        row["seconds"] = time.perf_counter() - t0
        if seed == args.seeds[0]:
            figure = _figure(args.preset, conv_dir, sharp_dir, out.with_suffix(".png"))
            result["figure"] = figure.name
        result["runs"] = sorted([*result["runs"], row], key=lambda r: r["seed"])
        write_json(out, result)
        print(f"{args.preset} seed {seed}: conventional {row['conventional']}, "
              f"binary {row['binary']}, spiking {row['spiking']}, agreement {row['agreement']}")


# ----------------------------------------------------------------------------- report

def _mean_std(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    values = [scale * v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return (f"{statistics.mean(values):.{digits}f} ± {statistics.pstdev(values):.{digits}f}")


def section() -> list[str]:
    """The BENCHMARKS.md section of every ``task-*.json``."""
    files = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("task-*.json"))
             if "-quick" not in p.stem]
    rl = rl_section()
    if not files and not rl:
        return []
    out = ["## Beyond classification: autoencoders, segmentation, reinforcement learning "
           "(issue 12)", "",
           "Each preset trained with sharpening (every layer binary at the end) beside the same "
           "network never sharpened (conventional) and that network simply thresholded; scores "
           "on the full test set once per run (mean ± std over seeds). The autoencoder recipe "
           "was chosen on MNIST's validation split (the tuning table below) and applied to "
           "Fashion-MNIST as it is; the segmentation recipe came from short validation "
           "trials, without a sweep; "
           "the RL policies keep their best snapshot on selection episodes whose reset seeds "
           "are apart from the evaluation's. The spiking network is the converted one run by "
           "the numpy runtime in float64; *agreement* compares its outputs with the float64 "
           "torch model's (equal decisions; for real-valued readouts the largest absolute "
           "difference). SynOps and density: per test sample (per environment step for RL), the "
           "spiking network. Training seconds: one torch thread per run, on a machine that may "
           "have run other benchmarks at the same time (see the dates): not speed figures.", ""]
    for data in files:
        runs = data["runs"]
        task, preset = runs[0]["task"], data["preset"]
        seeds = ", ".join(str(r["seed"]) for r in runs)
        envs = data.get("invocations") or [data["environment"]]
        out += [f"### {preset} ({task}, seeds {seeds})", "",
                "; ".join(_env(env) for env in envs), ""]
        if task == "reconstruction":
            out += ["| network | test MSE | test PSNR (dB) |", "|---|---|---|"]
            for key, name in (("conventional", "conventional"),
                              ("conventional_thresholded", "conventional, thresholded"),
                              ("binary", "fully binary (torch)"),
                              ("spiking", "spiking (numpy runtime)")):
                out.append(f"| {name} | {_mean_std([r[key]['mse'] for r in runs], digits=5)} | "
                           f"{_mean_std([r[key]['psnr'] for r in runs])} |")
            gap = [r["conventional"]["psnr"] - r["binary"]["psnr"] for r in runs]
            probes = [r["probe"]["test_accuracy"] for r in runs if "probe" in r]
            out += ["", f"Conventional minus binary: {_mean_std(gap)} dB PSNR. Linear probe "
                    f"(logistic regression on the {runs[0].get('probe', {}).get('code_bits')}"
                    f"-bit binary codes of the training images, scored on the test images' "
                    f"codes): {_mean_std(probes, 100)} % test accuracy."]
        else:
            out += ["| network | test pixel accuracy (%) | test mean IoU (%) |",
                    "|---|---|---|"]
            for key, name in (("conventional", "conventional"),
                              ("conventional_thresholded", "conventional, thresholded"),
                              ("binary", "fully binary (torch)"),
                              ("spiking", "spiking (numpy runtime)")):
                out.append(f"| {name} | {_mean_std([r[key]['pixel_accuracy'] for r in runs], 100)}"
                           f" | {_mean_std([r[key]['mean_iou'] for r in runs], 100)} |")
            gap = [r["conventional"]["mean_iou"] - r["binary"]["mean_iou"] for r in runs]
            ious = [r["spiking"]["iou"] for r in runs]
            per_class = [statistics.mean(v[k] for v in ious if v[k] is not None)
                         for k in range(len(ious[0]))]
            out += ["", f"Conventional minus binary: {_mean_std(gap, 100)} points of mean IoU. "
                    "Per-class IoU of the spiking network (mean over seeds; background, digits "
                    "0-9): " + ", ".join(f"{100 * v:.1f}" for v in per_class) + " %."]
        agree = [r["agreement"]["agreement"] for r in runs]
        diffs = [r["agreement"].get("max_abs_difference") for r in runs]
        line = f"Spiking against float64 torch: agreement {_mean_std(agree, 100)} %"
        if any(d is not None for d in diffs):
            line += f", largest output difference {max(d for d in diffs if d is not None):.3g}"
        synops = [r["synops"]["synops"] for r in runs]
        ratio = [r["synops"]["synops_per_dense_mac"] for r in runs]
        density = [r["density"]["density_mean"] for r in runs]
        train = [r["train_seconds"]["sharpened"] for r in runs]
        out += ["", line + f". SynOps per sample {_mean_std(synops, digits=0)} "
                f"({_mean_std(ratio, digits=3)} of the dense network's MACs); mean spike "
                f"density {_mean_std(density, 100, 1)} %; training {_mean_std(train, digits=0)} "
                "s per sharpened run.", ""]
        if data.get("figure"):
            out += [f"![{preset}](benchmarks/results/{data['figure']})", ""]
    return out + rl


def rl_section() -> list[str]:
    """The reinforcement-learning rows (``rl-cartpole*.json`` of :mod:`benchmarks.rl`)."""
    files = [(p, json.loads(p.read_text())) for p in sorted(RESULTS.glob("rl-cartpole*.json"))
             if "-quick" not in p.stem]
    out: list[str] = []
    for path, data in files:
        seeds = data["seeds"]
        if not seeds:
            continue
        cfg = data["config"]
        out += [f"### {path.stem}: DQN on {cfg['env_id']} (seeds "
                f"{', '.join(str(s['seed']) for s in seeds)})", "", _env(data["environment"]),
                "",
                f"Hidden layers {cfg['hidden']}, {cfg['total_steps']} environment steps, "
                f"step sharpener from step {cfg['sharpen_start']}, {cfg['layer_duration']} "
                f"steps per layer; {data['episodes']} greedy evaluation episodes per policy "
                f"with reset seeds {data['eval_seed']} and up (apart from the snapshot-selection "
                "episodes). Mean return per seed, then mean ± std over seeds:", "",
                "| policy | " + " | ".join(f"seed {s['seed']}" for s in seeds) + " | mean |",
                "|---|" + "---|" * (len(seeds) + 1)]
        for key, name in (("conventional", "conventional (never sharpened)"),
                          ("binary_torch", "fully binary (torch, float64)"),
                          ("spiking", "spiking (numpy runtime in the environment loop)")):
            values = [s["evaluation"][key]["mean_return"] for s in seeds
                      if s["evaluation"][key] is not None]
            out.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in values)
                       + f" | {_mean_std(values, digits=1)} |")
        agree = [s["evaluation"]["agreement"] for s in seeds]
        stats = [s["evaluation"]["spiking_stats"] for s in seeds]
        train = [s["train_seconds"]["whetstone"] for s in seeds]
        out += ["", f"Spiking against binary torch: "
                f"{sum(a['identical_episodes'] for a in agree)} of "
                f"{sum(a['episodes'] for a in agree)} episodes identical, same action on "
                f"{_mean_std([a['same_observations'] for a in agree], 100)} % of the spiking "
                f"policy's steps, largest Q-value difference "
                f"{max(a['max_abs_q_difference'] for a in agree):.3g}. SynOps per step "
                f"{_mean_std([st['synops'] for st in stats], digits=0)} "
                f"({_mean_std([st['synops_per_dense_mac'] for st in stats], digits=3)} of the "
                f"dense MACs), mean spike density "
                f"{_mean_std([st['density_mean'] for st in stats], 100, 1)} %; training "
                f"{_mean_std(train, digits=0)} s per sharpened policy.", ""]
        figure = path.with_suffix(".png")
        if figure.exists():
            out += [f"![{path.stem}](benchmarks/results/{figure.name})", ""]
    return out


def _env(env: dict[str, Any]) -> str:
    v = env["versions"]
    return (f"{env['date']}; device {env['device']} ({env['cpu']}, {env['cores']} cores, "
            f"{env['torch_threads']} torch threads); whetstone {v['whetstone']}, torch "
            f"{v['torch']}; `{env['command']}`")


if __name__ == "__main__":
    main()
