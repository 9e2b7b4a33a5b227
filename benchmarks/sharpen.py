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
output population, so no head is replaced. Beside them, the rate-coded conversion of the same
kind of ReLU network by SpikingJelly and Sinabs (``benchmarks.peers_conversion``,
``benchmarks.peers_sinabs``) is quoted from their result files (their seed-0 rows): the
smallest number of time steps at which they reach within 0.5 points of our fine-tuned
single-step accuracy.

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
from .peers_conversion import WITHIN, ann_run
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


def peers(label: str, ours: float) -> dict[str, Any]:
    """The seed-0 sweeps of the rate-conversion peers on this preset's ReLU network, and the
    smallest T within :data:`WITHIN` of ``ours`` (our fine-tuned single-step accuracy)."""
    out: dict[str, Any] = {}
    for study in ("peers-conversion", "peers-sinabs"):
        path = RESULTS / f"{study}-{label}.json"
        if not path.exists():
            continue
        res = json.loads(path.read_text())
        run = next((r for r in res["runs"] if r["seed"] == 0), None)
        if run is None:
            continue
        modes = {}
        for mode, conv in run["conversion"].items():
            sweep = [(row["T"], row["accuracy"]) for row in conv["sweep"]]
            hit = next((t for t, a in sweep if a >= ours - WITHIN), None)
            best = max(sweep, key=lambda ta: ta[1])
            modes[mode] = {"T_within": hit, "best_T": best[0], "best_accuracy": best[1],
                           "sweep": sweep}
        out[study] = {"framework": res["conversion"]["framework"],
                      "api": res["conversion"]["api"], "file": path.name,
                      "date": res["environment"]["date"],
                      "ann_test_accuracy": run["ann"]["test_accuracy"],
                      "ann_train_samples": run["ann"].get("train_samples"), "modes": modes}
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

    relu, summary = ann_run(config, args.runs_dir / f"sharpen-{label}-relu-seed{seed}",
                            limits)
    relu_classes = _classes(relu, test.x)
    entry["relu"] = {**summary, "test_accuracy": float((relu_classes == test.y).float().mean())}
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
    entry["peers"] = peers(net.label, f["test_accuracy_binary"])
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
             "Rate conversion of the preset's ReLU network by the peers, quoted from their "
             "result files (seed 0): the fewest time steps within 0.5 points of our "
             "fine-tuned single-step accuracy.", ""]
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
            for peer in run.get("peers", {}).values():
                for mode, m in peer["modes"].items():
                    t = m["T_within"]
                    lines.append(f"| {peer['framework']} rate conversion ({mode}; their ReLU "
                                 f"ANN {_pct(peer['ann_test_accuracy'])} %) | "
                                 f"{t if t is not None else '> ' + str(m['sweep'][-1][0])} | "
                                 f"{_pct(dict(m['sweep'])[t]) if t is not None else 'never'}"
                                 f" (best {_pct(m['best_accuracy'])} at T = {m['best_T']}) |")
            plan = (f"- fine-tuning: Adam lr {f['lr']:g}, cosine, {f['epochs']} epochs, layers "
                    f"sharpened bottom-up {f['sharpen_window_per_layer']:.3g} epochs each; "
                    f"calibration on {s['calibration_samples']:,} training images, percentile "
                    f"{s['percentile']:g}")
            if f.get("selection"):
                plan += f"; plan chosen on val: {f['selection']}"
            lines += ["", plan, f"- {_env_line(res['environment'])}", ""]
    return lines


if __name__ == "__main__":
    main()
