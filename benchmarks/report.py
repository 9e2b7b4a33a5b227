"""Generate BENCHMARKS.md from the JSON in benchmarks/results/ (never typed by hand).

    python -m benchmarks.report
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from .common import RESULTS

ROOT = Path(__file__).resolve().parent.parent
BARS = {"mnist-dense": 0.975, "mnist-cnn": 0.993, "fashion-cnn": 0.900}
#: the accuracy goals of issue 10 (fully binary, mean of 3 seeds), by dataset and kind of
#: network: they hold for every recipe of that kind, whatever its width
GOALS = {("mnist", "dense"): 0.984, ("fashion-mnist", "dense"): 0.870, ("mnist", "cnn"): 0.995,
         ("fashion-mnist", "cnn"): 0.930, ("cifar10", "cnn"): 0.90}
DATASETS = {"cifar10": "CIFAR-10 (JPEG mirror)"}


def _preset_label(label: str) -> str:
    """The preset a recipe label stands for when it is the preset's own CPU or GPU recipe."""
    return label.removesuffix("-cpu").removesuffix("-gpu")


def _network(cfg: dict[str, Any]) -> str:
    """The network of a configuration in a few words, e.g. ``dense 256-64-100``."""
    model, width = cfg["model"], cfg["key"]["width"]
    if model["arch"] == "dense":
        return "dense " + "-".join(str(w) for w in [*model.get("hidden", []), width])
    if model["arch"] == "vgg-cnn":
        return f"VGG {'/'.join(str(w) for w in model.get('widths', []))}, {width} out"
    return f"{model['arch']}, {width} out"


def _goal(cfg: dict[str, Any], dataset: str) -> float | None:
    """Issue 4's goal for a recipe's dataset and kind of network (dense or convolutional)."""
    return GOALS.get((dataset, "dense" if cfg["model"]["arch"] == "dense" else "cnn"))


def _against(values: list[float], target: float | None) -> str:
    if target is None or not values:
        return ""
    mean = statistics.mean(values)
    return " (met)" if mean >= target else f" (**missed** by {100 * (target - mean):.2f} points)"


def _load(pattern: str) -> list[dict[str, Any]]:
    """Full results matching ``pattern`` (``--quick`` smoke results, named ``*-quick*``, are
    never reported)."""
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob(pattern))
            if "-quick" not in p.stem]


def _pct(values: list[float]) -> str:
    if not values:
        return "n/a"
    mean = 100 * statistics.mean(values)
    if len(values) == 1:
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {100 * statistics.pstdev(values):.2f} (n={len(values)})"


def _env_line(env: dict[str, Any]) -> str:
    v = env["versions"]
    return (f"{env['date']}; device {env['device']} ({env['cpu']}, {env['cores']} cores, "
            f"{env['torch_threads']} torch threads); whetstone {v['whetstone']}, torch {v['torch']}"
            f"; `{env['command']}`")


def _part_runs(part: dict[str, Any]) -> str:
    """The runs one merged result file contributed, e.g. ``sharpened 0, conventional 0``."""
    return ", ".join(f"{run['variant']} {run['seed']}" for run in part["runs"])


def _split(runs: list[dict[str, Any]]) -> str:
    """Which protocol a result's runs followed: chosen on the validation split and scored on
    test once, or (files from before the validation split existed) validated on test."""
    if runs and all("val_samples" in r for r in runs):
        return "test; chosen on val"
    return "test; older protocol (no val split: epochs validated on test)"


def _levers(cfg: dict[str, Any]) -> list[str]:
    """The training levers of a configuration that are not in the schedule column."""
    out = []
    if cfg["model"].get("batchnorm") and cfg["model"]["arch"] == "dense":
        out.append("BatchNorm (folded: same neurons and synapses)")
    teacher = cfg.get("teacher") or {}
    if teacher:
        how = [f"T={teacher.get('temperature', 4.0)}", f"w={teacher.get('weight', 0.5)}"]
        if teacher.get("init"):
            how.append("student starts from it")
        if teacher.get("distill", True):
            out.append(f"distilled from the conventional twin ({', '.join(how)})")
        else:
            out.append("starts from the conventional twin's weights")
    return out


