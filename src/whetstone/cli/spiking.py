"""Subcommands on the spiking network of a run: convert, simulate, stats, quantize, export.

Each reads a run folder (``whetstone train`` wrote it). The converted network is kept as
``RUN/spiking.npz`` (no pickle, checksummed); commands convert on first use. Output paths
(``--out``, ``--nir``, ``--onnx``, ``--plot``) are checked before any work, and a run that is
not fully sharpened is refused with a message naming ``--force`` (``convert`` and ``export``
take it; the other commands point to ``whetstone convert RUN --force``). Long steps show progress on
stderr (``--progress``); standard output holds only the result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from . import options
from .options import UsageError

SPIKING_FILE = "spiking.npz"


def add_parsers(sub: Any, add_common: Any) -> None:
    """Register the subcommands on ``sub`` (an argparse subparsers object)."""
    c = sub.add_parser("convert", help="convert a fully sharpened run to threshold neurons")
    c.add_argument("run")
    c.add_argument("--out", help=f"network file (default RUN/{SPIKING_FILE})")
    c.add_argument("--force", action="store_true",
                   help="convert even if some layer is below sharpness 1 (steps replace them)")
    add_common(c)

    s = sub.add_parser("simulate", help="run the spiking network (numpy, fast or onnxruntime) "
                                        "on a dataset")
    s.add_argument("run")
    s.add_argument("--engine", default="numpy", choices=["numpy", "fast", "onnxruntime"],
                   help="numpy: the reference, float64; fast: numba kernels, float32 "
                        "(pip install whetstone[fast]); onnxruntime: the ONNX export run by "
                        "onnxruntime, float32 (whetstone[onnx]); see whetstone.runtime.ENGINES")
    s.add_argument("--dataset", choices=options.DATASETS, help="dataset (default: the run's)")
    s.add_argument("--split", default="test", choices=["train", "val", "test", "train-full"])
    s.add_argument("--limit", type=options.count)
    add_common(s)

    st = sub.add_parser("stats", help="spike density, Gini, synaptic operations, energy")
    st.add_argument("run")
    st.add_argument("--limit", type=options.count, help="samples of the test split (default all)")
    st.add_argument("--plot", help="figure path (default RUN/stats.png)")
    add_common(st)

    q = sub.add_parser("quantize", help="accuracy with weights and thresholds at K bits")
    q.add_argument("run")
    q.add_argument("--bits", type=options.bits, nargs="+", required=True,
                   help="one or more K in [2, 32]")
    q.add_argument("--limit", type=options.count)
    q.add_argument("--out", help="save the quantized network (one K only)")
    q.add_argument("--no-integer", action="store_true",
                   help="don't write the integer networks (RUN/spiking-intK.npz for every "
                        "K <= 16: integer weights, thresholds and pixel inputs)")
    add_common(q)

    e = sub.add_parser("export", help="write the spiking network as a NIR graph or an ONNX "
                                      "model")
    e.add_argument("run")
    out = e.add_mutually_exclusive_group(required=True)
    out.add_argument("--nir", help="output .nir file (a NIR graph; give this or --onnx)")
    out.add_argument("--onnx", help="output .onnx file (an ONNX model for onnxruntime and other "
                                    "runtimes; give this or --nir)")
    e.add_argument("--force", action="store_true",
                   help="convert even if some layer is below sharpness 1 (steps replace them)")
    e.add_argument("--target", default=None,
                   choices=["generic", "norse", "snntorch", "spikingjelly", "sinabs"],
                   help="with --nir: the importer the file is written for: picks the neuron "
                        "form, its time step and the compatibility settings that importer "
                        "needs (whetstone.export.TARGETS; default generic)")
    e.add_argument("--neuron", default=None, choices=["if", "threshold", "lif"],
                   help="with --nir: expert override of the target's neuron form (if: IF, "
                        "r = 1 / dt; threshold: Threshold nodes; lif: LIF, tau = dt); a form "
                        "the target's importer reads wrong is refused")
    e.add_argument("--bits", type=options.bits, default=None,
                   help="with --onnx: export the integer network of K-bit weights (K in "
                        "[2, 16]; whetstone.quantization.to_integer), computed exactly in "
                        "integer operators on uint8 pixels")
    e.add_argument("--dtype", default=None, choices=["float32", "float64"],
                   help="with --onnx: the float type of a float network (default float32)")
    add_common(e)


def _check_run(run_dir: str) -> Path:
    """``run_dir`` is an existing folder; else :class:`UsageError` naming it."""
    path = Path(run_dir)
    if not path.exists():
        raise UsageError(f"{run_dir}: no such run folder")
    if not path.is_dir():
        raise UsageError(f"{run_dir}: is a file, not a run folder")
    return path


def _network(run_dir: str, force: bool = False, has_force: bool = False,
             progress: Any = None) -> Any:
    """The run's spiking network: ``RUN/spiking.npz`` if it came from the run's current
    model (its recorded model checksum), else converted again (and kept there). ``force``
    converts a model below sharpness 1; ``has_force``: the command takes ``--force`` (the
    refusal names it, else ``whetstone convert RUN --force``)."""
    from ..runs.derived import model_hash
    from ..runs.io import MODEL_HASH_KEY
    from ..runtime import SpikingNetwork

    path = _check_run(run_dir) / SPIKING_FILE
    if path.is_file() and not force:
        net = SpikingNetwork.load(path)
        if net.metadata.get(MODEL_HASH_KEY) == model_hash(run_dir):
            return net
    # converted on first use (or when stale); kept in the run folder unless it is read-only
    keep = os.access(path.parent, os.W_OK | os.X_OK)
    return _convert(run_dir, path if keep else None, force, converting=has_force,
                    progress=progress)


def _convert(run_dir: str, path: Path | None, force: bool, converting: bool = True,
             progress: Any = None) -> Any:
    """Convert the run's model to threshold neurons and save it at ``path`` (``None``: keep
    it in memory only). A model below sharpness 1 is refused unless ``force`` (then one
    warning line on stderr)."""
    import torch

    from ..conversion import to_spiking
    from ..progress import stage
    from ..runs import load_run
    from ..runs.derived import model_hash, run_input_shape
    from ..runs.io import MODEL_HASH_KEY
    from ..sharpening.allocation import get_layer_sharpness

    run = load_run(_check_run(run_dir))
    sharpness = get_layer_sharpness(run.model)
    if not force and any(s < 1.0 for s in sharpness):
        levels = "/".join(f"{s:.2f}" for s in sharpness)
        how = ("pass --force to convert it as if every layer were at 1" if converting else
               f"'whetstone convert {run_dir} --force' converts it as if every layer were at 1")
        raise UsageError(f"{run_dir}: the model is not fully sharpened (layer sharpness "
                         f"{levels}), so no spiking network computes what it does; train "
                         f"until every layer is at 1, or {how}")
    example = torch.zeros((1, *run_input_shape(run_dir)))  # records the input shape
    with warnings.catch_warnings(record=True) as caught, \
            stage(progress, "conversion to threshold neurons"):
        warnings.simplefilter("always")
        net = to_spiking(run.model, example, force=force)
    net.metadata[MODEL_HASH_KEY] = model_hash(run_dir)  # binds the file to this model
    for warning in caught:
        print(f"whetstone: warning: {' '.join(str(warning.message).split())}", file=sys.stderr)
    if path is not None:
        net.save(path)
    return net


def _data(run_dir: str, dataset: str | None, split: str, limit: int | None,
          data_dir: str | None) -> tuple[Any, Any, str]:
    """Inputs and labels (numpy) of ``split`` of ``dataset`` (else the run's own data: a
    built-in dataset, or its data file, checked against the recorded sha256), and its name."""
    from ..runs import load_data, load_split

    name = _dataset(run_dir, dataset)
    config = _config(run_dir)
    data = (load_split(name, split, data_dir, limit) if name != config.dataset else
            load_data(config, split, data_dir, limit))
    return data.x.numpy(), data.y.numpy(), name


def _config(run_dir: str) -> Any:
    """The run's :class:`~whetstone.presets.TrainConfig`."""
    from ..presets import TrainConfig

    return TrainConfig.load(_check_run(run_dir) / "config.json")


