"""The field side by side, part 3: ANN-to-SNN rate conversion with Sinabs against whetstone.

The same comparison as ``benchmarks.peers_conversion`` (SpikingJelly) with the second
widely used conversion toolkit, SynSense's Sinabs (``sinabs.from_model``). Per seed:

1. whetstone's preset, sharpened to binary: the run of ``benchmarks.peers_direct`` /
   ``peers_conversion`` (reused when its configuration is the same), its binary test
   accuracy and synaptic operations (one time step).
2. The same network as a conventional ReLU ANN, trained by ``peers_direct.train_model``
   exactly as ``peers_conversion`` trains it (same data, initial weights, optimizer, epochs,
   schedule, augmentation). It is kept in ``RUNS/peers-LABEL-relu-seedS/`` (``config.json``,
   ``model.safetensors``, ``summary.json``) and reused when configuration and data limits match.
3. Sinabs, in its own virtual environment ``.venv-sinabs`` (created here on first use:
   ``torch`` at the project's pin first, then Sinabs and the stack it pins, in one pip command
   with the torch pin, so pip can never swap torch; Sinabs 3.1.3 requires ``nir<=1.0.4``,
   which conflicts with the project's ``nir`` extra). The ANN's weights, the test set and the
   calibration images (the training images) travel as plain ``.npz`` files to
   ``benchmarks/sinabs_worker.py``, which runs with that environment's python. There the ANN
   is normalised layer by layer on the calibration images (modes ``max`` and ``99.9%``, the
   analogues of SpikingJelly's: with ``lambda_l`` that percentile of ReLU ``l``'s output,
   Linear ``l``'s weights times ``lambda_(l-1) / lambda_l``, its bias over ``lambda_l``; the
   ANN's classes unchanged), then converted by ``sinabs.from_model`` (every ReLU an
   ``IAFSqueeze``: threshold 1, subtractive reset, one spike per step at most) and run with
   the image as constant input current for T = 1, 2, 4, ... steps; the class is the key's
   decode of the output spike counts (argmax). The modes ``sinabs:max`` and ``sinabs:99.9%``
   normalise with Sinabs's own ``sinabs.utils.normalize_weights`` as shipped instead, which
   divides weights and bias of each layer alike and so changes a network with biases (their
   ``normalised_ann_accuracy`` shows by how much, before any spiking); they are measured and
   reported beside the others, not used for the comparison.

Synaptic operations and headline exactly as in ``benchmarks.peers_conversion`` (same
functions): per inference, summed over time steps, nonzero inputs of every Linear and of the
decode times their fan-out, the first layer MACs on pixels, the rest ACs on spikes; the
smallest T within 0.5 points of whetstone's binary accuracy and the ratios of operations and
time steps to whetstone's.

If Sinabs cannot be installed, the result says so (``"installed": false``) with the failing
command and the last lines of pip's output, and the report prints that error.

``--relu-run PATH`` converts a given ReLU run folder instead (as
``benchmarks.peers_conversion --relu-run``): no whetstone run, no headline, no plot; the
result ``peers-sinabs-LABEL.json`` records the weights' ``weights_sha256``. Dense networks
only (the worker rebuilds ``Flatten, Linear, ReLU, ...``).

    python -m benchmarks.peers_sinabs --seeds 0
    python -m benchmarks.peers_sinabs --quick
    python -m benchmarks.peers_sinabs --relu-run runs/bench/sharpen-mnist-dense-relu-seed0
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from whetstone.nn.decode import SoftmaxDecode
from whetstone.runs import load_run, load_split

from .common import RESULTS, environment, write_json
from .peers_conversion import (
    WITHIN,
    _direct,
    _mean,
    ann_run,
    finish_plot,
    headline,
    load_relu_run,
    reference_points,
    relu_run_label,
    time_steps,
)
from .peers_direct import recipe, whetstone_run, whetstone_synops
from .report import _env_line, _pct

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-sinabs"
WORKER = Path(__file__).resolve().parent / "sinabs_worker.py"
INSTALL_LOG = ROOT / "benchmarks" / "logs" / "peers-sinabs-install.log"
TORCH_PIN = "torch==2.13.0"
"""The project's torch (the Makefile's ``TORCH_PIN``), installed first and kept."""
PINS = ("sinabs==3.1.3", "nir==1.0.4", "nirtorch==2.0.2", "samna==0.48.6")
"""Sinabs and what it requires, at the versions pip resolves for it with that torch."""
SINABS_PACKAGES = ("sinabs", "nir", "nirtorch", "samna")
TAIL_LINES = 25
SYNOPS_CONVENTION = ("per inference, summed over time steps: nonzero inputs of every Linear "
                     "and of the decode times their fan-out; first layer MACs (real pixels, "
                     "every step), the rest ACs (spikes)")


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def install_commands(venv: Path, torch_pin: str = TORCH_PIN) -> list[list[str]]:
    """The commands that build the Sinabs environment: the venv, torch alone, then Sinabs and
    its stack together with the same torch pin (pip fails rather than replace torch)."""
    python = str(venv / "bin" / "python")
    return [[sys.executable, "-m", "venv", str(venv)],
            [python, "-m", "pip", "install", torch_pin],
            [python, "-m", "pip", "install", torch_pin, *PINS]]


def worker_versions(venv: Path) -> dict[str, str | None]:
    """Versions the worker sees in ``venv`` (raises ``RuntimeError`` with its stderr)."""
    proc = subprocess.run([str(venv / "bin" / "python"), str(WORKER), "--versions"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(_tail(proc.stderr or proc.stdout))
    return json.loads(proc.stdout)


def ensure_venv(venv: Path = VENV, torch_pin: str = TORCH_PIN,
                log: Path = INSTALL_LOG) -> dict[str, Any]:
    """Create (or reuse) the Sinabs environment. Returns ``installed``, ``versions``,
    ``commands`` and ``seconds``; on failure ``installed: False`` and ``error`` (the failing
    ``command``, its ``returncode`` and the last lines of its stderr, verbatim). Every
    command's full output is appended to ``log``."""
    commands = install_commands(venv, torch_pin)
    marker = venv / ".peers-sinabs.json"
    wanted = {"torch": torch_pin, "packages": list(PINS)}
    out: dict[str, Any] = {"venv": str(venv.relative_to(ROOT) if venv.is_relative_to(ROOT)
                                       else venv),
                           "commands": [" ".join(c) for c in commands], "log": str(log),
                           "reused": False}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        try:
            out["versions"] = worker_versions(venv)
            out.update(installed=True, reused=True, seconds=0.0)
            return out
        except (OSError, RuntimeError) as exc:
            print(f"{venv} unusable ({exc}); reinstalling", flush=True)
    t0 = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(f"\n=== peers-sinabs install {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n")
        for cmd in commands:
            if cmd[1:3] == ["-m", "venv"] and (venv / "bin" / "python").is_file():
                continue
            text = " ".join(cmd)
            print(f"$ {text}", flush=True)
            f.write(f"$ {text}\n")
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            except OSError as exc:
                out.update(installed=False, seconds=time.perf_counter() - t0,
                           error={"command": text, "returncode": None, "stderr_tail": str(exc)})
                return out
            f.write(proc.stdout + proc.stderr + f"(exit {proc.returncode})\n")
            if proc.returncode != 0:
                out.update(installed=False, seconds=time.perf_counter() - t0,
                           error={"command": text, "returncode": proc.returncode,
                                  "stderr_tail": _tail(proc.stderr or proc.stdout),
                                  "stdout_tail": _tail(proc.stdout)})
                return out
    try:
        versions = worker_versions(venv)
    except (OSError, RuntimeError) as exc:
        out.update(installed=False, seconds=time.perf_counter() - t0,
                   error={"command": f"{venv}/bin/python {WORKER} --versions",
                          "returncode": 1, "stderr_tail": str(exc)})
        return out
    want_torch = torch_pin.split("==", 1)[-1]
    if not (versions.get("torch") or "").startswith(want_torch):
        out.update(installed=False, seconds=time.perf_counter() - t0,
                   error={"command": " ".join(commands[-1]), "returncode": 0,
                          "stderr_tail": f"torch {versions.get('torch')} installed, not "
                                         f"{torch_pin}"})
        return out
    marker.write_text(json.dumps(wanted) + "\n")
    out.update(installed=True, versions=versions, seconds=time.perf_counter() - t0)
    return out


