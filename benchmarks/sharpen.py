"""``whetstone.sharpen`` on trained ReLU networks (issue 14, acceptance 2).

Per network (the preset's architecture with every activation ``nn.ReLU``:
``build_model(config, plain=True)``, trained as a conventional ANN by
``peers_conversion.ann_run``, i.e. ``peers_direct.train_model``, never sharpened):

1. the ReLU network's test accuracy;
2. ``ws.sharpen(relu, x, calibration=...)``: activations swapped for bounded ReLUs, weights
   rescaled so each layer's 99.9th percentile ``lambda_l`` of its input maps to 1
   (``W_l <- W_l lambda_(l-1) / lambda_l``, ``b_l <- b_l / lambda_l``; BatchNorm: its affine),
   calibrated on the first training images; its test accuracy at sharpness 0 (and the
   fraction of test samples whose class equals the ReLU network's), and simply thresholded
   (every layer at sharpness 1, no training);
3. fine-tuned with a sharpener: the sharpened network (straight-through gradient at
   sharpness 1) trained with a bottom-up ``ScheduledSharpener`` over the first
   ``sharpen_epochs`` epochs, then binary; the weights of the fully sharp epoch with the best
   **validation** binary accuracy are kept (the number of epochs is chosen on ``val``), and
   scored once on the test set, as the fully binary torch model and as the converted numpy
   spiking network (``to_spiking``; the two must agree sample for sample).

Both networks end ``Linear(W) -> ReLU -> SoftmaxDecode(key)``: the final ReLU becomes the
output population, so no head is replaced. Beside them, the report shows the rate-coded
conversion of **the very same ReLU network** (same weights: the SHA-256 of its state dict,
``peers_conversion.weights_sha256``, recorded here as ``relu.weights_sha256`` and by the
peers, must be equal) by SpikingJelly and Sinabs, which convert the run folder this study
trains or reuses::

    python -m benchmarks.peers_conversion --relu-run runs/bench/sharpen-mnist-dense-relu-seed0
    python -m benchmarks.peers_sinabs --relu-run runs/bench/sharpen-mnist-dense-relu-seed0 \\
        --modes max 99.9%
    python -m benchmarks.peers_conversion \\
        --relu-run runs/bench/sharpen-mnist-small-cnn-relu-seed0 \\
        --calibration 5000 --max-steps 64 --modes 99.9%

(results ``peers-conversion-sharpen-LABEL.json``, ``peers-sinabs-sharpen-LABEL.json``;
Sinabs's worker rebuilds dense networks only, so the CNN has no Sinabs row; SpikingJelly
calibrates the CNN on 5,000 training images, as ``ws.sharpen`` does, because its percentile
over every convolutional activation of 55,000 images is slow, and sweeps T <= 64 on one core).
Per peer and
calibration mode: the accuracy at every T, its best T (the smallest T within 0.5 points of
its best accuracy over the sweep) and the smallest T within 0.5 points of our fine-tuned
single-step accuracy. A peer whose file is absent, failed, or converted other weights is
reported as missing; nothing is quoted from other training runs.

    python -m benchmarks.sharpen                 # both networks, about 15 minutes on 1 core
    python -m benchmarks.sharpen --networks mnist-dense
    python -m benchmarks.sharpen --quick         # smoke check on 2,000 / 1,000 images
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import whetstone as ws
from whetstone.data import ArrayLoader
from whetstone.presets import TrainConfig
from whetstone.runs import load_split, seed_everything

from .accuracy import recipe_config
from .common import RESULTS, environment, write_json
from .peers_conversion import WITHIN, ann_run, weights_sha256
from .report import _env_line

FULL = {"train_limit": None, "test_limit": None}
QUICK = {"train_limit": 2000, "test_limit": 1000}


@dataclass(frozen=True)
class Network:
    """One studied network: its configuration (architecture, data, ReLU training recipe) and
    the fine-tuning plan (epochs, of which the first ``sharpen_epochs`` sharpen bottom-up)."""

    label: str
    preset: str | None
    recipe: str | None
    overrides: dict[str, Any]
    finetune_epochs: int
    sharpen_epochs: float
    lr: float = 1e-3
    selection: str = ""
    """How the fine-tuning plan was chosen (on the validation split)."""

    def config(self, seed: int) -> TrainConfig:
        config, _ = recipe_config(self.preset, self.recipe)
        return config.merged({**self.overrides, "seed": seed})


NETWORKS = {
    # the very ReLU network benchmarks.peers_conversion / peers_sinabs convert (same recipe)
    "mnist-dense": Network(
        "mnist-dense", "mnist-dense", None, {}, finetune_epochs=16, sharpen_epochs=6,
        selection="best validation binary accuracy of (lr, epochs, sharpening epochs) = "
                  "(1e-3, 8, 3): 96.86 %, (3e-4, 8, 3): 96.06 %, (1e-3, 16, 6): 97.44 %"),
    # the small VGG of the optimizers study (Conv3x3 16,16,pool,32,32,pool, Dense 64, 40 out,
    # BatchNorm before every activation), trained 2 epochs as a ReLU network
    "mnist-small-cnn": Network("mnist-small-cnn", None, "mnist-small-cnn",
                               {"epochs": 2, "finetune_epochs": 0}, finetune_epochs=3,
                               sharpen_epochs=2,
                               selection="one plan (the CPU budget); epoch chosen on val"),
}


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return ws.training.evaluate(model, ArrayLoader(x, y, 1000))


@torch.no_grad()
def _classes(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])


def finetune(sharp: nn.Module, net: Network, config: TrainConfig, train: Any, val: Any,
             quick: bool) -> dict[str, Any]:
    """Train ``sharp`` (in place) with a bottom-up scheduled sharpener, then keep the weights
    of the fully sharp epoch with the best validation binary accuracy."""
    layers = len(ws.sharpening.sharpenable_layers(sharp))
    epochs = 2 if quick else net.finetune_epochs
    window = (1.0 if quick else net.sharpen_epochs) / layers
    sharpener = ws.sharpening.ScheduledSharpener(start=0, duration=window, intermission=0,
                                                 mode="batch")
    optimizer = torch.optim.Adam(sharp.parameters(), lr=net.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    best: dict[str, Any] = {"val_accuracy_binary": -1.0}

    def keep(record: Any) -> None:
        sharp_now = all(s >= 1.0 for s in record.sharpness)
        if sharp_now and record.val_accuracy_binary > best["val_accuracy_binary"]:
            best.update(epoch=record.epoch, val_accuracy_binary=record.val_accuracy_binary,
                        state=copy.deepcopy(sharp.state_dict()))

    seed_everything(config.seed)
    history = ws.training.fit(
        sharp, ArrayLoader(train.x, train.y, config.batch_size, shuffle=True, seed=config.seed),
        epochs, optimizer, sharpener=sharpener, val_loader=ArrayLoader(val.x, val.y, 1000),
        progress=False, scheduler=scheduler, on_epoch=keep)
    if "state" not in best:
        raise RuntimeError(f"{net.label}: the network never became fully sharp")
    sharp.load_state_dict(best.pop("state"))
    return {"epochs": epochs, "sharpen_window_per_layer": window, "optimizer": "adam",
            "selection": net.selection,
            "lr": net.lr, "lr_schedule": "cosine", "surrogate": "straight-through",
            "chosen_epoch": best["epoch"], "val_accuracy_binary": best["val_accuracy_binary"],
            "train_seconds": sum(r.epoch_time for r in history),
            "history": [{"epoch": r.epoch, "val_accuracy": r.val_accuracy,
                         "val_accuracy_binary": r.val_accuracy_binary,
                         "sharpness": r.sharpness} for r in history]}


PEERS = (("peers-conversion", "SpikingJelly", "benchmarks.peers_conversion", "", True),
         ("peers-sinabs", "Sinabs", "benchmarks.peers_sinabs", " --modes max 99.9%", False))
"""(result prefix, framework, module, extra options, converts convolutional networks) of the
rate-conversion peers."""


def _smallest_t(sweep: list[tuple[int, float]], target: float) -> int | None:
    return next((t for t, a in sweep if a >= target), None)


def peers(label: str, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The peers' conversions of this run's ReLU network (``sharpen-LABEL``), read now.

    Each: ``framework``, ``file`` and either ``missing`` (why: no file, a failed worker,
    other weights) or ``modes``: per calibration mode the ``sweep`` ``[(T, accuracy)]``, the
    best accuracy, ``best_T`` (smallest T within :data:`WITHIN` of that best) and
    ``T_within_ours`` (smallest T within :data:`WITHIN` of our fine-tuned binary accuracy).
    """
    ours = run["finetuned"]["test_accuracy_binary"]
    sha = run["relu"].get("weights_sha256")
    run_dir = run["relu"].get("run_dir", f"runs/bench/sharpen-{label}-relu-seed{run['seed']}")
    out = []
    convolutional = "cnn" in str(run.get("config", {}).get("model", {}).get("arch", ""))
    for prefix, framework, module, extra, conv_ok in PEERS:
        path = RESULTS / f"{prefix}-sharpen-{label}.json"
        if convolutional and conv_ok:  # the percentile of every conv activation is slow
            extra += " --calibration 5000 --max-steps 64 --modes 99.9%"
        peer: dict[str, Any] = {"framework": framework, "file": path.name,
                                "command": f"python -m {module} --relu-run {run_dir}{extra}"}
        out.append(peer)
        if not path.exists():
            peer["missing"] = f"`{path.name}` absent" + (
                f" ({module} converts dense networks only)" if convolutional and not conv_ok
                else "")
            continue
        res = json.loads(path.read_text())
        theirs = res.get("relu_run", {}).get("weights_sha256")
        if sha is None or theirs != sha:
            peer["missing"] = (f"`{path.name}` converted weights with sha256 "
                               f"{(theirs or 'none')[:12]}, this study's ReLU network has "
                               f"{(sha or 'none recorded')[:12]}")
            continue
        entry = res["runs"][0]
        if "worker_error" in entry or not entry.get("conversion"):
            peer["missing"] = f"`{path.name}`: the conversion failed or holds no sweep"
            continue
        peer["sha256"] = theirs
        env = res.get("environment", {})
        versions = env.get("sinabs_venv_versions") or env.get("versions") or {}
        peer["version"] = versions.get(framework.lower())
        peer["calibration_samples"] = (res["conversion"].get("calibration_samples")
                                       or entry.get("worker", {}).get("calibration_samples"))
        peer["modes"] = {}
        for mode, conv in entry["conversion"].items():
            sweep = [(row["T"], row["accuracy"]) for row in conv["sweep"]]
            best = max(a for _, a in sweep)
            peer["modes"][mode] = {"sweep": sweep, "best_accuracy": best,
                                   "best_T": _smallest_t(sweep, best - WITHIN),
                                   "T_within_ours": _smallest_t(sweep, ours - WITHIN)}
    return out