def _dataset(run_dir: str, dataset: str | None) -> str:
    """The dataset a command runs the run's network on (``dataset``, else the run's own);
    :class:`UsageError` for a policy run or a dataset of another input shape."""
    from ..presets.build import input_shape
    from ..presets.schema import DATASET_SHAPES
    from ..runs.policy import is_policy_run

    if is_policy_run(_check_run(run_dir)):
        raise UsageError(f"{run_dir} is a reinforcement-learning policy: it has no dataset; "
                         f"'whetstone evaluate {run_dir}' runs it in its environment")
    config = _config(run_dir)
    learned = config.dataset
    name = dataset or learned
    if name != learned and DATASET_SHAPES[name] != input_shape(config):
        shape = "x".join(map(str, input_shape(config)))
        other = "x".join(map(str, DATASET_SHAPES[name]))
        raise UsageError(f"--dataset {name}: the run learned {learned} ({shape} inputs); "
                         f"{name} has {other} inputs")
    return name


def _emit(result: dict[str, Any], as_json: bool, lines: list[str]) -> int:
    print(json.dumps(result, indent=2) if as_json else "\n".join(lines))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    _check_run(args.run)
    out = options.check_output_file(args.out or Path(args.run) / SPIKING_FILE,
                                    "--out" if args.out else "output")
    net = _convert(args.run, out, args.force, progress=options.progress(args, "convert"))
    kinds = [type(layer).__name__ for layer in net.layers]
    return _emit({"network": str(out), "layers": kinds}, args.json,
                 [f"wrote {out}: {' -> '.join(kinds)}"])