def export(ann: nn.Sequential, test_x: torch.Tensor, test_y: torch.Tensor,
           calibration_x: torch.Tensor, folder: Path) -> tuple[Path, Path]:
    """Write ``ann.npz`` (Linear weights and biases, the key) and ``data.npz`` (test set and
    calibration images) for the worker; plain arrays, no pickle."""
    body = list(ann)
    linears = [m for m in body if isinstance(m, nn.Linear)]
    expected = [nn.Flatten] + [nn.Linear, nn.ReLU] * len(linears) + [SoftmaxDecode]
    if [type(m) for m in body] != expected:
        raise ValueError("peers_sinabs converts dense presets only (Flatten, Linear + ReLU, "
                         f"..., SoftmaxDecode); got {[type(m).__name__ for m in body]}")
    decode = body[-1]
    assert isinstance(decode, SoftmaxDecode)
    arrays = {"key": decode.key.detach().cpu().numpy().astype(np.float32)}
    for i, lin in enumerate(linears):
        arrays[f"weight{i}"] = lin.weight.detach().cpu().numpy().astype(np.float32)
        arrays[f"bias{i}"] = lin.bias.detach().cpu().numpy().astype(np.float32)
    ann_path, data_path = folder / "ann.npz", folder / "data.npz"
    np.savez(ann_path, **arrays)
    np.savez(data_path, test_x=test_x.numpy().astype(np.float32),
             test_y=test_y.numpy().astype(np.int64),
             calibration_x=calibration_x.numpy().astype(np.float32))
    return ann_path, data_path


