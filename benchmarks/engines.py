"""Engines of the spiking runtime against float32 torch: speed, agreement, where the time goes.

For a run folder: the float spiking network (``to_spiking`` of the run's model) and its
integer network (``to_integer`` at ``--integer-bits``, on the uint8 pixels), timed
interleaved (median of ``--reps`` repetitions) at batch 1 (``--batch1-samples`` test images,
one call per image) and batch 256 (the full test set):

- ``torch``: the run's model in float32 inference (``torch.no_grad``), the baseline;
- ``numpy``: the reference runtime (float64);
- ``fast``: the numba engine, float32; ``fast-int``: the numba engine on the integer network;
- ``onnxruntime`` / ``onnxruntime-int``: when ``whetstone.export.onnx`` is importable.

Reported per engine and batch: samples per second, the ratio to torch (per repetition, then
the median), synaptic events per second (SynOps per sample from ``whetstone.metrics`` on the
float network, times samples per second), the full-test-set wall time (batch 256), and the
predictions identical to the numpy reference's (float engines against the float network's,
integer engines against the integer network's numpy reference). Also: the fast engine's
first-call cost (numba compilation with an empty cache, and loading the cache), a profile
per fused step (seconds per sample), and a rough physical context (see ``physical``).

    python -m benchmarks.engines runs/bench/mnist-dense-sharpened-seed0 --label mnist-dense

``RUN`` may also be ``synthetic:mnist-cnn``: the mnist-cnn architecture (``whetstone-cnn``,
the preset's key width 40) with random weights, converted, and every threshold after a
weighted layer set to the quantile of its inputs' pre-activations (on 64 test digits) that
gives the per-layer spike densities measured on the trained mnist-cnn-cpu run
(BENCHMARKS.md): a speed proxy for that run, same shapes, same amount of synaptic work,
until a trained run is at hand (torch times the same architecture; accuracies are chance).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from whetstone.conversion import to_spiking
from whetstone.metrics import network_stats
from whetstone.quantization import integer_inputs, to_integer
from whetstone.runs import load_run, load_split
from whetstone.runtime import ENGINES, predict, register_engine
from whetstone.runtime.fast import compile_network

from .common import RESULTS, environment, write_json

GOALS = {"mnist-dense": {"1": 5.0, "256": 2.0}, "mnist-cnn": {"1": 2.0, "256": 1.5}}
"""Issue 15's goals: speed-up over torch float32 at batch 1 and 256."""


def _torch_predict(model: torch.nn.Module, x: torch.Tensor, batch: int) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)]
                         ).numpy()


def _onnx_available() -> bool:
    """Import the ONNX engine if it exists, registering ``"onnxruntime"`` when its module
    does not do so itself."""
    try:
        from whetstone.export.onnx import onnx_engine
    except ImportError:
        return False
    if "onnxruntime" not in ENGINES:
        register_engine("onnxruntime", onnx_engine)
    return True


def _first_call(run: Path, test_limit: int) -> dict[str, float]:
    """Seconds of the fast engine's first call in a fresh process: with an empty numba cache
    (compilation) and again with that cache filled (loading it)."""
    code = (
        "import time, sys\n"
        "from whetstone.runs import load_run, load_split\n"
        "from whetstone.conversion import to_spiking\n"
        "from whetstone.quantization import to_integer, integer_inputs\n"
        "from whetstone.runtime import predict\n"
        f"r = load_run({str(run)!r}); t = load_split(r.config.dataset, 'test', limit=4)\n"
        "net = to_spiking(r.model.eval(), t.x[:1]); x = t.x.numpy()\n"
        "inet = to_integer(net, 8); xi = integer_inputs(x)\n"
        "t0 = time.perf_counter()\n"
        "predict(net, x[:1], engine='fast'); predict(net, x, engine='fast')\n"
        "predict(inet, xi[:1], engine='fast'); predict(inet, xi, engine='fast')\n"
        "print(time.perf_counter() - t0)\n")
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for what in ("compile_seconds", "cached_seconds"):
            res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                 text=True, check=True)
            out[what] = float(res.stdout.strip().splitlines()[-1])
    return out


