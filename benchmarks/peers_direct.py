"""The field side by side, part 1: direct single-step training with snnTorch's surrogate gradient.

The preset's network (mnist-dense: Flatten, Linear 784-256, act, Linear 256-64, act,
Linear 64-100, act, SoftmaxDecode of the 10x100 key), or a TOML recipe's (``--recipe``,
BatchNorm included), is trained twice per seed with the same data, initial weights,
optimizer, batch size, epochs, learning-rate schedule, augmentation and, where the recipe
distils from its conventional twin, the same teacher:

- **whetstone**: the preset itself (``train_run``), sharpened to binary; its binary accuracy.
- **snnTorch**: every activation an ``snntorch.Leaky(beta=0, threshold)`` neuron run for one
  time step from a zero membrane (so it fires ``1[x > threshold]``), trained directly with
  snnTorch's default surrogate gradient, no sharpening. Its output spikes are decoded by the
  same key. With the default threshold 0.5 its forward is the same function as whetstone's
  binary network; only the training differs.

Both train on the ``train`` split, validate on ``val`` and are scored once on the full test
set, with their synaptic operations per inference counted
the same way (every nonzero input of a Linear / decode times its fan-out; the first layer's
inputs are real pixels, multiply-accumulates; the rest are spikes, accumulates).

**Training cost**: seconds per epoch of whetstone with sharpening active (as in
``benchmarks.speed``: per-batch schedule mid-way, straight-through gradient), the plain
PyTorch ReLU network and the snnTorch network, interleaved (one epoch of each per round,
several rounds, no augmentation); per-round ratios to ReLU, reported as medians.

    python -m benchmarks.peers_direct --seeds 0
    python -m benchmarks.peers_direct --recipe fashion-dense-bn-long \
        --seeds 0 1 2      # reuses the runs benchmarks.accuracy trained for that recipe
    python -m benchmarks.peers_direct --quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from whetstone.data import ArrayLoader
from whetstone.nn.decode import SoftmaxDecode
from whetstone.presets import TrainConfig, build_model, build_optimizer, get_preset
from whetstone.presets.architectures import ARCHITECTURES
from whetstone.presets.build import (
    DATASET_SHAPES,
    build_distillation,
    build_key,
    build_lr_scheduler,
    gradient_clip,
)
from whetstone.runs import load_run, load_split, seed_everything, train_run
from whetstone.sharpening import SimpleSharpener, set_model_sharpness
from whetstone.sharpening.allocation import fully_sharpened
from whetstone.training import fit
from whetstone.training.augment import Augmented, parse_augment
from whetstone.training.loop import evaluate

from .accuracy import recipe_config
from .common import RESULTS, environment, write_json
from .report import _env_line, _pct
from .speed import one_epoch

QUICK_LIMITS: dict[str, int | None] = {"train_limit": 2000, "test_limit": 1000}
FULL_LIMITS: dict[str, int | None] = {"train_limit": None, "test_limit": None}
PEERS = ("snntorch", "spikingjelly")


def peer_versions() -> dict[str, str | None]:
    """Installed versions of the peer frameworks (``None`` where one is missing)."""
    out: dict[str, str | None] = {}
    for name in PEERS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def peer_environment(device: str = "cpu") -> dict[str, Any]:
    """:func:`benchmarks.common.environment` with the peer frameworks' versions added."""
    env = environment(device)
    env["versions"] = {**env["versions"], **peer_versions()}
    return env


def recipe(preset: str | None, quick: bool, recipe_path: Path | None = None
           ) -> tuple[TrainConfig, str, dict[str, int | None]]:
    """The preset's configuration (or the TOML ``recipe_path`` on its preset), the result label
    and the data limits.

    ``quick``: 2 epochs (no separate fine-tuning), every layer sharpened within the first
    1.4 epochs (so the network ends binary), 2,000 training and 1,000 test images, label
    suffix ``-quick``.
    """
    if recipe_path is not None:
        config, label = recipe_config(None, recipe_path)
    else:
        config, label = get_preset(preset or "mnist-dense"), preset or "mnist-dense"
    if not quick:
        return config, label, dict(FULL_LIMITS)
    config = config.merged({"epochs": 2, "finetune_epochs": 0, "val_every": 1,
                            "schedule": {"name": "scheduled", "start": 0.2, "duration": 0.4,
                                         "intermission": 0.0}})
    return config, f"{label}-quick", dict(QUICK_LIMITS)


