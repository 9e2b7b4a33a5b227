"""The field side by side, part 2: ANN-to-SNN rate conversion (SpikingJelly) against whetstone.

Per seed, with the preset's data, architecture, initial weights, optimizer, epochs, batch,
learning-rate schedule and augmentation:

1. whetstone's preset, sharpened to binary (the run of ``benchmarks.peers_direct`` is reused
   when it has the same configuration): its binary test accuracy and synaptic operations
   per inference from ``whetstone.metrics.synaptic_ops`` (one time step).
2. The same network as a conventional ANN (``build_model(config, plain=True)``: every
   activation ``nn.ReLU``, never sharpened), trained the same way: its accuracy, and the
   dense-ANN MAC count of the architecture as its cost.
3. That ANN without its decode converted by SpikingJelly's ``ann2snn.Converter`` with a
   ``RateCodingRecipe`` (threshold balancing on the training images: each calibration
   ``mode``; ReLU becomes integrate-and-fire with soft reset between voltage scalers), run
   for T = 1, 2, 4, ... time steps on the test set, the image presented as input current at
   every step. The class is the argmax of the key's decode of the output spike counts.

Synaptic operations (the convention, for every method): per inference, summed over the time
steps, every nonzero input of a Linear layer or of the decode costs one operation per
synapse leaving it (fan-out: the layer's outputs; the decode's: the class count). The first
layer receives real pixels (multiply-accumulates, ``mac``: ``T`` times the single-step
count, as simulated); every later layer receives spikes (accumulates, ``ac``).
``synops_first_layer_once`` is the alternative count in which the constant input current
of the first layer is computed once (``mac`` of one step plus ``ac``).

Headline per mode: the smallest T at which conversion comes within 0.5 points of whetstone's
binary accuracy, its synaptic operations, and the ratios of operations and time steps to
whetstone's (one step).

``--relu-run PATH`` converts a given ReLU run folder instead (``config.json``,
``model.safetensors``, ``summary.json`` as :func:`ann_run` writes them, e.g. the one
``benchmarks.sharpen`` sharpens): no whetstone run, no headline, no plot; the result
``peers-conversion-LABEL.json`` (``LABEL``: the folder's name without ``-relu-seedS``, e.g.
``sharpen-mnist-dense``) records the weights' :func:`weights_sha256` so a reader can check
that it converted the very network it compares with. Dense and convolutional networks
(SpikingJelly fuses BatchNorm into the layer before it; max pooling stays max pooling of
spikes); synaptic operations are counted for Linear layers and the decode only.

    python -m benchmarks.peers_conversion --seeds 0
    python -m benchmarks.peers_conversion --quick
    python -m benchmarks.peers_conversion --relu-run runs/bench/sharpen-mnist-dense-relu-seed0
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from whetstone.nn.decode import SoftmaxDecode
from whetstone.presets import TrainConfig, build_model
from whetstone.runs import load_run, load_split
from whetstone.runs.io import load_weights, save_weights, state_tensors, tensors_sha256

from .common import RESULTS, write_json
from .peers_direct import (
    PEERS,
    SynopCounter,
    peer_environment,
    recipe,
    train_model,
    whetstone_run,
    whetstone_synops,
)
from .report import _env_line, _pct

WITHIN = 0.005
"""Headline tolerance: conversion within this fraction (0.5 points) of whetstone's accuracy."""