def memory_bandwidth(megabytes: int = 256, reps: int = 5) -> float:
    """A rough read+write bandwidth (bytes/s) of this machine: the best of ``reps`` numpy
    copies of a ``megabytes`` array (counted as 2x its size moved), one thread."""
    a = np.ones(megabytes * 2**20 // 8)
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.nbytes / best


def cpu_mhz() -> float | None:
    """The current clock of the first core from /proc/cpuinfo (MHz), if readable."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--label", required=True)
    p.add_argument("--integer-bits", type=int, default=8)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--batch1-samples", type=int, default=500)
    p.add_argument("--batch256-samples", type=int,
                   help="test images of the interleaved batch-256 timing (default: all; the "
                        "full-test-set wall times come from a first pass over all of them)")
    p.add_argument("--stats-samples", type=int, default=1000)
    p.add_argument("--test-limit", type=int, help="only the first N test images (smoke check)")
    p.add_argument("--skip-numpy-batch256", action="store_true",
                   help="time the numpy engine at batch 256 on --batch1-samples images only "
                        "(it takes minutes on a CNN)")
    args = p.parse_args(argv)

    synthetic = str(args.run).startswith("synthetic:")
    if synthetic:
        dataset = "mnist"
        test = load_split(dataset, "test", limit=args.test_limit)
        model, net = _synthetic_cnn(test.x[:64])
    else:
        run = load_run(args.run)
        dataset = run.config.dataset
        model = run.model.eval()
        test = load_split(dataset, "test", limit=args.test_limit)
        net = to_spiking(model, test.x[:1])
    x_t, y = test.x, test.y.numpy()
    x = x_t.numpy()
    inet = to_integer(net, args.integer_bits)
    xi = integer_inputs(x)
    onnx = _onnx_available()
    out = RESULTS / f"engines-{args.label}.json"
    result: dict[str, Any] = {
        "study": "engines", "label": args.label, "run": str(args.run),
        "dataset": dataset, "samples": len(y), "integer_bits": args.integer_bits,
        "synthetic": synthetic,
        "environment": environment(), "numba_threads": _numba_threads(),
        "load_average_at_start": os.getloadavg(),
        "goals": GOALS.get(args.label.removesuffix("-cpu"), {}),
        "notes": ("fast = numba engine, float32 weights and accumulators; fast-int = numba "
                  "engine on the integer network (int8/int16 weights, int32/int64 "
                  "accumulators); numpy = reference, float64; torch = float32, no_grad, its "
                  "default threads; torch-1thread = the same on one thread (on a busy "
                  "machine torch's OpenMP regions stall, so median_ratio_to_best_torch "
                  "divides by the better of the two in each repetition)")}
    engines: dict[str, tuple[Any, np.ndarray, str]] = {
        "numpy": (net, x, "numpy"), "fast": (net, x, "fast"), "fast-int": (inet, xi, "fast")}
    if onnx:
        engines["onnxruntime"] = (net, x, "onnxruntime")
        engines["onnxruntime-int"] = (inet, xi, "onnxruntime")
    result["engines"] = ["torch", *engines]

    # agreement on the full test set (batch 256), and the wall time of one pass each
    t0 = time.perf_counter()
    torch_pred = _torch_predict(model, x_t, 256)
    walls = {"torch": time.perf_counter() - t0}
    preds: dict[str, np.ndarray] = {}
    for name, (n, xx, eng) in engines.items():
        predict(n, xx[:2], engine=eng)  # compile / warm up
        t0 = time.perf_counter()
        preds[name] = predict(n, xx, batch_size=256, engine=eng)
        walls[name] = time.perf_counter() - t0
        print(f"{name}: full test set in {walls[name]:.2f} s", flush=True)
    int_ref = preds["numpy-int"] = predict(inet, xi, batch_size=256)
    result["agreement"] = {
        name: {"identical_to_numpy_reference": int((p == (int_ref if name.endswith("-int")
                                                          else preds["numpy"])).sum()),
               "reference": "numpy, integer network" if name.endswith("-int")
               else "numpy, float network (float64)",
               "identical_to_torch": int((p == torch_pred).sum()),
               "accuracy": float((p == y).mean())}
        for name, p in preds.items()}
    result["agreement"]["torch"] = {"accuracy": float((torch_pred == y).mean())}
    result["full_test_set_seconds_first_pass"] = walls
    write_json(out, result)

    stats = network_stats(net, x[:args.stats_samples], y[:args.stats_samples])
    synops = float(stats["total"]["synops"])
    result["synops_per_sample"] = synops
    result["dense_mac_per_sample"] = float(stats["total"]["dense_mac"])
    result["density_mean"] = float(stats["total"]["density_mean"])
    write_json(out, result)

    speed = []
    for batch, samples in ((1, args.batch1_samples), (256, args.batch256_samples or len(x))):
        speed.append(_interleaved(model, x_t, engines, batch, samples, args.reps, synops,
                                  args.skip_numpy_batch256))
        result["throughput"] = speed
        write_json(out, result)
    result["full_test_set_seconds"] = {
        name: len(x) / row["samples_per_s"] for name, row in speed[1]["engines"].items()}
    result["full_test_set_seconds_method"] = (
        "test-set size / the median batch-256 rate of the interleaved timing; "
        "full_test_set_seconds_first_pass: one timed pass over the whole test set")

    result["profile"] = _profile(net, inet, x, xi, args.batch1_samples)
    write_json(out, result)
    if not synthetic:
        result["first_call"] = _first_call(args.run, 4)
    result["physical"] = _physical(net, inet, speed, synops)
    write_json(out, result)
    print(f"wrote {out}")
    for row in speed:
        print(f"batch {row['batch']}: " + ", ".join(
            f"{k} {v['samples_per_s']:.0f}/s ({v.get('median_ratio_to_torch', 1):.2f}x)"
            for k, v in row["engines"].items()))


SYNTHETIC_DENSITIES = (0.191, 0.277, 0.293, 0.281, 0.299, 0.306, 0.313, 0.242)
"""Spike density after each weighted layer of the trained mnist-cnn-cpu run (its six
convolutions and two dense layers; BENCHMARKS.md, 2000 test samples)."""


def _synthetic_cnn(x: torch.Tensor) -> tuple[torch.nn.Module, Any]:
    """The mnist-cnn architecture with random weights, converted, thresholds calibrated to
    :data:`SYNTHETIC_DENSITIES` on ``x`` (see the module doc)."""
    from whetstone.nn import key_generator
    from whetstone.presets.architectures import whetstone_cnn
    from whetstone.runtime import Affine, Conv2d, SpikingNetwork, Threshold
    from whetstone.runtime.simulate import Context, kernel_for
    from whetstone.sharpening.allocation import set_model_sharpness

    torch.manual_seed(0)
    model = whetstone_cnn(key_generator(10, 40, overlapping=False, seed=0))
    set_model_sharpness(model, 1.0)
    model.eval()
    net = to_spiking(model, x[:1])
    ctx = Context(np.dtype(np.float64))
    layers = list(net.layers)
    value = x.numpy().astype(np.float64)
    densities = iter(SYNTHETIC_DENSITIES)
    for i, layer in enumerate(layers):
        if isinstance(layer, Threshold) and i > 0 and isinstance(layers[i - 1], (Affine, Conv2d)):
            layers[i] = Threshold(np.array(np.quantile(value, 1.0 - next(densities))))
            layer = layers[i]
        value = kernel_for(layer)(layer, [value], ctx)
    return model, SpikingNetwork(layers, net.metadata, net.inputs)


def _numba_threads() -> int | None:
    try:
        import numba
    except ImportError:
        return None
    return int(numba.get_num_threads())


def _interleaved(model: torch.nn.Module, x_t: torch.Tensor,
                 engines: dict[str, tuple[Any, np.ndarray, str]], batch: int, samples: int,
                 reps: int, synops: float, skip_numpy: bool) -> dict[str, Any]:
    """Samples per second of torch and every engine, interleaved ``reps`` times."""
    xs = x_t[:samples]

    def torch_one_thread() -> Any:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return _torch_predict(model, xs, batch)
        finally:
            torch.set_num_threads(threads)

    runs: dict[str, Callable[[], Any]] = {"torch": lambda: _torch_predict(model, xs, batch),
                                          "torch-1thread": torch_one_thread}
    for name, (n, xx, eng) in engines.items():
        part = xx[:samples]
        if name == "numpy" and skip_numpy and batch > 1:
            part = xx[:min(samples, 500)]
        runs[name] = (lambda n=n, part=part, eng=eng: predict(n, part, batch_size=batch,
                                                              engine=eng))
    counts = {name: (min(samples, 500) if name == "numpy" and skip_numpy and batch > 1
                     else samples) for name in runs}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        fn()  # warm up
    for _ in range(reps):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            rates[name].append(counts[name] / (time.perf_counter() - t0))
    row: dict[str, Any] = {"batch": batch, "samples": samples, "reps": reps, "engines": {},
                           "load_average_after": os.getloadavg()}
    for name, r in rates.items():
        entry: dict[str, Any] = {"samples_per_s": statistics.median(r), "per_rep": r,
                                 "synaptic_events_per_s": statistics.median(r) * synops}
        if not name.startswith("torch"):
            ratios = [a / b for a, b in zip(r, rates["torch"], strict=True)]
            entry["ratios_to_torch"] = ratios
            entry["median_ratio_to_torch"] = statistics.median(ratios)
            best = [a / max(b, c) for a, b, c in zip(r, rates["torch"], rates["torch-1thread"],
                                                     strict=True)]
            entry["median_ratio_to_best_torch"] = statistics.median(best)
        row["engines"][name] = entry
        print(f"batch {batch} {name}: {entry['samples_per_s']:.0f} samples/s "
              f"({entry.get('median_ratio_to_torch', 1.0):.2f}x torch, "
              f"{entry.get('median_ratio_to_best_torch', 1.0):.2f}x the better of torch at "
              f"{torch.get_num_threads()} threads and at 1)", flush=True)
    return row


def _profile(net: Any, inet: Any, x: np.ndarray, xi: np.ndarray, batch1: int
             ) -> dict[str, Any]:
    """Seconds per sample in each step of the fast engine (float and integer), at batch 1
    (``batch1`` images one by one) and batch 256 (the whole set)."""
    out: dict[str, Any] = {}
    for name, n, xx in (("fast", net, x), ("fast-int", inet, xi)):
        fast = compile_network(n)
        for batch, part in ((1, xx[:batch1]), (256, xx)):
            prof: dict[str, float] = {}
            t0 = time.perf_counter()
            fast(part, batch_size=batch, profile=prof)
            total = time.perf_counter() - t0
            out[f"{name} batch {batch}"] = {
                "seconds_per_sample": total / len(part),
                "steps_seconds_per_sample": {k: v / len(part) for k, v in prof.items()},
                "outside_steps_seconds_per_sample": (total - sum(prof.values())) / len(part),
                "accumulators": {str(k): v for k, v in fast.plan(part).accumulators.items()}}
    return out


def _physical(net: Any, inet: Any, speed: list[dict[str, Any]], synops: float
              ) -> dict[str, Any]:
    """Rough physical context of the batch-256 rates.

    - Weight bytes touched per sample: each synaptic event reads one weight (4 bytes float32,
      the integer network's weight itemsize), so ``synops * itemsize``; most of these reads
      hit the caches (the weights of a layer are reused by every sample), so the fraction of
      the machine's memory bandwidth (a numpy copy, one thread) is an upper bound on the
      DRAM traffic, not a measure of it.
    - Additions per second against a peak: 8 float32 / int32 lanes per AVX2 add, 2 vector
      adds per cycle per core (an estimate for this class of core), at the reported clock.
    """
    bandwidth = memory_bandwidth()
    mhz = cpu_mhz()
    cores = os.cpu_count() or 1
    peak_adds = None if mhz is None else mhz * 1e6 * cores * 2 * 8
    witem = max((np.asarray(layer.weight).dtype.itemsize for layer in inet.layers
                 if hasattr(layer, "weight") and np.issubdtype(
                     np.asarray(layer.weight).dtype, np.integer)), default=1)
    rows = {}
    for row in speed:
        for name, itemsize in (("fast", 4), ("fast-int", witem), ("numpy", 8)):
            entry = row["engines"].get(name)
            if entry is None:
                continue
            rate = entry["samples_per_s"]
            rows[f"{name} batch {row['batch']}"] = {
                "weight_bytes_per_sample": synops * itemsize,
                "weight_bytes_per_s": synops * itemsize * rate,
                "fraction_of_memory_bandwidth": synops * itemsize * rate / bandwidth,
                "synaptic_events_per_s": synops * rate,
                "fraction_of_peak_simd_adds": None if peak_adds is None
                else synops * rate / peak_adds}
    return {"memory_bandwidth_bytes_per_s": bandwidth, "cpu_mhz": mhz, "cores": cores,
            "peak_simd_adds_per_s_estimate": peak_adds, "rows": rows,
            "method": _physical.__doc__}


if __name__ == "__main__":
    main()