def accuracy_run(config: TrainConfig, label: str, seed: int) -> Path | None:
    """The sharpened run of ``benchmarks.accuracy`` for this recipe and seed, if that study
    already trained it (same configuration, seed aside): the peers then reuse it."""
    path = RESULTS / f"accuracy-{label}.json"
    if not path.exists():
        return None
    old = json.loads(path.read_text())

    def key(cfg: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in cfg.items() if k != "seed"}

    if old.get("quick") or key(old["config"]) != key(config.to_dict()):
        return None
    for run in old["runs"]:
        if run["variant"] == "sharpened" and run["seed"] == seed:
            folder = Path(run["run_dir"])
            return folder if (folder / "model.safetensors").is_file() else None
    return None


def whetstone_run(config: TrainConfig, run_dir: Path, limits: dict[str, int | None],
                  device: str = "cpu") -> dict[str, Any]:
    """Train ``config`` into ``run_dir`` with ``train_run``, or reuse the run already there
    when its configuration and data limits are the same (both peer studies use one run)."""
    summary_path, config_path = run_dir / "summary.json", run_dir / "config.json"
    weights = run_dir / "model.safetensors"
    if summary_path.is_file() and config_path.is_file() and weights.is_file():
        old = TrainConfig.load(config_path)
        summary = json.loads(summary_path.read_text())
        if old.to_dict() == config.to_dict() and summary.get("limits") == limits:
            print(f"whetstone run reused from {run_dir}", flush=True)
            return summary
    summary = train_run(config, run_dir, device=device, progress=False, **limits)
    summary["limits"] = limits
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


class SnnTorchStep(nn.Module):
    """One time step of an ``snntorch.Leaky`` neuron with ``beta = 0`` from a zero membrane.

    The membrane is the input (nothing leaks in, nothing to reset), so the output is the
    spike ``1[x > threshold]`` with snnTorch's default surrogate gradient backward.
    """

    def __init__(self, threshold: float) -> None:
        super().__init__()
        import snntorch

        self.lif = snntorch.Leaky(beta=0.0, threshold=threshold)

    def forward(self, x: Tensor) -> Tensor:
        spikes, _membrane = self.lif(x, torch.zeros_like(x))
        return spikes


def snntorch_model(config: TrainConfig, threshold: float) -> nn.Sequential:
    """The preset's dense architecture with :class:`SnnTorchStep` activations; initial
    weights equal to ``build_model(config)``'s (same seed, same layer order)."""
    spec = dict(config.model)
    if spec.pop("arch") != "dense":
        raise ValueError("peers_direct compares dense presets only")
    channels, height, width = DATASET_SHAPES[config.dataset]
    spec.setdefault("in_features", channels * height * width)
    torch.manual_seed(config.seed)
    return ARCHITECTURES["dense"](build_key(config), act=lambda: SnnTorchStep(threshold), **spec)


def surrogate_name(threshold: float = 0.5) -> str:
    """Where snnTorch's default surrogate gradient function comes from (module and name)."""
    fn = SnnTorchStep(threshold).lif.spike_grad
    return f"{fn.__module__}.{fn.__qualname__}"