def ann_run(config: TrainConfig, run_dir: Path, limits: dict[str, int | None],
            device: str = "cpu") -> tuple[nn.Sequential, dict[str, Any]]:
    """The preset's network as a plain ReLU ANN (``build_model(config, plain=True)``) trained
    by ``peers_direct.train_model``; kept in ``run_dir`` (config, safetensors weights, summary)
    and reused when the configuration and the data limits are the same, so every conversion
    peer converts the same ANN."""
    config_path, summary_path = run_dir / "config.json", run_dir / "summary.json"
    weights = run_dir / "model.safetensors"
    model = build_model(config, plain=True)
    if config_path.is_file() and summary_path.is_file() and weights.is_file():
        old = TrainConfig.load(config_path)
        summary = json.loads(summary_path.read_text())
        if old.to_dict() == config.to_dict() and summary.get("limits") == limits:
            load_weights(model, weights)
            print(f"ReLU ANN reused from {run_dir}", flush=True)
            return model.eval(), summary
    summary = train_model(config, model, limits, device)
    summary["limits"] = limits
    model.cpu().eval()
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(config_path)
    save_weights(model, weights)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return model, summary


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of ``model.state_dict()`` (every parameter and buffer, by name, dtype, shape
    and bytes: :func:`whetstone.runs.io.tensors_sha256`): equal for two models exactly when
    they hold the same weights."""
    return tensors_sha256(state_tensors(model))


def load_relu_run(run_dir: Path) -> tuple[TrainConfig, nn.Sequential, dict[str, Any]]:
    """The ReLU ANN kept in ``run_dir`` by :func:`ann_run`: its configuration, the model
    (``build_model(config, plain=True)`` with the saved weights, eval mode) and its summary
    with ``weights_sha256`` and ``run_dir`` added."""
    config = TrainConfig.load(run_dir / "config.json")
    model = build_model(config, plain=True)
    load_weights(model, run_dir / "model.safetensors")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(weights_sha256=weights_sha256(model), run_dir=str(run_dir))
    return config, model.eval(), summary


def relu_run_label(run_dir: Path) -> str:
    """``sharpen-mnist-dense`` for ``.../sharpen-mnist-dense-relu-seed0``."""
    name = run_dir.resolve().name
    head, sep, _ = name.rpartition("-relu-seed")
    return head if sep else name


def time_steps(max_steps: int) -> list[int]:
    """1, 2, 4, ... up to ``max_steps`` (``max_steps`` itself included)."""
    steps, t = [], 1
    while t < max_steps:
        steps.append(t)
        t *= 2
    return [*steps, max_steps]


def parse_mode(text: str) -> str | float:
    """A SpikingJelly calibration mode: ``"max"``, a percentile ``"99.9%"`` or a float."""
    if text.lower() == "max" or text.endswith("%"):
        return "Max" if text.lower() == "max" else text
    return float(text)


def convert(ann: nn.Sequential, calibration: list[Tensor], mode: str | float) -> nn.Module:
    """SpikingJelly rate conversion of ``ann`` without its decode (a copy; ``ann`` unchanged)."""
    from spikingjelly.activation_based import ann2snn

    body = copy.deepcopy(ann[:-1]).eval()
    converter = ann2snn.Converter(ann2snn.RateCodingRecipe(dataloader=calibration, mode=mode))
    return converter.convert(body).eval()


@torch.no_grad()
def simulate(snn: nn.Module, decode: SoftmaxDecode, x: Tensor, y: Tensor, steps: list[int],
             batch_size: int = 1000) -> list[dict[str, Any]]:
    """Run ``snn`` for ``max(steps)`` time steps per test batch (state reset per batch) and
    read accuracy and synaptic operations per inference at every T of ``steps`` (the first T
    steps of one simulation are the simulation of T steps)."""
    from spikingjelly.activation_based import functional

    net = nn.Sequential(snn, decode).eval()
    counter = SynopCounter(net)
    checkpoints = set(steps)
    correct = dict.fromkeys(steps, 0)
    ops_at = {t: [0] * len(counter.layers) for t in steps}
    try:
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            functional.reset_net(snn)
            base = list(counter.ops)
            logits = torch.zeros(len(xb), decode.num_classes)
            for t in range(1, max(steps) + 1):
                logits += net(xb)
                if t in checkpoints:
                    correct[t] += int((logits.argmax(dim=1) == yb).sum())
                    ops_at[t] = [a + c - b for a, c, b in zip(ops_at[t], counter.ops, base,
                                                              strict=True)]
    finally:
        counter.remove()
    n = len(x)
    out = []
    for t in steps:
        per = [ops / n for ops in ops_at[t]]
        out.append({"T": t, "accuracy": correct[t] / n, "mac": per[0], "ac": sum(per[1:]),
                    "synops": sum(per), "synops_first_layer_once": per[0] / t + sum(per[1:]),
                    "per_layer": per})
    return out


def headline(sweep: list[dict[str, Any]], ours: dict[str, Any]) -> dict[str, Any]:
    """Smallest T within :data:`WITHIN` of whetstone's binary accuracy, and ratios to ours."""
    target = ours["test_accuracy"] - WITHIN
    hit = next((row for row in sweep if row["accuracy"] >= target), None)
    if hit is None:
        return {"target_accuracy": target, "reached": False, "T": None,
                "max_T": sweep[-1]["T"], "best_accuracy": max(r["accuracy"] for r in sweep)}
    return {"target_accuracy": target, "reached": True, "T": hit["T"],
            "accuracy": hit["accuracy"], "synops": hit["synops"],
            "synops_ratio": hit["synops"] / ours["synops"]["synops"],
            "synops_first_layer_once_ratio":
                hit["synops_first_layer_once"] / ours["synops"]["synops"],
            "time_step_ratio": hit["T"] / 1}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="mnist-dense")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--modes", nargs="+", default=["max", "99.9%"],
                   help="SpikingJelly calibration modes: max, a percentile like 99.9%%, or a\n"
                        "float in (0, 1] scaling the maximum")
    p.add_argument("--max-steps", type=int, default=256, help="largest T (quick: 16)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true",
                   help="smoke check: 2 epochs on 2,000 training and 1,000 test images, T <= 16")
    p.add_argument("--runs-dir", type=Path, default=Path("runs/bench"))
    p.add_argument("--relu-run", type=Path, default=None,
                   help="convert this ReLU run folder (config.json, model.safetensors,\n"
                        "summary.json) instead of the preset's; --preset and --seeds ignored")
    p.add_argument("--calibration", type=int, default=None,
                   help="with --relu-run: the first N training images calibrate (default:\n"
                        "all the run was trained on; fewer for convolutional networks, whose\n"
                        "percentile over every activation of a batch is slow)")
    args = p.parse_args(argv)

    steps = time_steps(16 if args.quick else args.max_steps)
    if args.relu_run is not None:
        convert_relu_run(args.relu_run, args.modes, steps, args.quick, args.calibration)
        return
    config, label, limits = recipe(args.preset, args.quick)
    out = RESULTS / f"peers-conversion-{label}.json"
    result: dict[str, Any] = {
        "study": "peers-conversion",
        "label": label,
        "preset": config.name,
        "dataset": config.dataset,
        "config": config.to_dict(),
        "conversion": {"framework": "spikingjelly", "api": "ann2snn.Converter(RateCodingRecipe)",
                       "modes": args.modes, "time_steps": steps,
                       "input": "image as input current at every time step",
                       "readout": "argmax of the key's decode of the output spike counts"},
        "synops_convention": "per inference, summed over time steps: nonzero inputs of every "
                             "Linear and of the decode times their fan-out; first layer MACs "
                             "(real pixels, every step), the rest ACs (spikes)",
        "within": WITHIN,
        "environment": peer_environment(args.device),
        "quick": args.quick,
        "runs": [],
    }
    train = load_split(config.dataset, "train", limit=limits["train_limit"])
    test = load_split(config.dataset, "test", limit=limits["test_limit"])
    calibration = [train.x[i:i + 1000] for i in range(0, len(train.x), 1000)]
    for seed in args.seeds:
        cfg = config.merged({"seed": seed})
        run_dir = args.runs_dir / f"peers-{label}-whetstone-seed{seed}"
        summary = whetstone_run(cfg, run_dir, limits, args.device)
        ops = whetstone_synops(load_run(run_dir).model, test.x)
        ours = {"test_accuracy": summary["test_accuracy_binary"], "synops": ops,
                "time_steps": 1, "final_sharpness": summary["final_sharpness"],
                "run_dir": str(run_dir)}
        print(f"{label} whetstone seed {seed}: binary {ours['test_accuracy']:.4f}, "
              f"{ops['synops']:.0f} synops ({ops['mac']:.0f} MAC + {ops['ac']:.0f} AC); "
              f"dense ANN {ops['dense_mac']} MACs", flush=True)

        ann, ann_res = ann_run(cfg, args.runs_dir / f"peers-{label}-relu-seed{seed}", limits,
                               args.device)
        ann_res = {**ann_res, "dense_mac": ops["dense_mac"]}
        print(f"{label} ReLU ANN seed {seed}: {ann_res['test_accuracy']:.4f}", flush=True)
        entry: dict[str, Any] = {"seed": seed, "whetstone": ours, "ann": ann_res,
                                 "conversion": {}}
        result["runs"].append(entry)
        write_json(out, result)
        decode = ann[-1]
        assert isinstance(decode, SoftmaxDecode)
        for mode in args.modes:
            t0 = time.perf_counter()
            snn = convert(ann, calibration, parse_mode(mode))
            sweep = simulate(snn, decode, test.x, test.y, steps)
            entry["conversion"][mode] = {"sweep": sweep, "headline": headline(sweep, ours),
                                         "seconds": time.perf_counter() - t0}
            write_json(out, result)
            for row in sweep:
                print(f"  {mode} T={row['T']:>3}: {row['accuracy']:.4f}, "
                      f"{row['synops']:.0f} synops", flush=True)
            h = entry["conversion"][mode]["headline"]
            print(f"  {mode}: " + (f"within {100 * WITHIN} points at T={h['T']}, "
                                   f"{h['synops_ratio']:.1f}x our synops" if h["reached"]
                                   else f"not within {100 * WITHIN} points by T={h['max_T']}"),
                  flush=True)
    png = RESULTS / f"peers-{label}.png"
    plot(result, _direct(label), png)
    print(f"wrote {out} and {png}")