def cmd_simulate(args: argparse.Namespace) -> int:
    import torch

    from ..presets import TrainConfig
    from ..presets.build import build_task
    from ..runs.folder import score_network

    progress = options.progress(args, "simulate")
    _dataset(args.run, args.dataset)  # a wrong --dataset is refused before any work
    net = _network(args.run, progress=progress)
    x, y, name = _data(args.run, args.dataset, args.split, args.limit, args.data_dir)
    task = build_task(TrainConfig.load(_check_run(args.run) / "config.json"))
    t0 = time.perf_counter()
    with progress.stage(f"spiking network on {name} {args.split}", len(y)):
        metrics = score_network(net, torch.from_numpy(x), torch.from_numpy(y), task,
                                progress=progress, engine=args.engine)
    seconds = time.perf_counter() - t0
    primary = task.meter().primary
    result = {"run": args.run, "dataset": name, "split": args.split, "samples": len(y),
              "task": task.name, "metric": primary, "metrics": metrics,
              "accuracy": metrics[primary], "seconds": seconds,
              "samples_per_second": len(y) / seconds, "engine": args.engine,
              "dtype": "float64" if args.engine == "numpy" else "float32"}
    scores = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float | int))
    return _emit(result, args.json, [
        f"spiking network (threshold neurons, one time step) on {name} {args.split}, "
        f"{len(y)} samples: {scores} ({result['samples_per_second']:.0f} samples/s, "
        f"{args.engine} engine, {result['dtype']})"])


def cmd_stats(args: argparse.Namespace) -> int:
    from ..metrics import network_stats, plot_stats
    from ..runs.io import MODEL_HASH_KEY, atomic_write_text

    _check_run(args.run)
    options.check_output_file(Path(args.run) / "stats.json", "output")
    options.check_output_file(args.plot or Path(args.run) / "stats.png",
                              "--plot" if args.plot else "output")
    progress = options.progress(args, "stats")
    _dataset(args.run, None)
    net = _network(args.run, progress=progress)
    x, y, name = _data(args.run, None, "test", args.limit, args.data_dir)
    labels = y if _task(args.run).discrete else None  # a reconstruction has no classes to score
    with progress.stage(f"spike statistics on {name} test", len(y)):
        measured = network_stats(net, x, labels, progress=progress)
    stats = {**measured, MODEL_HASH_KEY: net.metadata.get(MODEL_HASH_KEY)}
    atomic_write_text(Path(args.run) / "stats.json", json.dumps(stats, indent=2) + "\n")
    plot = Path(args.plot) if args.plot else Path(args.run) / "stats.png"
    plot_stats(stats, plot, title=f"{args.run} ({name} test, {len(y)} samples)")
    from .stats_text import stats_lines

    return _emit(stats, args.json, stats_lines(stats, f"{name} test", plot))