def run_worker(venv: Path, job: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Run the worker on ``job`` with the Sinabs environment's python; its result, or
    ``{"error": {...}}`` with the command, exit code and the end of its stderr."""
    job_path = folder / "job.json"
    job_path.write_text(json.dumps(job, indent=2) + "\n")
    cmd = [str(venv / "bin" / "python"), str(WORKER), str(job_path)]
    proc = subprocess.run(cmd, stdout=None, stderr=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0 or not Path(job["output"]).is_file():
        sys.stderr.write(proc.stderr)
        return {"error": {"command": " ".join(cmd), "returncode": proc.returncode,
                          "stderr_tail": _tail(proc.stderr)}}
    if proc.stderr.strip():
        sys.stderr.write(proc.stderr)
    return json.loads(Path(job["output"]).read_text())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="mnist-dense")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--modes", nargs="+", default=["max", "99.9%", "sinabs:max", "sinabs:99.9%"],
                   help="normalisation percentiles: max (100) or a percentile like 99.9%%;\n"
                        "sinabs:P normalises with sinabs.utils.normalize_weights as shipped")
    p.add_argument("--max-steps", type=int, default=256, help="largest T (quick: 16)")
    p.add_argument("--spike-fn", choices=["single", "multi"], default="single",
                   help="single: SingleSpike (one spike per neuron and step, as an IF neuron);\n"
                        "multi: Sinabs's default MultiSpike (floor(v / threshold) per step)")
    p.add_argument("--calibration", type=int, default=None,
                   help="training images to normalise on (default: all of them)")
    p.add_argument("--batch-size", type=int, default=1000, help="test images per simulation")
    p.add_argument("--chunk", type=int, default=16, help="time steps per Sinabs forward call")
    p.add_argument("--device", default="cpu", help="where the whetstone run and ANN train")
    p.add_argument("--quick", action="store_true",
                   help="smoke check: 2 epochs on 2,000 training and 1,000 test images, T <= 16")
    p.add_argument("--runs-dir", type=Path, default=Path("runs/bench"))
    p.add_argument("--venv", type=Path, default=VENV, help="the Sinabs environment")
    p.add_argument("--torch-pin", default=TORCH_PIN)
    p.add_argument("--relu-run", type=Path, default=None,
                   help="convert this ReLU run folder (config.json, model.safetensors,\n"
                        "summary.json) instead of the preset's; --preset and --seeds ignored")
    args = p.parse_args(argv)

    t_start = time.perf_counter()
    config, label, limits = recipe(args.preset, args.quick)
    steps = time_steps(16 if args.quick else args.max_steps)
    out = RESULTS / f"peers-sinabs-{label}.json"
    result: dict[str, Any] = {
        "study": "peers-sinabs",
        "label": label,
        "preset": config.name,
        "dataset": config.dataset,
        "config": config.to_dict(),
        "conversion": {
            "framework": "sinabs",
            "api": "sinabs.from_model",
            "modes": args.modes, "time_steps": steps,
            "normalisation": "layer-wise on the calibration (training) images: with lambda_l "
                             "the mode's percentile of ReLU l's output in the ANN (all "
                             "elements, zeros included; max = 100), Linear l's weights times "
                             "lambda_(l-1) / lambda_l and its bias over lambda_l",
            "normalisation_sinabs": "modes sinabs:P: sinabs.utils.normalize_weights(percentile"
                                    "=P) as shipped, each Linear's weights and bias divided "
                                    "by the percentile measured after the layers below",
            "neuron": f"IAFSqueeze, threshold 1, MembraneSubtract reset, "
                      f"{'SingleSpike' if args.spike_fn == 'single' else 'MultiSpike'}, "
                      "Sinabs's default min_v_mem",
            "spike_fn": args.spike_fn,
            "input": "image as constant input current at every time step",
            "readout": "argmax of the key's decode of the output spike counts"},
        "synops_convention": SYNOPS_CONVENTION,
        "within": WITHIN,
        "environment": environment(args.device),
        "quick": args.quick,
        "runs": [],
    }
    install = ensure_venv(args.venv, args.torch_pin)
    result["installed"] = install["installed"]
    result["install"] = install
    if not install["installed"]:
        write_json(out, result)
        err = install["error"]
        print(f"Sinabs could not be installed: `{err['command']}` exited {err['returncode']}:\n"
              f"{err['stderr_tail']}\nwrote {out}", file=sys.stderr)
        raise SystemExit(1)
    versions = install["versions"]
    result["environment"]["versions"].update(
        {name: versions.get(name) for name in SINABS_PACKAGES})
    result["environment"]["sinabs_venv_versions"] = versions
    print("sinabs environment: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
          flush=True)
    if args.relu_run is not None:
        convert_relu_run(args, result, steps)
        return

    train = load_split(config.dataset, "train", limit=limits["train_limit"])
    test = load_split(config.dataset, "test", limit=limits["test_limit"])
    calibration = train.x if args.calibration is None else train.x[:args.calibration]
    failed = False
    for seed in args.seeds:
        cfg = config.merged({"seed": seed})
        run_dir = args.runs_dir / f"peers-{label}-whetstone-seed{seed}"
        summary = whetstone_run(cfg, run_dir, limits, args.device)
        ops = whetstone_synops(load_run(run_dir).model, test.x)
        ours = {"test_accuracy": summary["test_accuracy_binary"], "synops": ops,
                "time_steps": 1, "final_sharpness": summary["final_sharpness"],
                "run_dir": str(run_dir)}
        print(f"{label} whetstone seed {seed}: binary {ours['test_accuracy']:.4f}, "
              f"{ops['synops']:.0f} synops ({ops['mac']:.0f} MAC + {ops['ac']:.0f} AC)",
              flush=True)
        ann_dir = args.runs_dir / f"peers-{label}-relu-seed{seed}"
        ann, ann_res = ann_run(cfg, ann_dir, limits, args.device)
        ann_res = {**ann_res, "dense_mac": ops["dense_mac"], "run_dir": str(ann_dir)}
        print(f"{label} ReLU ANN seed {seed}: {ann_res['test_accuracy']:.4f}", flush=True)
        entry: dict[str, Any] = {"seed": seed, "whetstone": ours, "ann": ann_res,
                                 "conversion": {}}
        result["runs"].append(entry)
        write_json(out, result)

        with tempfile.TemporaryDirectory(prefix="peers-sinabs-") as tmp:
            folder = Path(tmp)
            ann_path, data_path = export(ann, test.x, test.y, calibration, folder)
            job = {"ann": str(ann_path), "data": str(data_path),
                   "output": str(folder / "result.json"), "modes": args.modes,
                   "steps": steps, "batch_size": args.batch_size, "chunk": args.chunk,
                   "spike_fn": args.spike_fn, "threads": torch.get_num_threads()}
            t0 = time.perf_counter()
            res = run_worker(args.venv, job, folder)
        if "error" in res:
            entry["worker_error"] = res["error"]
            write_json(out, result)
            failed = True
            continue
        entry["worker"] = {k: res[k] for k in ("ann_accuracy", "test_samples",
                                               "calibration_samples", "spike_fn",
                                               "torch_threads")}
        entry["worker"]["seconds"] = time.perf_counter() - t0
        n_test = len(test.y)
        if round(res["ann_accuracy"] * n_test) != round(ann_res["test_accuracy"] * n_test):
            print(f"  note: the ANN rebuilt in the worker scores {res['ann_accuracy']:.4f}, "
                  f"whetstone's evaluate {ann_res['test_accuracy']:.4f}", flush=True)
        for mode, conv in res["modes"].items():
            conv["headline"] = headline(conv["sweep"], ours)
            entry["conversion"][mode] = conv
            h = conv["headline"]
            print(f"  {mode}: " + (f"within {100 * WITHIN} points at T={h['T']}, "
                                   f"{h['synops_ratio']:.1f}x our synops" if h["reached"]
                                   else f"not within {100 * WITHIN} points by T={h['max_T']}"),
                  flush=True)
        write_json(out, result)
    result["seconds"] = time.perf_counter() - t_start
    write_json(out, result)
    png = RESULTS / f"peers-sinabs-{label}.png"
    if any(r["conversion"] for r in result["runs"]):
        plot(result, _direct(label), _conversion(label), png)
        print(f"wrote {out} and {png} ({result['seconds']:.0f} s)")
    else:
        print(f"wrote {out} ({result['seconds']:.0f} s)")
    if failed:
        raise SystemExit(1)


def convert_relu_run(args: argparse.Namespace, result: dict[str, Any], steps: list[int]) -> None:
    """Sinabs conversion of the ReLU ANN in ``args.relu_run`` (every mode, the sweep
    ``steps``); ``result`` (environment, install, conversion settings) is completed with the
    run's configuration and ``weights_sha256`` and written to ``peers-sinabs-LABEL.json``."""
    t_start = time.perf_counter()
    config, ann, summary = load_relu_run(args.relu_run)
    label = relu_run_label(args.relu_run) + ("-quick" if args.quick else "")
    limits = summary.get("limits") or {}
    train = load_split(config.dataset, "train", limit=limits.get("train_limit"))
    test = load_split(config.dataset, "test",
                      limit=1000 if args.quick else limits.get("test_limit"))
    calibration = train.x if args.calibration is None else train.x[:args.calibration]
    out = RESULTS / f"peers-sinabs-{label}.json"
    result.update(label=label, preset=config.name, dataset=config.dataset,
                  config=config.to_dict(),
                  relu_run={"path": str(args.relu_run),
                            "weights_sha256": summary["weights_sha256"]})
    entry: dict[str, Any] = {"seed": config.seed, "ann": summary, "conversion": {}}
    result["runs"] = [entry]
    print(f"{label}: ReLU ANN of {args.relu_run} (sha256 {summary['weights_sha256'][:12]})",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="peers-sinabs-") as tmp:
        folder = Path(tmp)
        ann_path, data_path = export(ann, test.x, test.y, calibration, folder)
        job = {"ann": str(ann_path), "data": str(data_path),
               "output": str(folder / "result.json"), "modes": args.modes,
               "steps": steps, "batch_size": args.batch_size, "chunk": args.chunk,
               "spike_fn": args.spike_fn, "threads": torch.get_num_threads()}
        res = run_worker(args.venv, job, folder)
    result["seconds"] = time.perf_counter() - t_start
    if "error" in res:
        entry["worker_error"] = res["error"]
        write_json(out, result)
        raise SystemExit(1)
    entry["worker"] = {k: res[k] for k in ("ann_accuracy", "test_samples",
                                           "calibration_samples", "spike_fn", "torch_threads")}
    entry["conversion"] = res["modes"]
    write_json(out, result)
    print(f"wrote {out} ({result['seconds']:.0f} s)", flush=True)


def _conversion(label: str) -> dict[str, Any] | None:
    """The SpikingJelly conversion result of the same label, for the plot (None if absent)."""
    path = RESULTS / f"peers-conversion-{label}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _curve(runs: list[dict[str, Any]], mode: str) -> tuple[list[int], list[float], list[float]]:
    """Time steps, mean synops and mean accuracy (%) over seeds of one conversion mode."""
    sweeps = [r["conversion"][mode]["sweep"] for r in runs if mode in r.get("conversion", {})]
    if not sweeps:
        return [], [], []
    steps = [row["T"] for row in sweeps[0]]
    xs = [_mean([s[i]["synops"] for s in sweeps]) for i in range(len(steps))]
    ys = [100 * _mean([s[i]["accuracy"] for s in sweeps]) for i in range(len(steps))]
    return steps, xs, ys


def plot(res: dict[str, Any], direct: dict[str, Any] | None,
         jelly: dict[str, Any] | None, path: Path) -> None:
    """Accuracy against synaptic operations per inference (log x), means over seeds: Sinabs
    per mode, SpikingJelly's conversion (dashed, when its result exists), whetstone's single
    step, snnTorch's direct training and the ReLU ANN."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in res["runs"] if r.get("conversion")]
    fig, ax = plt.subplots(figsize=(10.5, 5))
    colours = iter(["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown"])
    shipped_colours = iter(["tab:olive", "tab:pink", "tab:cyan", "tab:gray"])
    colour_of: dict[str, str] = {}
    for mode in res["conversion"]["modes"]:
        steps, xs, ys = _curve(runs, mode)
        if not steps:
            continue
        if _shipped(mode):
            ax.plot(xs, ys, "x:", ms=4, lw=1, color=next(shipped_colours, None),
                    label=f"Sinabs, {_mode_name(mode)}")
            continue
        colour_of[mode.lower()] = colour = next(colours, "black")
        ax.plot(xs, ys, "o-", ms=4, color=colour, label=f"Sinabs rate conversion ({mode})")
        for t, x, y in zip(steps, xs, ys, strict=True):
            ax.annotate(f"T={t}", (x, y), textcoords="offset points", xytext=(3, -10),
                        fontsize=7, color=colour)
    if jelly is not None:
        for mode in jelly["conversion"]["modes"]:
            _, xs, ys = _curve(jelly["runs"], mode)
            if xs:
                ax.plot(xs, ys, "--", lw=1, alpha=0.6, color=colour_of.get(mode.lower()),
                        label=f"SpikingJelly rate conversion ({mode}; peers-conversion)")
    reference_points(ax, runs, direct)
    finish_plot(fig, ax, f"{res['label']}: Sinabs conversion, accuracy against cost "
                f"(seeds {sorted(r['seed'] for r in runs)})", path, loc="upper left",
                bbox_to_anchor=(1.01, 1.0))


def _shipped(mode: str) -> bool:
    return mode.lower().startswith("sinabs:")


def _mode_name(mode: str) -> str:
    return (f"normalize_weights as shipped, {mode.split(':', 1)[1]}" if _shipped(mode)
            else mode)


def _versions(env: dict[str, Any]) -> str:
    v = env.get("sinabs_venv_versions") or env["versions"]
    return ", ".join(f"{k} {v.get(k) or 'not installed'}" for k in (*SINABS_PACKAGES, "torch"))


def _failure(title: str, err: dict[str, Any], env: dict[str, Any]) -> list[str]:
    return [f"{title}: `{err['command']}` exited {err['returncode']}:", "", "```",
            err["stderr_tail"], "```", "", f"- {_env_line(env)}", ""]


def section() -> list[str]:
    """BENCHMARKS.md lines from the non-quick ``peers-sinabs-*.json`` ([] when none)."""
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("peers-sinabs-*.json"))
               if "-quick" not in p.stem]
    results = [r for r in results if not r.get("quick") and "relu_run" not in r]
    if not results:
        return []
    lines = ["## The field side by side: ANN-to-SNN rate conversion (Sinabs)", ""]
    for res in results:
        lines += [f"### {res['label']}", ""]
        if not res.get("installed", False):
            lines += _failure("Sinabs could not be installed", res["install"]["error"],
                              res["environment"])
            continue
        runs = [r for r in res["runs"] if r.get("conversion")]
        for r in res["runs"]:
            if "worker_error" in r:
                lines += _failure(f"seed {r['seed']}: the Sinabs worker failed",
                                  r["worker_error"], res["environment"])
        if not runs:
            continue
        conv = res["conversion"]
        seeds = sorted(r["seed"] for r in runs)
        ours = [r["whetstone"] for r in runs]
        anns = [r["ann"] for r in runs]
        calib = runs[0].get("worker", {}).get("calibration_samples")
        lines += ["The preset's network trained as a conventional ReLU ANN (same data, "
                  "initial weights, optimizer, epochs and schedule as the SpikingJelly "
                  f"conversion above), normalised on {f'{calib:,} ' if calib else 'the '}"
                  f"training images (below) and converted by `{conv['api']}`; {conv['neuron']}; "
                  f"{conv['input']}; {conv['readout']}; full test set. Synaptic operations: "
                  f"{res['synops_convention']}. Means over seeds {seeds}.", "",
                  "| method | time steps | test accuracy (%) | synaptic ops / inference |",
                  "|---|---|---|---|",
                  f"| conventional ReLU ANN | - | {_pct([a['test_accuracy'] for a in anns])} | "
                  f"{_mean([a['dense_mac'] for a in anns]):,.0f} dense MACs |",
                  f"| **whetstone, binary** | 1 | {_pct([o['test_accuracy'] for o in ours])} | "
                  f"{_mean([o['synops']['synops'] for o in ours]):,.0f} |"]
        heads: list[str] = []
        norms: list[str] = []
        for mode in conv["modes"]:
            sweeps = [r["conversion"][mode]["sweep"] for r in runs if mode in r["conversion"]]
            if not sweeps:
                continue
            for i, row in enumerate(sweeps[0]):
                lines.append(f"| Sinabs ({_mode_name(mode)}) | {row['T']} | "
                             f"{_pct([s[i]['accuracy'] for s in sweeps])} | "
                             f"{_mean([s[i]['synops'] for s in sweeps]):,.0f} |")
            norms.append(
                f"- {_mode_name(mode)}: per-layer scales "
                + "; ".join("[" + ", ".join(f"{v:.3g}" for v in r["conversion"][mode]["scales"])
                            + "]" for r in runs)
                + "; the normalised ANN (before spiking) "
                f"{_pct([r['conversion'][mode]['normalised_ann_accuracy'] for r in runs])} %")
            for r in runs:
                h = r["conversion"][mode]["headline"]
                if h["reached"]:
                    heads.append(
                        f"- seed {r['seed']}, {_mode_name(mode)}: within "
                        f"{100 * res['within']:.1f} points of (or above) whetstone "
                        f"({100 * r['whetstone']['test_accuracy']:.2f} %) first at "
                        f"**T = {h['T']}** ({100 * h['accuracy']:.2f} %), {h['synops']:,.0f} "
                        f"synaptic ops: **{h['synops_ratio']:.1f}x** whetstone's operations "
                        f"({h['synops_first_layer_once_ratio']:.1f}x with the first layer "
                        f"computed once) and {h['time_step_ratio']:.0f}x its time steps.")
                else:
                    heads.append(
                        f"- seed {r['seed']}, {_mode_name(mode)}: not within "
                        f"{100 * res['within']:.1f} points of whetstone by T = {h['max_T']} (best "
                        f"{100 * h['best_accuracy']:.2f} %).")
        shipped = conv.get("normalisation_sinabs") if any(map(_shipped, conv["modes"])) else None
        lines += ["", *heads, "", f"Normalisation: {conv['normalisation']}"
                  + (f"; {shipped}" if shipped else "") + ". Scales: the lambda_l"
                  + (" (as shipped: the divisors normalize_weights applied)" if shipped else "")
                  + ".", "", *norms, "",
                  f"![accuracy against cost](benchmarks/results/peers-sinabs-{res['label']}.png)",
                  "", f"- {_versions(res['environment'])} (in `{res['install']['venv']}`); "
                  f"{_env_line(res['environment'])}", ""]
    return lines


if __name__ == "__main__":
    main()