def train_model(config: TrainConfig, model: nn.Module, limits: dict[str, int | None],
                device: str = "cpu", teacher: nn.Module | None = None) -> dict[str, Any]:
    """Train ``model`` (no sharpening) exactly as ``train_run`` trains ``config``'s: same data
    order, augmentation, optimizer, learning-rate schedule, loss, epochs and (with ``teacher``)
    the same distillation; validated on the ``val`` split, scored once on the full test set."""
    seed_everything(config.seed)
    train = load_split(config.dataset, "train", limit=limits["train_limit"])
    val = load_split(config.dataset, "val", limit=limits["test_limit"])
    test = load_split(config.dataset, "test", limit=limits["test_limit"])
    optimizer = build_optimizer(config, model)
    loader: Any = ArrayLoader(train.x, train.y, config.batch_size, shuffle=True, seed=config.seed)
    if config.augment not in (None, "none"):
        shift, flip = parse_augment(config.augment)
        loader = Augmented(loader, max_shift=shift, seed=config.seed, flip=flip)
    test_loader = ArrayLoader(test.x, test.y, 1000)
    distillation = build_distillation(config) if teacher is not None else None
    history = fit(model, loader, config.total_epochs, optimizer,
                  val_loader=ArrayLoader(val.x, val.y, 1000),
                  device=device, progress=False, val_every=config.val_every,
                  scheduler=build_lr_scheduler(config, optimizer),
                  loss_fn=nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
                  clip_grad_norm=gradient_clip(config), teacher=teacher,
                  distillation=distillation)
    times = [r.epoch_time for r in history]
    return {"test_accuracy": evaluate(model, test_loader, device), "epochs": len(history),
            "val_accuracy": history[-1].val_accuracy, "val_samples": int(val.y.numel()),
            "teacher": None if distillation is None else asdict(distillation),
            "train_seconds": sum(times), "median_epoch_seconds": statistics.median(times),
            "train_samples": int(train.y.numel()), "test_samples": int(test.y.numel())}