def cmd_quantize(args: argparse.Namespace) -> int:
    from ..quantization import quantization_sweep, quantize

    if args.out:
        if len(args.bits) != 1:
            raise UsageError(f"--out needs exactly one --bits value, got {len(args.bits)}")
        options.check_output_file(args.out, "--out")
    progress = options.progress(args, "quantize")
    _dataset(args.run, None)
    net = _network(args.run, progress=progress)
    x, y, _name = _data(args.run, None, "test", args.limit, args.data_dir)
    task = _task(args.run)
    if task.name != "classification":
        return _quantize_task(args, net, x, y, task, progress)
    with progress.stage(f"quantization sweep over {len(args.bits)} bit width(s)", len(y)):
        rows = quantization_sweep(net, x, y, bits=args.bits, progress=progress)
    if args.out:
        quantize(net, args.bits[0]).save(args.out)
    lines = [f"unquantized: {100 * rows[0]['reference_accuracy']:.2f} %"]
    lines += [f"{r['bits']:2d} bits: {100 * r['accuracy']:.2f} % "
              f"(same class as unquantized for {100 * r['agreement']:.2f} %)" for r in rows]
    integer = [] if args.no_integer else _integer_networks(args.run, net, x, y, args.bits)
    for r in integer:
        lines.append(f"{r['bits']:2d} bits, integer network: "
                     + (f"{100 * r['accuracy']:.2f} % on integer pixels, written to {r['file']}"
                        if r.get("file") else f"not written: {r['reason']}"))
    return _emit({"run": args.run, "rows": rows, "integer": integer}, args.json, lines)


def _integer_networks(run_dir: str, net: Any, x: Any, y: Any, bits: list[int]
                      ) -> list[dict[str, Any]]:
    """Write ``RUN/spiking-int{K}.npz`` (:func:`whetstone.quantization.to_integer`) for every
    ``K <= 16`` of ``bits`` and score it on the integer inputs; a network or data without an
    integer form gets the reason instead."""
    from ..quantization import MAX_INTEGER_BITS, integer_inputs, to_integer
    from ..runtime import run as run_network

    rows: list[dict[str, Any]] = []
    try:
        pixels = integer_inputs(x)
    except ValueError as exc:
        pixels, problem = None, f"the inputs are not pixels (uint8 / 255): {exc}"
    for k in bits:
        row: dict[str, Any] = {"bits": k}
        rows.append(row)
        if k > MAX_INTEGER_BITS:
            row["reason"] = f"integer networks have at most {MAX_INTEGER_BITS}-bit weights"
            continue
        if pixels is None:
            row["reason"] = problem
            continue
        try:
            inet = to_integer(net, k)
        except ValueError as exc:
            row["reason"] = str(exc)
            continue
        path = _check_run(run_dir) / f"spiking-int{k}.npz"
        inet.save(path)
        pred = run_network(inet, pixels).argmax(axis=1)
        row.update(file=str(path), accuracy=float((pred == y).mean()),
                   weight_dtype=inet.metadata["integer"]["weight_dtype"])
    return rows


def _task(run_dir: str) -> Any:
    from ..presets import TrainConfig
    from ..presets.build import build_task

    return build_task(TrainConfig.load(_check_run(run_dir) / "config.json"))


def _quantize_task(args: argparse.Namespace, net: Any, x: Any, y: Any, task: Any,
                   progress: Any) -> int:
    """The quantization sweep scored by the run's task (reconstruction, segmentation): every
    score of the task's meter per bit width, beside the unquantized network's, and how far the
    quantized outputs agree with the unquantized ones (:class:`whetstone.tasks.Agreement`)."""
    import numpy as np
    import torch

    from ..quantization import quantize
    from ..runs.folder import score_network
    from ..runtime import run as run_network
    from ..tasks import Agreement

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    reference = score_network(net, xt, yt, task)
    base = run_network(net, x, dtype=np.float64)
    rows = []
    for bits in progress.iterate(args.bits, desc="quantization sweep", unit="bit width"):
        qnet = quantize(net, bits)
        agreement = Agreement(task)
        agreement.update(torch.from_numpy(base),
                         torch.from_numpy(run_network(qnet, x, dtype=np.float64)))
        rows.append({"bits": bits, "metrics": score_network(qnet, xt, yt, task),
                     **agreement.compute()})
    if args.out:
        quantize(net, args.bits[0]).save(args.out)

    def text(metrics: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float | int))

    lines = [f"unquantized: {text(reference)}"]
    lines += [f"{r['bits']:2d} bits: {text(r['metrics'])} ("
              + (f"largest output difference from unquantized {r['max_abs_difference']:.3g}"
                 if "max_abs_difference" in r else
                 f"same decision as unquantized for {100 * r['agreement']:.2f} %") + ")"
              for r in rows]
    return _emit({"run": args.run, "task": task.name, "reference": reference, "rows": rows},
                 args.json, lines)