def convert_relu_run(run_dir: Path, modes: list[str], steps: list[int], quick: bool,
                     calibration_samples: int | None = None) -> Path:
    """Convert the ReLU ANN of ``run_dir`` in every calibration mode and sweep ``steps`` on
    the test set (quick: its first 1,000 images); calibration on the training images the run
    was trained on (its recorded limits; the first ``calibration_samples`` when given).
    Writes ``peers-conversion-LABEL[-quick].json`` with
    the ANN's ``weights_sha256``; returns its path."""
    config, ann, summary = load_relu_run(run_dir)
    label = relu_run_label(run_dir) + ("-quick" if quick else "")
    limits = summary.get("limits") or {}
    train = load_split(config.dataset, "train", limit=limits.get("train_limit"))
    test = load_split(config.dataset, "test", limit=1000 if quick else limits.get("test_limit"))
    calib_x = train.x if calibration_samples is None else train.x[:calibration_samples]
    calibration = [calib_x[i:i + 1000] for i in range(0, len(calib_x), 1000)]
    decode = ann[-1]
    if not isinstance(decode, SoftmaxDecode):
        raise ValueError(f"{run_dir}: the ReLU ANN must end with a SoftmaxDecode")
    with torch.no_grad():
        ann_classes = torch.cat([ann(test.x[i:i + 1000]).argmax(1)
                                 for i in range(0, len(test.x), 1000)])
    summary["test_accuracy_here"] = float((ann_classes == test.y).double().mean())
    summary["test_samples_here"] = len(test.x)
    out = RESULTS / f"peers-conversion-{label}.json"
    entry: dict[str, Any] = {"seed": config.seed, "ann": summary, "conversion": {}}
    result: dict[str, Any] = {
        "study": "peers-conversion", "label": label, "preset": config.name,
        "dataset": config.dataset, "config": config.to_dict(),
        "relu_run": {"path": str(run_dir), "weights_sha256": summary["weights_sha256"]},
        "conversion": {"framework": "spikingjelly", "api": "ann2snn.Converter(RateCodingRecipe)",
                       "modes": modes, "time_steps": steps,
                       "calibration_samples": len(calib_x),
                       "input": "image as input current at every time step",
                       "readout": "argmax of the key's decode of the output spike counts"},
        "synops_convention": "per inference, summed over time steps: nonzero inputs of every "
                             "Linear and of the decode times their fan-out (convolutions not "
                             "counted); first counted layer MACs, the rest ACs",
        "environment": peer_environment("cpu"), "quick": quick, "runs": [entry]}
    print(f"{label}: ReLU ANN of {run_dir} (sha256 {summary['weights_sha256'][:12]}), test "
          f"accuracy {summary['test_accuracy_here']:.4f}", flush=True)
    write_json(out, result)
    for mode in modes:
        t0 = time.perf_counter()
        snn = convert(ann, calibration, parse_mode(mode))
        sweep = simulate(snn, decode, test.x, test.y, steps)
        entry["conversion"][mode] = {"sweep": sweep, "seconds": time.perf_counter() - t0}
        write_json(out, result)
        for row in sweep:
            print(f"  {mode} T={row['T']:>3}: {row['accuracy']:.4f}", flush=True)
    print(f"wrote {out}", flush=True)
    return out