class SynopCounter:
    """Effective synaptic operations of a network of ``nn.Linear`` and ``SoftmaxDecode``
    layers, counted by forward hooks: every nonzero input element costs one operation per
    synapse leaving it (``out_features`` of a Linear, the class count of a decode).

    The first counted layer receives real inputs (pixels): its operations are MACs; every
    later one receives spikes (possibly scaled by a constant, as after SpikingJelly's
    voltage scalers): accumulates. Sums over everything seen; divide by the samples.
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, (nn.Linear, SoftmaxDecode))]
        if not self.layers:
            raise ValueError("no Linear or SoftmaxDecode layer to count")
        self.ops = [0] * len(self.layers)
        self.handles = [layer.register_forward_hook(self._hook(i))
                        for i, layer in enumerate(self.layers)]

    def _hook(self, i: int) -> Callable[..., None]:
        layer = self.layers[i]
        fanout = layer.out_features if isinstance(layer, nn.Linear) else layer.num_classes

        def hook(_module: nn.Module, inputs: tuple[Tensor, ...], _output: Tensor) -> None:
            self.ops[i] += int(torch.count_nonzero(inputs[0])) * int(fanout)
        return hook

    def totals(self, samples: int) -> dict[str, Any]:
        """Per-sample ``mac`` (first layer), ``ac`` (the rest), ``synops`` and per layer."""
        per = [ops / samples for ops in self.ops]
        return {"mac": per[0], "ac": sum(per[1:]), "synops": sum(per), "per_layer": per}

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


@torch.no_grad()
def count_synops(model: nn.Module, x: Tensor, batch_size: int = 1000) -> dict[str, Any]:
    """:class:`SynopCounter` totals of one pass of ``model`` over ``x``, per sample."""
    was_training = model.training
    model.eval()
    counter = SynopCounter(model)
    try:
        for start in range(0, len(x), batch_size):
            model(x[start:start + batch_size])
    finally:
        counter.remove()
        model.train(was_training)
    return counter.totals(len(x))


def whetstone_synops(model: nn.Sequential, x: Tensor) -> dict[str, Any]:
    """``whetstone.metrics.synaptic_ops`` totals of the model's binary network (every layer at
    sharpness 1, converted with ``whetstone.conversion.to_spiking``) on ``x``, per sample."""
    from whetstone.conversion import to_spiking
    from whetstone.metrics import synaptic_ops

    with fully_sharpened(model):
        net = to_spiking(model.cpu())
    return synaptic_ops(net, x.numpy())["total"]


def training_cost(config: TrainConfig, rounds: int, limit: int | None,
                  threshold: float) -> dict[str, Any]:
    """Interleaved epochs of ReLU, whetstone sharpening and snnTorch (``benchmarks.speed``'s
    method extended to three): per-round wall and CPU times and ratios to ReLU."""
    seed_everything(0)
    config = config.merged({"surrogate": "straight-through"})
    train = load_split(config.dataset, "train", limit=limit)
    loader = ArrayLoader(train.x, train.y, config.batch_size, shuffle=True, seed=0)
    relu = build_model(config, plain=True)
    sharp = build_model(config)
    snn = snntorch_model(config, threshold)
    # mid-schedule as in benchmarks.speed: layer 0 at 1, layer 1 at 0.2, moving every batch
    set_model_sharpness(sharp, 0.4)

    def sharpener() -> SimpleSharpener:
        s = SimpleSharpener(start_epoch=0, steps=1000, mode="batch")
        s.ticks = int(0.4 * 3 * 1000 * len(loader))
        return s

    entries: dict[str, tuple[nn.Module, torch.optim.Optimizer, Callable[[], Any]]] = {
        "relu": (relu, build_optimizer(config, relu), lambda: None),
        "whetstone": (sharp, build_optimizer(config, sharp), sharpener),
        "snntorch": (snn, build_optimizer(config, snn), lambda: None),
    }
    for model, opt, make in entries.values():  # warm-up
        one_epoch(model, opt, loader, make())
    wall: dict[str, list[float]] = {k: [] for k in entries}
    cpu: dict[str, list[float]] = {k: [] for k in entries}
    for _ in range(rounds):
        for name, (model, opt, make) in entries.items():
            w, c = one_epoch(model, opt, loader, make())
            wall[name].append(w)
            cpu[name].append(c)
    out: dict[str, Any] = {"samples": int(train.y.numel()), "rounds": rounds,
                           "epoch_seconds": wall, "epoch_cpu_seconds": cpu,
                           "median_seconds": {k: statistics.median(v) for k, v in wall.items()},
                           "ratios_to_relu": {}, "median_ratio_to_relu": {},
                           "median_cpu_ratio_to_relu": {}}
    for name in ("whetstone", "snntorch"):
        ratios = [a / b for a, b in zip(wall[name], wall["relu"], strict=True)]
        cpu_ratios = [a / b for a, b in zip(cpu[name], cpu["relu"], strict=True)]
        out["ratios_to_relu"][name] = ratios
        out["median_ratio_to_relu"][name] = statistics.median(ratios)
        out["median_cpu_ratio_to_relu"][name] = statistics.median(cpu_ratios)
    snn_vs_ours = [a / b for a, b in zip(wall["snntorch"], wall["whetstone"], strict=True)]
    out["median_ratio_snntorch_to_whetstone"] = statistics.median(snn_vs_ours)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="mnist-dense")
    p.add_argument("--recipe", type=Path,
                   help="TOML recipe (a preset plus overrides) instead of --preset; the runs\n"
                        "benchmarks.accuracy trained for it are reused")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threshold", type=float, default=0.5,
                   help="snnTorch firing threshold (0.5: whetstone's spike threshold)")
    p.add_argument("--rounds", type=int, default=5,
                   help="interleaved timing rounds (0: no timing; a resumed file keeps its own)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true",
                   help="smoke check: 2 epochs on 2,000 training and 1,000 test images")
    p.add_argument("--runs-dir", type=Path, default=Path("runs/bench"))
    args = p.parse_args(argv)

    config, label, limits = recipe(args.preset, args.quick, args.recipe)
    out = RESULTS / f"peers-direct-{label}.json"
    result: dict[str, Any] = {
        "study": "peers-direct",
        "label": label,
        "preset": config.name,
        "dataset": config.dataset,
        "config": config.to_dict(),
        "snntorch": {"neuron": "snntorch.Leaky", "beta": 0.0, "threshold": args.threshold,
                     "time_steps": 1, "membrane": "zero before the step",
                     "surrogate": surrogate_name(args.threshold)},
        "synops_convention": "per inference: nonzero inputs of every Linear and of the decode "
                             "times their fan-out; first layer MACs (real pixels), the rest "
                             "ACs (spikes)",
        "environment": peer_environment(args.device),
        "quick": args.quick,
        "runs": [],
    }
    if out.exists() and not args.quick:  # resume: keep the other seeds of the same recipe
        old = json.loads(out.read_text())
        if old.get("config", {}) == config.to_dict():
            result["runs"] = [r for r in old["runs"] if r["seed"] not in args.seeds]
            result["cost"] = old.get("cost")
            result["invocations"] = [*old.get("invocations", [old["environment"]]),
                                     result["environment"]]
    test = load_split(config.dataset, "test", limit=limits["test_limit"])
    for seed in args.seeds:
        cfg = config.merged({"seed": seed})
        reused = None if args.quick else accuracy_run(cfg, label, seed)
        run_dir = reused or args.runs_dir / f"peers-{label}-whetstone-seed{seed}"
        if reused:
            print(f"whetstone run reused from benchmarks.accuracy: {run_dir}", flush=True)
            summary = json.loads((run_dir / "summary.json").read_text())
        else:
            summary = whetstone_run(cfg, run_dir, limits, args.device)
        ours = load_run(run_dir).model
        with fully_sharpened(ours):
            ours_ops = count_synops(ours, test.x)
        metrics_ops = whetstone_synops(ours, test.x)
        result["runs"].append({
            "method": "whetstone", "seed": seed, "run_dir": str(run_dir),
            "test_accuracy": summary["test_accuracy_binary"],
            "final_sharpness": summary["final_sharpness"], "epochs": summary["epochs"],
            "train_seconds": summary["train_seconds"],
            "median_epoch_seconds": summary["median_epoch_seconds"],
            "test_samples": summary["test_samples"], "synops": ours_ops,
            "synops_whetstone_metrics": metrics_ops})
        write_json(out, result)
        print(f"{label} whetstone seed {seed}: binary {summary['test_accuracy_binary']:.4f} "
              f"({summary['median_epoch_seconds']:.2f} s/epoch, "
              f"{ours_ops['synops']:.0f} synops; whetstone.metrics: "
              f"{metrics_ops['synops']:.0f})", flush=True)

        t0 = time.perf_counter()
        snn = snntorch_model(cfg, args.threshold)
        # a recipe that distils: snnTorch learns from the very teacher whetstone's run used
        teacher_dir = TrainConfig.load(run_dir / "config.json").teacher.get("run")
        teacher = load_run(teacher_dir).model if teacher_dir else None
        res = train_model(cfg, snn, limits, args.device, teacher=teacher)
        snn_ops = count_synops(snn, test.x)
        result["runs"].append({"method": "snntorch", "seed": seed, **res, "synops": snn_ops,
                               "total_seconds": time.perf_counter() - t0})
        write_json(out, result)
        print(f"{label} snntorch seed {seed}: {res['test_accuracy']:.4f} "
              f"({res['median_epoch_seconds']:.2f} s/epoch, {snn_ops['synops']:.0f} synops)",
              flush=True)

    if args.rounds == 0:  # no timing this time (a resumed file keeps its earlier one)
        write_json(out, result)
        print(f"wrote {out}")
        return
    cost_limit = limits["train_limit"]
    result["cost"] = training_cost(config, 2 if args.quick else args.rounds, cost_limit,
                                   args.threshold)
    write_json(out, result)
    med = result["cost"]["median_ratio_to_relu"]
    secs = result["cost"]["median_seconds"]
    print(f"training cost, median s/epoch: relu {secs['relu']:.3f}, whetstone "
          f"{secs['whetstone']:.3f}, snntorch {secs['snntorch']:.3f}; median ratio to ReLU: "
          f"whetstone {med['whetstone']:.3f}, snntorch {med['snntorch']:.3f}", flush=True)
    print(f"wrote {out}")


def _versions_line(env: dict[str, Any]) -> str:
    v = env["versions"]
    return ", ".join(f"{k} {v.get(k) or 'not installed'}" for k in PEERS)


def section() -> list[str]:
    """BENCHMARKS.md lines from the non-quick ``peers-direct-*.json`` ([] when none)."""
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("peers-direct-*.json"))]
    results = [r for r in results if not r.get("quick")]
    if not results:
        return []
    lines = ["## The field side by side: direct single-step training (snnTorch)", "",
             "The recipe's dense network (BatchNorm included where it has it), data, initial "
             "weights, optimizer, epochs, batch, learning-rate schedule, augmentation and, for a "
             "recipe that distils from its conventional twin, the same teacher and distillation "
             "loss; *whetstone*: sharpened to binary; "
             "*snnTorch*: `snntorch.Leaky(beta=0)` neurons run for one time step from a zero "
             "membrane, trained directly with snnTorch's default surrogate gradient, output "
             "spikes decoded by the same key. Trained on `train`, validated on `val`, full test "
             "set scored once (files without `val_samples` predate the validation split and "
             "were validated on test). Synaptic operations per inference: "
             "nonzero inputs times fan-out (first layer MACs on pixels, the rest ACs on spikes).",
             "", "| preset | method | test accuracy (%) | synaptic ops / inference | "
             "median s/epoch (training run) |", "|---|---|---|---|---|"]
    details = []
    for r in results:
        for method in ("whetstone", "snntorch"):
            runs = [x for x in r["runs"] if x["method"] == method]
            if not runs:
                continue
            ops = statistics.mean(x["synops"]["synops"] for x in runs)
            secs = statistics.median(x["median_epoch_seconds"] for x in runs)
            name = "whetstone (binary)" if method == "whetstone" else (
                f"snnTorch (threshold {r['snntorch']['threshold']}"
                f"{', distilled from the same teacher' if runs[0].get('teacher') else ''})")
            lines.append(f"| {r['label']} | {name} | {_pct([x['test_accuracy'] for x in runs])}"
                         f" | {ops:,.0f} | {secs:.2f} |")
        cost = r.get("cost")
        if cost:
            s, m = cost["median_seconds"], cost["median_ratio_to_relu"]
            details += ["", f"Training cost ({r['label']}, {cost['samples']:,} images, batch "
                        f"{r['config']['batch_size']}, no augmentation, {cost['rounds']} "
                        "interleaved rounds of one epoch each):", "",
                        "| network | median s/epoch | median ratio to ReLU (wall) | (CPU time) |",
                        "|---|---|---|---|",
                        f"| plain PyTorch ReLU | {s['relu']:.3f} | 1 | 1 |"]
            for name, key in (("whetstone, sharpening active", "whetstone"),
                              ("snnTorch single step", "snntorch")):
                details.append(f"| {name} | {s[key]:.3f} | {m[key]:.3f} | "
                               f"{cost['median_cpu_ratio_to_relu'][key]:.3f} |")
            details.append(f"\nsnnTorch / whetstone, median per-round ratio: "
                           f"{cost['median_ratio_snntorch_to_whetstone']:.3f}.")
        details += ["", f"- **{r['label']}** (seeds {sorted({x['seed'] for x in r['runs']})}; "
                    f"{_versions_line(r['environment'])}; surrogate "
                    f"`{r['snntorch']['surrogate']}`): {_env_line(r['environment'])}"]
        details += [f"  - earlier invocation of this file: {_env_line(env)}"
                    for env in r.get("invocations", [])[:-1]]
    return [*lines, *details, ""]


if __name__ == "__main__":
    main()