def cmd_export(args: argparse.Namespace) -> int:
    if (args.nir is None) == (args.onnx is None):
        got = "both" if args.nir is not None else "neither"
        raise UsageError(f"export writes one file: give exactly one of --nir FILE (a NIR graph) "
                         f"or --onnx FILE (an ONNX model); got {got}")
    if args.onnx is not None:
        return _export_onnx(args)
    for flag, value in (("--bits", args.bits), ("--dtype", args.dtype)):
        if value is not None:
            raise UsageError(f"{flag} is an option of --onnx; NIR graphs hold float weights")
    return _export_nir(args)


def _export_nir(args: argparse.Namespace) -> int:
    from ..export import resolve, to_nir
    from ..runs.derived import run_input_shape

    options.check_output_file(args.nir, "--nir")
    target = args.target or "generic"
    try:
        settings, neuron, dt = resolve(target, args.neuron)
    except ValueError as exc:
        raise UsageError(f"--neuron {args.neuron} --target {target}: {exc}") from None
    net = _network(args.run, force=args.force, has_force=True,
                   progress=options.progress(args, "export"))
    shape = run_input_shape(args.run)
    to_nir(net, args.nir, neuron=neuron, input_shape=shape, target=settings.name)
    return _emit({"nir": args.nir, "target": settings.name, "neuron": neuron, "dt": dt,
                  "loading": settings.loading, "batching": settings.batching}, args.json,
                 [f"wrote {args.nir} (NIR for {settings.name}: {neuron} neurons, one time "
                  f"step of dt = {dt:g})", f"load it with: {settings.loading}"])


def _export_onnx(args: argparse.Namespace) -> int:
    """``--onnx FILE``: the run's network (or, with ``--bits K``, its integer network) as an
    ONNX model whose input is the run's input ``(N, ...)`` and output the readout."""
    from ..runs.derived import run_input_shape

    for flag, value in (("--target", args.target), ("--neuron", args.neuron)):
        if value is not None:
            raise UsageError(f"{flag} is an option of --nir (the NIR importer and neuron "
                             f"form); an ONNX model has neither")
    if args.bits is not None and args.dtype is not None:
        raise UsageError("--dtype sets a float network's type; the integer network of --bits "
                         "is computed in integers")
    if args.bits is not None:
        from ..quantization import MAX_INTEGER_BITS

        if args.bits > MAX_INTEGER_BITS:
            raise UsageError(f"--bits {args.bits}: an integer network has 2 to "
                             f"{MAX_INTEGER_BITS}-bit weights")
    options.check_output_file(args.onnx, "--onnx")
    try:
        import onnx  # noqa: F401

        from ..export.onnx import to_onnx
    except ImportError:
        raise UsageError("--onnx needs the 'onnx' package: pip install 'whetstone[onnx]'"
                         ) from None
    net = _network(args.run, force=args.force, has_force=True,
                   progress=options.progress(args, "export"))
    if args.bits is not None:
        from ..quantization import to_integer

        try:
            net = to_integer(net, args.bits)
        except ValueError as exc:
            raise UsageError(f"--bits {args.bits}: {exc}") from None
    shape = run_input_shape(args.run)
    model = to_onnx(net, args.onnx, dtype=args.dtype, input_shape=shape)
    graph = model.graph
    input_type = _onnx_type_name(graph.input[0].type.tensor_type.elem_type)
    output_type = _onnx_type_name(graph.output[0].type.tensor_type.elem_type)
    kind = (f"integer network, {args.bits}-bit weights" if args.bits is not None else
            f"float network, {args.dtype or 'float32'}")
    ops = sorted({node.op_type for node in graph.node})
    return _emit({"onnx": args.onnx, "network": "integer" if args.bits is not None else "float",
                  "bits": args.bits, "input": {"name": graph.input[0].name, "type": input_type,
                                               "shape": ["N", *shape]},
                  "output": {"name": graph.output[0].name, "type": output_type,
                             "readout": net.readout},
                  "opset": int(model.opset_import[0].version), "operators": ops}, args.json,
                 [f"wrote {args.onnx} (ONNX, {kind}; input {graph.input[0].name} "
                  f"{input_type} (N, {', '.join(map(str, shape))}), output "
                  f"{graph.output[0].name} {output_type}: the {net.readout} readout)",
                  f"run it with: onnxruntime.InferenceSession({args.onnx!r}).run(None, "
                  f"{{'{graph.input[0].name}': x}})[0]"])


def _onnx_type_name(elem_type: int) -> str:
    import onnx

    return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


COMMANDS = {"convert": cmd_convert, "simulate": cmd_simulate, "stats": cmd_stats,
            "quantize": cmd_quantize, "export": cmd_export}