def study(net: Network, seed: int, args: argparse.Namespace, result: dict[str, Any],
          out: Path) -> None:
    limits = QUICK if args.quick else FULL
    config = net.config(seed)
    if args.quick:
        config = config.merged({"epochs": 1, "finetune_epochs": 0})
    label = net.label + ("-quick" if args.quick else "")
    train = load_split(config.dataset, "train", limit=limits["train_limit"])
    val = load_split(config.dataset, "val", limit=limits["test_limit"])
    test = load_split(config.dataset, "test", limit=limits["test_limit"])
    entry: dict[str, Any] = {"network": net.label, "seed": seed, "config": config.to_dict()}
    result["runs"].append(entry)

    relu_dir = args.runs_dir / f"sharpen-{label}-relu-seed{seed}"
    relu, summary = ann_run(config, relu_dir, limits)
    relu_classes = _classes(relu, test.x)
    entry["relu"] = {**summary, "test_accuracy": float((relu_classes == test.y).float().mean()),
                     "run_dir": str(relu_dir), "weights_sha256": weights_sha256(relu)}
    print(f"{label} seed {seed}: ReLU {entry['relu']['test_accuracy']:.4f}", flush=True)
    write_json(out, result)

    calibration = ArrayLoader(train.x[:args.calibration], train.y[:args.calibration], 500)
    example = test.x[:8]
    t0 = time.perf_counter()
    sharp = ws.sharpen(relu, example, calibration=calibration, percentile=args.percentile)
    calibrate_seconds = time.perf_counter() - t0
    sharp_classes = _classes(sharp, test.x)
    thresholded = copy.deepcopy(sharp)
    ws.sharpening.set_model_sharpness(thresholded, 1.0)
    entry["sharpened"] = {
        "percentile": args.percentile, "calibration_samples": min(args.calibration, len(train.x)),
        "calibration_seconds": calibrate_seconds,
        "layers": len(ws.sharpening.sharpenable_layers(sharp)),
        "test_accuracy_sharpness_0": float((sharp_classes == test.y).float().mean()),
        "agreement_with_relu_sharpness_0": float((sharp_classes == relu_classes).float().mean()),
        "test_accuracy_thresholded": _accuracy(thresholded, test.x, test.y),
    }
    s = entry["sharpened"]
    print(f"  sharpened: s=0 {s['test_accuracy_sharpness_0']:.4f} (agrees "
          f"{s['agreement_with_relu_sharpness_0']:.4f}), thresholded "
          f"{s['test_accuracy_thresholded']:.4f}", flush=True)
    write_json(out, result)

    tuned = ws.sharpen(relu, example, calibration=calibration, percentile=args.percentile,
                       surrogate=ws.nn.StraightThrough())
    entry["finetuned"] = finetune(tuned, net, config, train, val, args.quick)
    tuned.eval()
    spiking = ws.conversion.to_spiking(tuned, example)
    spike_classes = ws.runtime.predict(spiking, test.x.numpy())
    torch_classes = _classes(tuned, test.x).numpy()
    f = entry["finetuned"]
    f.update(test_accuracy_binary=float(np.mean(torch_classes == test.y.numpy())),
             test_accuracy_spiking=float(np.mean(spike_classes == test.y.numpy())),
             spiking_equals_torch=bool(np.array_equal(spike_classes, torch_classes)),
             fully_sharp=ws.sharpening.is_fully_sharp(tuned))
    print(f"  fine-tuned ({f['chosen_epoch'] + 1} of {f['epochs']} epochs chosen on val): "
          f"binary {f['test_accuracy_binary']:.4f}, spiking {f['test_accuracy_spiking']:.4f} "
          f"(equal: {f['spiking_equals_torch']})", flush=True)
    write_json(out, result)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--percentile", type=float, default=99.9)
    p.add_argument("--calibration", type=int, default=5000,
                   help="first training images used for calibration")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--runs-dir", type=Path, default=Path("runs/bench"))
    args = p.parse_args(argv)
    for name in args.networks:
        net = NETWORKS[name]
        out = RESULTS / f"sharpen-{name}{'-quick' if args.quick else ''}.json"
        result: dict[str, Any] = {"study": "sharpen", "label": name, "quick": args.quick,
                                  "environment": environment(), "runs": [],
                                  "what": "ReLU network -> ws.sharpen (calibrated) -> "
                                          "thresholded / fine-tuned with a sharpener"}
        for seed in args.seeds:
            study(net, seed, args, result, out)
        print(f"wrote {out}", flush=True)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def section() -> list[str]:
    """BENCHMARKS.md lines from the non-quick ``sharpen-*.json`` ([] when none)."""
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("sharpen-*.json"))
               if "-quick" not in p.stem]
    results = [r for r in results if r["runs"] and "finetuned" in r["runs"][-1]]
    if not results:
        return []
    lines = ["## From a trained ReLU network: `ws.sharpen` (issue 14)", "",
             "A plain ReLU network (the preset's architecture with `nn.ReLU`, trained as a "
             "conventional ANN), then `ws.sharpen(relu, x, calibration=...)`: activations "
             "swapped for bounded ReLUs and weights rescaled so each layer's 99.9th percentile "
             "of its input maps to 1 (`W_l lambda_(l-1) / lambda_l`, `b_l / lambda_l`); "
             "accuracy at sharpness 0, simply thresholded (sharpness 1, no training), and "
             "fine-tuned with a bottom-up scheduled sharpener (straight-through gradient; the "
             "fully binary epoch with the best validation accuracy kept), on the full test set. "
             "Beside them, rate conversion of the very same ReLU network (same weights, "
             "checked by the SHA-256 of its state dict) by SpikingJelly and Sinabs over their "
             "time-step sweeps: their best T (the fewest time steps within 0.5 points of "
             "their best accuracy), the fewest within 0.5 points of our fine-tuned "
             "single-step accuracy, and the accuracy at every T.", ""]
    for res in results:
        for run in res["runs"]:
            if "finetuned" not in run:
                continue
            s, f = run["sharpened"], run["finetuned"]
            lines += [f"### {res['label']} (seed {run['seed']})", "",
                      "| network | time steps | test accuracy (%) |", "|---|---|---|",
                      f"| ReLU ANN | - | {_pct(run['relu']['test_accuracy'])} |",
                      f"| `ws.sharpen`, sharpness 0 (agrees with the ReLU ANN on "
                      f"{_pct(s['agreement_with_relu_sharpness_0'])} % of samples) | - | "
                      f"{_pct(s['test_accuracy_sharpness_0'])} |",
                      f"| `ws.sharpen`, thresholded, no training | 1 | "
                      f"{_pct(s['test_accuracy_thresholded'])} |",
                      f"| **`ws.sharpen` + fine-tuning ({f['chosen_epoch'] + 1} of "
                      f"{f['epochs']} epochs, chosen on val), fully binary** | 1 | "
                      f"**{_pct(f['test_accuracy_binary'])}** (spiking network "
                      f"{_pct(f['test_accuracy_spiking'])}, equal: "
                      f"{f['spiking_equals_torch']}) |"]
            notes = []
            for peer in peers(res["label"], run):
                if "missing" in peer:
                    lines.append(f"| {peer['framework']} rate conversion of this ReLU network | "
                                 f"missing | missing: {peer['missing']} (`{peer['command']}`) |")
                    continue
                for mode, m in peer["modes"].items():
                    sweep = dict(m["sweep"])
                    t = m["T_within_ours"]
                    lines.append(
                        f"| {peer['framework']} rate conversion ({mode}), its best T (smallest "
                        f"within {100 * WITHIN:.1f} points of its best) | {m['best_T']} | "
                        f"{_pct(sweep[m['best_T']])} (best {_pct(m['best_accuracy'])}; within "
                        f"{100 * WITHIN:.1f} points of the fine-tuned binary network "
                        + (f"at T = {t}" if t is not None else f"never by T = {m['sweep'][-1][0]}")
                        + ") |")
                    notes.append(f"- {peer['framework']} ({mode}), accuracy (%) at T = "
                                 + ", ".join(f"{tt}: {_pct(a)}" for tt, a in m["sweep"]))
                notes.append(f"- {peer['framework']} {peer['version'] or ''}: `{peer['file']}`, "
                             f"converted the same "
                             f"weights (sha256 {peer['sha256'][:16]}...), calibrated on "
                             f"{peer['calibration_samples']:,} training images")
            lines += ["", *notes]
            plan = (f"- fine-tuning: Adam lr {f['lr']:g}, cosine, {f['epochs']} epochs, layers "
                    f"sharpened bottom-up {f['sharpen_window_per_layer']:.3g} epochs each; "
                    f"calibration on {s['calibration_samples']:,} training images, percentile "
                    f"{s['percentile']:g}")
            if f.get("selection"):
                plan += f"; plan chosen on val: {f['selection']}"
            lines += [plan, f"- {_env_line(res['environment'])}", ""]
    return lines


if __name__ == "__main__":
    main()