def _direct(label: str) -> dict[str, Any] | None:
    path = RESULTS / f"peers-direct-{label}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _mean(values: list[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def plot(conv: dict[str, Any], direct: dict[str, Any] | None, path: Path) -> None:
    """Accuracy against synaptic operations per inference (log x), means over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = conv["runs"]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for mode in conv["conversion"]["modes"]:
        sweeps = [r["conversion"][mode]["sweep"] for r in runs if mode in r["conversion"]]
        if not sweeps:
            continue
        steps = [row["T"] for row in sweeps[0]]
        xs = [_mean([s[i]["synops"] for s in sweeps]) for i in range(len(steps))]
        ys = [100 * _mean([s[i]["accuracy"] for s in sweeps]) for i in range(len(steps))]
        (line,) = ax.plot(xs, ys, "o-", ms=4, label=f"SpikingJelly rate conversion ({mode})")
        for t, x, y in zip(steps, xs, ys, strict=True):
            ax.annotate(f"T={t}", (x, y), textcoords="offset points", xytext=(3, -10),
                        fontsize=7, color=line.get_color())
    reference_points(ax, runs, direct)
    finish_plot(fig, ax, f"{conv['label']}: accuracy against cost "
                f"(seeds {sorted(r['seed'] for r in runs)})", path, loc="lower right")


def reference_points(ax: Any, runs: list[dict[str, Any]], direct: dict[str, Any] | None) -> None:
    """Mark whetstone's single step, snnTorch's direct training (when ``direct`` has it) and
    the ReLU ANN (its dense MACs) on an accuracy-against-synops axis; means over ``runs``."""
    ours = [r["whetstone"] for r in runs]
    ax.plot(_mean([o["synops"]["synops"] for o in ours]),
            100 * _mean([o["test_accuracy"] for o in ours]), "*", ms=14, color="black",
            label="whetstone, binary, 1 step")
    if direct is not None:
        snn = [r for r in direct["runs"] if r["method"] == "snntorch"]
        if snn:
            ax.plot(_mean([r["synops"]["synops"] for r in snn]),
                    100 * _mean([r["test_accuracy"] for r in snn]), "D", ms=8,
                    color="tab:red", label="snnTorch direct training, 1 step")
    anns = [r["ann"] for r in runs]
    ax.plot(_mean([a["dense_mac"] for a in anns]), 100 * _mean([a["test_accuracy"] for a in anns]),
            "s", ms=8, color="tab:gray", label="conventional ReLU ANN (dense MACs)")


def finish_plot(fig: Any, ax: Any, title: str, path: Path, **legend: Any) -> None:
    """Log synops axis, labels, grid, legend (``legend``: its placement), save to ``path``."""
    import matplotlib.pyplot as plt

    ax.set_xscale("log")
    ax.set_xlabel("synaptic operations per inference (log)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, **legend)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def section() -> list[str]:
    """BENCHMARKS.md lines from the non-quick ``peers-conversion-*.json`` ([] when none)."""
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("peers-conversion-*.json"))]
    results = [r for r in results if not r.get("quick") and r["runs"] and "relu_run" not in r]
    if not results:
        return []
    lines = ["## The field side by side: ANN-to-SNN rate conversion (SpikingJelly)", ""]
    for res in results:
        runs = res["runs"]
        seeds = sorted(r["seed"] for r in runs)
        ours = [r["whetstone"] for r in runs]
        ours_ops = _mean([o["synops"]["synops"] for o in ours])
        anns = [r["ann"] for r in runs]
        lines += [f"### {res['label']}", "",
                  "The preset's network trained as a conventional ReLU ANN (same data, "
                  "initial weights, optimizer, epochs, schedule), converted by "
                  f"`{res['conversion']['api']}` ({res['conversion']['input']}; "
                  f"{res['conversion']['readout']}), on the full test set. Synaptic operations: "
                  f"{res['synops_convention']}. Means over seeds {seeds}.", "",
                  "| method | time steps | test accuracy (%) | synaptic ops / inference |",
                  "|---|---|---|---|",
                  f"| conventional ReLU ANN | - | {_pct([a['test_accuracy'] for a in anns])} | "
                  f"{_mean([a['dense_mac'] for a in anns]):,.0f} dense MACs |",
                  f"| **whetstone, binary** | 1 | {_pct([o['test_accuracy'] for o in ours])} | "
                  f"{ours_ops:,.0f} |"]
        heads = []
        for mode in res["conversion"]["modes"]:
            sweeps = [r["conversion"][mode]["sweep"] for r in runs if mode in r["conversion"]]
            for i, row in enumerate(sweeps[0]):
                lines.append(f"| conversion ({mode}) | {row['T']} | "
                             f"{_pct([s[i]['accuracy'] for s in sweeps])} | "
                             f"{_mean([s[i]['synops'] for s in sweeps]):,.0f} |")
            for r in runs:
                h = r["conversion"][mode]["headline"]
                if h["reached"]:
                    heads.append(
                        f"- seed {r['seed']}, {mode}: within {100 * res['within']:.1f} points "
                        f"of (or above) whetstone "
                        f"({100 * r['whetstone']['test_accuracy']:.2f} %) first at "
                        f"**T = {h['T']}** ({100 * h['accuracy']:.2f} %), {h['synops']:,.0f} "
                        f"synaptic ops: **{h['synops_ratio']:.1f}x** whetstone's operations "
                        f"({h['synops_first_layer_once_ratio']:.1f}x with the first layer "
                        f"computed once) and {h['time_step_ratio']:.0f}x its time steps.")
                else:
                    heads.append(
                        f"- seed {r['seed']}, {mode}: not within {100 * res['within']:.1f} "
                        f"points of whetstone by T = {h['max_T']} (best "
                        f"{100 * h['best_accuracy']:.2f} %).")
        versions = res["environment"]["versions"]
        peers = ", ".join(f"{k} {versions.get(k) or 'not installed'}" for k in PEERS)
        lines += ["", *heads, "", f"![accuracy against cost](benchmarks/results/peers-"
                  f"{res['label']}.png)", "", f"- {peers}; {_env_line(res['environment'])}", ""]
    return lines


if __name__ == "__main__":
    main()