def _schedule(cfg: dict[str, Any]) -> str:
    sched = dict(cfg["schedule"])
    name = sched.pop("name")
    args = ", ".join(f"{k}={v}" for k, v in sched.items())
    return f"{name}({args})"


def accuracy_section() -> list[str]:
    lines = ["## Accuracy: fully binary against the same network never sharpened", "",
             "Full test sets. *Binary*: every activation a step (sharpness 1), the network "
             "that runs as single-step spikes. *Conventional*: the same architecture, seed and "
             "epochs trained with sharpness 0 throughout; *thresholded*: that conventional "
             "network with every activation simply replaced by the step (no sharpening).", "",
             "| recipe | dataset | network | device | split | epochs (+fine-tuning), batch "
             "| optimizer | schedule | binary (%) "
             "| conventional (%) | conventional thresholded (%) | bar | goal (issue 10) "
             "| seconds/epoch |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    details: list[str] = []
    plotted: list[dict[str, Any]] = []
    for res in _load("accuracy-*.json"):
        if res.get("quick") or res["label"].endswith("-fast"):  # -fast: time to accuracy
            continue
        cfg = res["config"]
        runs = res["runs"]
        sharp = [r for r in runs if r["variant"] == "sharpened"]
        conv = [r for r in runs if r["variant"] == "conventional"]
        binary = [r["test_accuracy_binary"] for r in sharp if r["final_sharpness"] and
                  min(r["final_sharpness"]) >= 1.0]
        bar = BARS.get(_preset_label(res["label"]))  # the preset's own recipes only
        goal = _goal(cfg, res["dataset"])
        met = _against(binary, bar)
        opt = ", ".join(f"{k}={v}" for k, v in cfg["optimizer"].items())
        extras = [x for x in (cfg.get("lr_schedule") and f"lr {cfg['lr_schedule']}",
                              cfg.get("surrogate") and f"{cfg['surrogate']} gradient at s=1",
                              cfg.get("augment") and f"augment {cfg['augment']}") if x]
        extras += _levers(cfg)
        finetune = f"+{cfg['finetune_epochs']}" if cfg.get("finetune_epochs") else ""
        epoch_s = statistics.median([r["median_epoch_seconds"] for r in sharp]) if sharp else 0
        lines.append(
            f"| {res['label']} | {DATASETS.get(res['dataset'], res['dataset'])} | "
            f"{_network(cfg)} | "
            f"{res['environment']['device']} | {_split(runs)} | "
            f"{cfg['epochs']}{finetune}, {cfg['batch_size']} | {opt} | {_schedule(cfg)}"
            f"{'; ' + '; '.join(extras) if extras else ''} | {_pct(binary)}{met} | "
            f"{_pct([r['test_accuracy'] for r in conv])} | "
            f"{_pct([r['test_accuracy_binary'] for r in conv])} | "
            f"{'' if bar is None else f'{100 * bar:.1f}'} | "
            f"{'' if goal is None else f'{100 * goal:.1f}'}{_against(binary, goal)} | "
            f"{epoch_s:.1f} |")
        plotted.append({"label": res["label"], "device": res["environment"]["device"],
                        "dataset": DATASETS.get(res["dataset"], res["dataset"]),
                        "binary": binary, "goal": goal,
                        "conventional": [r["test_accuracy"] for r in conv],
                        "thresholded": [r["test_accuracy_binary"] for r in conv]})
        seeds = sorted({r["seed"] for r in runs})
        if res.get("merged_from"):
            details.append(f"- **{res['label']}** (seeds {seeds}), merged from:")
            details += [f"  - {_part_runs(part)}: {_env_line(part['environment'])}"
                        for part in res["merged_from"]]
        else:
            details.append(f"- **{res['label']}** (seeds {seeds}): "
                           f"{_env_line(res['environment'])}")
        timeline = RESULTS / f"sharpening-{res['label']}.png"
        if timeline.exists():
            details.append(f"  - sharpening timeline of seed {seeds[0]}: "
                           f"![{res['label']}](benchmarks/results/{timeline.name})")
        if res["label"].endswith("-gpu"):
            details.append("  - trained by `benchmarks/gpu-cnn.sh`: every (recipe, seed) process "
                           "at once on one GPU, so its seconds per epoch are those of a shared GPU")
        details += [f"  - {r['variant']} seed {r['seed']}: the run of {r['reused_from']} "
                    f"(same recipe{', schedule aside' if r['variant'] == 'conventional' else ''}"
                    ", kept by `--reuse-baseline` / `--only-baseline`)"
                    for r in runs if r.get("reused_from")]
    if len(lines) == 6:
        lines.append("| (no full results yet) ||||||||||||||")
        return [*lines, ""]
    from .accuracy import plot_summary  # imports torch: only when there is something to plot

    figure = plot_summary(plotted, RESULTS / "accuracy.png")
    return [*lines, "", f"![binary, conventional and thresholded accuracy per recipe]"
            f"(benchmarks/results/{figure.name})", "", *details, ""]


def time_to_accuracy_section() -> list[str]:
    """Issue 10's time-to-accuracy goal: the ``*-fast`` recipes, per seed and as medians."""
    results = [r for r in _load("accuracy-*-fast.json") if not r.get("quick")]
    if not results:
        return []
    lines = ["## Time to accuracy", "",
             "Fully binary test accuracy and training wall time (the epochs' training loops, "
             "validation passes excluded) of each run; goal (issue 10): at least 96.5 % in at "
             "most 12 s on 2 cores, median of 3 runs. The original Keras library needs 30-50 s "
             "on this kind of machine for 96.3 % (method.md).", ""]
    for res in results:
        lines += ["| recipe | network | seed | binary test (%) | training s | epochs |",
                  "|---|---|---|---|---|---|"]
        runs = [r for r in res["runs"] if r["variant"] == "sharpened"]
        for r in runs:
            lines.append(f"| {res['label']} | {_network(res['config'])} | {r['seed']} | "
                         f"{100 * r['test_accuracy_binary']:.2f} | {r['train_seconds']:.1f} | "
                         f"{r['epochs']} |")
        acc = statistics.median(r["test_accuracy_binary"] for r in runs)
        secs = statistics.median(r["train_seconds"] for r in runs)
        met = acc >= 0.965 and secs <= 12.0
        lines += ["", f"**{res['label']}: median {100 * acc:.2f} % in a median {secs:.1f} s of "
                  f"training** ({'goal met' if met else 'goal **missed**'}; split: trained on "
                  f"`train`, recipe chosen on `val`, scored on `test`).", "",
                  f"- {_env_line(res['environment'])}", ""]
    return lines


def recipe_time_section() -> list[str]:
    """Issue 10: a dense preset's full recipe in at most 5 minutes per run on 2 cores, measured
    alone on an idle machine (``benchmarks.accuracy --no-baseline --out
    results/walltime-LABEL.json``); the accuracy table's runs shared the cores."""
    results = [r for r in _load("walltime-*.json") if not r.get("quick")]
    if not results:
        return []
    lines = ["## Wall time of a full dense recipe, alone on the machine", "",
             "Goal (issue 10): at most 5 minutes per run on 2 cores. The accuracy table's runs "
             "shared the 2 cores with other jobs; these ran alone.", "",
             "| recipe | seed | epochs | training s | whole run s (data, validation, test) | "
             "torch threads |", "|---|---|---|---|---|---|"]
    for res in results:
        for r in res["runs"]:
            lines.append(f"| {res['label']} | {r['seed']} | {r['epochs']} | "
                         f"{r['train_seconds']:.0f} | {r['total_seconds']:.0f} | "
                         f"{res['environment']['torch_threads']} |")
        lines += ["", f"- {_env_line(res['environment'])}", ""]
    return lines


def speed_section() -> list[str]:
    res = _load("speed.json")
    if not res:
        return ["## Training speed", "", "(no full result yet)", ""]
    r = res[0]
    # one entry per torch thread count; files from before --threads took several values hold
    # one setting at the top level
    settings = r.get("settings") or [{**r, "torch_threads": r["environment"]["torch_threads"]}]
    env = {**r["environment"],
           "torch_threads": " and ".join(str(s["torch_threads"]) for s in settings)}
    processes = r.get("processes", 1)
    pooled = (f" in {processes} fresh processes of {r['pairs']} pairs each, pooled (a "
              "process's memory layout shifts its ratio by several per cent; each process's "
              "own median is listed below)" if processes > 1 else "")
    lines = ["## Training speed: sharpening against plain ReLU", "",
             f"{r['what']}. Interleaved epochs, {len(settings[0]['ratios'])} pairs per thread "
             f"count{pooled}.", "",
             "| torch threads | plain ReLU, median s/epoch | sharpening active, median s/epoch "
             "| **median ratio, wall clock** (bar: at most 1.05) | median ratio, process CPU "
             "time |", "|---|---|---|---|---|"]
    lines += [f"| {s['torch_threads']} | {s['median_relu_seconds']:.3f} | "
              f"{s['median_sharpening_seconds']:.3f} | **{s['median_ratio']:.3f}** | "
              f"{s['median_cpu_ratio']:.3f} |" for s in settings]
    lines.append("")
    for s in settings:
        if "process_median_ratios" in s:
            lines += [f"Median ratio of each process at {s['torch_threads']} thread(s): "
                      f"{', '.join(f'{x:.3f}' for x in s['process_median_ratios'])}.", ""]
        lines += [f"Per-pair wall-clock ratios at {s['torch_threads']} thread(s): "
                  f"{', '.join(f'{x:.3f}' for x in s['ratios'])}; CPU-time ratios: "
                  f"{', '.join(f'{x:.3f}' for x in s['cpu_ratios'])}.", ""]
    if "malloc" in r:
        lines += [f"Allocator: {r['malloc']} (see `benchmarks/speed.py`).", ""]
    return [*lines, f"- {_env_line(env)}", ""]


def ddp_section() -> list[str]:
    """Issue 11's data-parallel speed-up (``benchmarks/ddp.py``)."""
    res = _load("ddp.json")
    if not res:
        return []
    r = res[0]
    lines = ["## Data-parallel training: speed-up", "", f"{r['what']}.", "",
             "| round | 1 process: training s | parallel: training s | speed-up | "
             "wall-clock speed-up | binary test (%), 1 / parallel |", "|---|---|---|---|---|---|"]
    for i, e in enumerate(r["rounds"], 1):
        lines.append(f"| {i} | {e['single']['train_seconds']:.1f} | "
                     f"{e['parallel']['train_seconds']:.1f} | {e['speedup']:.2f} | "
                     f"{e['wall_speedup']:.2f} | "
                     f"{100 * e['single']['test_accuracy_binary']:.2f} / "
                     f"{100 * e['parallel']['test_accuracy_binary']:.2f} |")
    lines += ["", f"**Median speed-up {r['median_speedup']:.2f}** (training loops), "
              f"{r['median_wall_speedup']:.2f} for the whole command (process start, data "
              "loading and evaluation included). Below 1 means slower: on 2 cores one process "
              "already uses both through torch's threads, while each of the data-parallel "
              "processes all-reduces the whole gradient (gloo) after every step and runs the "
              "whole optimizer step; data parallelism pays off with more cores or GPUs than "
              "one process can use.", "", f"- {_env_line(r['environment'])}", ""]
    return lines


def demo_section() -> list[str]:
    res = _load("demo.json")
    if not res:
        return []
    r = res[0]
    steps = "; ".join(f"{k} {v:.0f} s" for k, v in r["steps"].items())
    return ["## `make demo` on a fresh clone", "",
            f"Wall time **{r['total_seconds']:.0f} s** (bar: under 300 s): {steps}. "
            f"{r['result']}", "", f"- {_env_line(r['environment'])}", ""]


def spiking_section() -> list[str]:
    results = _load("spiking-*.json")
    if not results:
        return []
    out = ["## The spiking network: equality, runtime speed, cost, weight precision", "",
           "The sharpened model converted to threshold neurons (`whetstone.conversion`) and run "
           "by the numpy runtime (`whetstone.runtime`, float64, one time step), on the full "
           "test set.", "",
           "Equality is checked against the trained torch model twice: as trained (float32) "
           "and the same model evaluated in float64. The converted network computes the "
           "model's function exactly; float32 inference can round a pre-activation that lies "
           "within an ulp of the threshold to the other side (BatchNorm folding makes such "
           "cases visible), so the float64 column is the exactness bar.", "",
           "| run | predictions differing from torch (float32) | from torch (float64) "
           "| spiking accuracy (%) | runtime/torch "
           "throughput, batch 1 | batch 256 | synaptic events/s (batch 256) |",
           "|---|---|---|---|---|---|---|"]
    details = []
    for r in results:
        eq = r["equality"]
        tp = {row["batch"]: row for row in r.get("throughput", [])}

        def ratio(b: int, tp: dict[int, Any] = tp) -> str:
            if b not in tp:
                return "not measured"
            row = tp[b]
            return (f"{row['median_ratio']:.2f} ({row['runtime_samples_per_s']:.0f} vs "
                    f"{row['torch_samples_per_s']:.0f} samples/s)")

        events = tp.get(256, {}).get("synaptic_events_per_s")
        if events is None and 256 in tp and "stats" in r:  # stats from another invocation
            events = tp[256]["runtime_samples_per_s"] * r["stats"]["total"]["synops"]
        f64 = eq.get("differing_float64")
        f64_cell = "not measured" if f64 is None else f"{f64} of {eq['samples']}"
        out.append(f"| {r['label']} | {eq['differing']} of {eq['samples']} | {f64_cell} | "
                   f"{100 * eq['accuracy_spiking']:.2f} | {ratio(1)} | {ratio(256)} | "
                   f"{'n/a' if events is None else f'{events:.3g}'} |")
        details.append(f"- **{r['label']}** (`{r['run']}`): {_env_line(r['environment'])}")
        details += [f"  - {section} measured {_env_line(env)}"
                    for section, env in r.get("measured_by", {}).items()]
    out += ["", *details, ""]
    for r in results:
        if "stats" in r:
            st = r["stats"]
            t = st["total"]
            e = st["energy"]["45nm-fp32"]
            lo = st["energy"]["loihi-like"]
            out += [f"### Cost per sample: {r['label']} ({st['samples']} test samples)", "",
                    "| layer | neurons | spike density | Gini | AC | MAC | dense-ANN MAC |",
                    "|---|---|---|---|---|---|---|"]
            for layer in st["layers"]:
                dens = layer.get("density")
                gini = layer.get("gini")
                out.append(
                    f"| {layer['index']} {layer['kind']} | {layer.get('neurons') or ''} | "
                    f"{'' if dens is None else f'{dens:.3f}'} | "
                    f"{'' if gini is None else f'{gini:.3f}'} | {layer.get('ac') or 0:.0f} | "
                    f"{layer.get('mac') or 0:.0f} | {layer.get('dense_mac') or 0:.0f} |")
            out += ["", f"Total: {t['ac']:.0f} AC + {t['mac']:.0f} MAC against {t['dense_mac']:.0f}"
                    f" dense-ANN MAC ({t['synops_per_dense_mac']:.3f} of the dense work); mean "
                    f"spike density {t['density_mean']:.3f}, Gini {t['gini']:.3f}. Energy "
                    f"**estimates** (not measurements): 45 nm fp32 (Horowitz 2014) "
                    f"{e['spiking_pj'] / 1e3:.1f} nJ against {e['dense_ann_pj'] / 1e3:.1f} nJ "
                    f"for the dense ANN; Loihi-like (27 pJ/synaptic op, 81 pJ/neuron update) "
                    f"{lo['spiking_pj'] / 1e3:.1f} nJ.", "",
                    f"![per-layer density and Gini](benchmarks/results/stats-{r['label']}.png)",
                    ""]
        if "quantization" in r:
            rows = r["quantization"]
            out += [f"### Weight precision: {r['label']}", "",
                    "| bits | " + " | ".join(str(q["bits"]) for q in rows) + " |",
                    "|---" * (len(rows) + 1) + "|",
                    "| accuracy (%) | " + " | ".join(f"{100 * q['accuracy']:.2f}" for q in rows)
                    + " |"]
            if any("integer_accuracy" in q for q in rows):
                out.append("| integer network (%) | " + " | ".join(
                    f"{100 * q['integer_accuracy']:.2f}" if "integer_accuracy" in q else "-"
                    for q in rows) + " |")
            out += ["", f"Full precision: {100 * rows[0]['reference_accuracy']:.2f} %. "
                    "First row: weights on the grid, real inputs and biases "
                    "(`quantization_sweep`); second row where measured: the integer network "
                    "(`to_integer`: int8/int16 weights, integer thresholds, uint8 pixels in; "
                    "exact integer arithmetic).", "",
                    f"![accuracy against bits](benchmarks/results/quantization-{r['label']}.png)",
                    ""]
    return out


_ENGINE_NAMES = {
    "torch": "torch float32 (default threads)", "torch-1thread": "torch float32, 1 thread",
    "numpy": "numpy reference, float64", "fast": "fast (numba), float32",
    "fast-int": "fast (numba), integer network", "onnxruntime": "onnxruntime, float32",
    "onnxruntime-int": "onnxruntime, integer network", "numpy-int": "numpy, integer network",
}


def engines_section() -> list[str]:
    """Issue 15: the engines of the spiking runtime against float32 torch
    (``benchmarks.engines``)."""
    results = _load("engines-*.json")
    if not results:
        return []
    out = ["## Deployment: engines of the spiking network against float32 torch", "",
           "The converted network (float) and its integer network (`to_integer`: integer "
           "weights, thresholds and uint8 pixels) run by each engine, timed interleaved with "
           "the torch model in float32 inference (median of the repetitions). Speed-up = "
           "engine samples/s over torch samples/s, per repetition, median; where torch on its "
           "default threads stalls on a busy machine, the ratio to the better of torch's two "
           "thread settings in each repetition is given too (`best torch`). Identical = "
           "predictions equal to the numpy reference of the same network (float64 float "
           "network, or the integer network) on the test set.", ""]
    for r in results:
        tp = {row["batch"]: row["engines"] for row in r.get("throughput", [])}
        goals = r.get("goals", {})
        goal = (f"; goal: batch 1 >= {goals['1']}x, batch 256 >= {goals['256']}x torch"
                if goals else "")
        what = ("synthetic network with the trained run's spike densities (a speed proxy; "
                "agreement not meaningful)" if r.get("synthetic") else f"`{r['run']}`")
        out += [f"### {r['label']} ({what}; integer network {r.get('integer_bits')} bits"
                f"{goal})", "",
                "| engine | batch 1 samples/s | speed-up (best torch) | batch 256 samples/s | "
                "speed-up (best torch) | full test set (s) | identical | synaptic events/s "
                "(batch 256) |", "|---|---|---|---|---|---|---|---|"]
        agree = r.get("agreement", {})
        for name in r.get("engines", []):
            cells = []
            for batch in (1, 256):
                row = tp.get(batch, {}).get(name)
                if row is None:
                    cells += ["-", "-"]
                    continue
                ratio = row.get("median_ratio_to_torch")
                best = row.get("median_ratio_to_best_torch")
                cells += [f"{row['samples_per_s']:.0f}",
                          "baseline" if ratio is None else
                          f"**{ratio:.2f}** ({best:.2f})" if best is not None else
                          f"**{ratio:.2f}**"]
            seconds = r.get("full_test_set_seconds", {}).get(name)
            a = agree.get(name, {})
            same = a.get("identical_to_numpy_reference")
            same_cell = "-" if same is None or r.get("synthetic") else f"{same} of {r['samples']}"
            events = tp.get(256, {}).get(name, {}).get("synaptic_events_per_s")
            out.append(f"| {_ENGINE_NAMES.get(name, name)} | {' | '.join(cells)} | "
                       f"{'-' if seconds is None else f'{seconds:.2f}'} | "
                       f"{same_cell} | "
                       f"{'-' if events is None else f'{events:.3g}'} |")
        phys = r.get("physical", {})
        rows = phys.get("rows", {})
        if rows:
            out += ["", f"Physical context ({phys.get('cores')} cores at "
                    f"{phys.get('cpu_mhz', 0):.0f} MHz, measured copy bandwidth "
                    f"{phys.get('memory_bandwidth_bytes_per_s', 0) / 1e9:.1f} GB/s, "
                    f"estimated peak {phys.get('peak_simd_adds_per_s_estimate', 0) / 1e9:.0f} G "
                    "SIMD adds/s): "
                    + "; ".join(f"{k}: {v['weight_bytes_per_s'] / 1e9:.2f} GB/s of weight "
                                f"reads ({100 * v['fraction_of_memory_bandwidth']:.0f} % of the "
                                f"copy bandwidth: most hit the caches), "
                                f"{100 * v['fraction_of_peak_simd_adds']:.1f} % of peak adds"
                                for k, v in rows.items()) + "."]
        if goals:
            verdicts = []
            for batch in (1, 256):
                best = max(((row.get("median_ratio_to_best_torch") or 0.0, name)
                            for name, row in tp.get(batch, {}).items()
                            if not name.startswith("torch")), default=(0.0, "-"))
                target = goals[str(batch)]
                verdicts.append(f"batch {batch}: best {best[0]:.2f}x the better torch "
                                f"({_ENGINE_NAMES.get(best[1], best[1])}) against the goal "
                                f"{target}x: " + ("**met**" if best[0] >= target else
                                                  f"**missed** by {target - best[0]:.2f}x"))
            walls = {k: v for k, v in r.get("full_test_set_seconds", {}).items()
                     if not k.startswith("torch")}
            if walls and r["label"].startswith("mnist-cnn"):
                name = min(walls, key=walls.__getitem__)
                verdicts.append(f"full test set in {walls[name]:.1f} s "
                                f"({_ENGINE_NAMES.get(name, name)}) against the goal of 10 s: "
                                + ("**met**" if walls[name] < 10 else "**missed**"))
            out += ["", "Goals (against the better of torch's two thread settings): "
                    + "; ".join(verdicts) + "."]
        for key, prof in r.get("profile", {}).items():
            steps = prof.get("steps_seconds_per_sample", {})
            if steps:
                out += ["", f"Where the time goes ({key}, {1e6 * prof['seconds_per_sample']:.1f} "
                        "µs per sample): " + "; ".join(
                            f"{step} {1e6 * sec:.1f} µs" for step, sec in steps.items())
                        + "; outside the steps "
                        f"{1e6 * prof['outside_steps_seconds_per_sample']:.1f} µs."]
        first = r.get("first_call")
        if first:
            out += ["", f"Fast engine first call: {first['compile_seconds']:.1f} s compiling "
                    f"(empty numba cache), {first['cached_seconds']:.2f} s from the cache."]
        out += ["", f"- {_env_line(r['environment'])}; {r.get('notes', '')}", ""]
    return out


def main() -> None:
    out = ["# Benchmarks", "",
           "Generated by `python -m benchmarks.report` from `benchmarks/results/*.json`; "
           "do not edit by hand. Each figure names its date, device and command.", ""]
    out += (accuracy_section() + time_to_accuracy_section() + recipe_time_section()
            + speed_section() + ddp_section() + demo_section() + spiking_section()
            + engines_section())
    # the studies import this module's helpers, so they are imported here, not at the top
    from . import (
        activity,
        encoding,
        fuzz,
        optimizers,
        peers_conversion,
        peers_direct,
        peers_sinabs,
        precision,
        schedules,
        sharpen,
        tasks,
        tuning,
    )

    for study in (tasks, tuning, encoding, optimizers, schedules, activity, precision,
                  peers_direct, peers_conversion, peers_sinabs, sharpen, fuzz):
        out += study.section()
    (ROOT / "BENCHMARKS.md").write_text("\n".join(out))
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
