"""Study 6 (the paper's weight-precision question): accuracy against weight bits, per preset.

The sweep itself is the spiking benchmark's (``benchmarks.spiking``: ``whetstone.quantization``
at K = 2..16 bits, integer weights and thresholds, run by the numpy runtime); this study runs
it for every given run that has no sweep yet and draws all presets on one figure.

    python -m benchmarks.precision mnist-dense=runs/bench/mnist-dense-sharpened-seed0 \\
        mnist-cnn-cpu=runs/bench/mnist-cnn-cpu-sharpened-seed0 --samples 2000
    python -m benchmarks.precision --quick      # tiny dense pair, 500 samples
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import RESULTS, environment, write_json


def _sweep_of(label: str) -> dict[str, Any] | None:
    path = RESULTS / f"spiking-{label}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return data if "quantization" in data else None


def plot(rows: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, sweep in rows.items():
        line = ax.plot([r["bits"] for r in sweep], [100 * r["accuracy"] for r in sweep],
                       marker="o", ms=3, label=label)[0]
        ax.axhline(100 * sweep[0]["reference_accuracy"], color=line.get_color(), ls=":", lw=0.8)
    ax.set_xlabel("weight bits (integer weights and thresholds)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against weight precision (dotted: full precision)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("runs", nargs="*", help="LABEL=RUN_DIR pairs (sharpened runs)")
    p.add_argument("--samples", type=int, default=10_000, help="test samples per sweep")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    from . import spiking

    pairs = [r.split("=", 1) for r in args.runs]
    if args.quick:
        from . import accuracy

        accuracy.main(["--preset", "mnist-dense", "--quick", "--no-baseline"])
        pairs = [["mnist-dense-quick", "runs/bench/mnist-dense-quick-sharpened-seed0"]]
        args.samples = 500
    if not pairs:
        p.error("give LABEL=RUN_DIR pairs, or --quick")
    for label, run in pairs:
        if _sweep_of(label) is None:
            spiking.main([run, "--label", label, "--skip", "speed", "stats",
                          "--quant-samples", str(args.samples)])
    sweeps = {label: _sweep_of(label) for label, _ in pairs}
    result = {"study": "precision", "quick": args.quick, "environment": environment(),
              "sweeps": {label: {"run": s["run"],
                                 "samples": s.get("quant_samples", s["equality"]["samples"]),
                                 "rows": s["quantization"], "environment": s["environment"]}
                         for label, s in sweeps.items() if s is not None}}
    name = "precision-quick" if args.quick else "precision"
    write_json(RESULTS / f"{name}.json", result)
    plot({k: v["rows"] for k, v in result["sweeps"].items()}, RESULTS / f"{name}.png")
    print(f"wrote {RESULTS / (name + '.json')}")


def section() -> list[str]:
    """BENCHMARKS.md lines from ``results/precision.json``."""
    from .report import _env_line

    path = RESULTS / "precision.json"
    if not path.exists():
        return []
    res = json.loads(path.read_text())
    sweeps = res["sweeps"]
    bits = [r["bits"] for r in next(iter(sweeps.values()))["rows"]]
    out = ["## Study 6: accuracy against weight precision", "",
           "Post-training symmetric per-layer quantization (`whetstone quantize`): integer "
           "weights and integer thresholds, run by the numpy runtime on the spiking network.",
           "", "| run | test samples | full precision | " + " | ".join(f"{b} bits" for b in bits)
           + " |", "|---" * (len(bits) + 3) + "|"]
    for label, s in sweeps.items():
        rows = {r["bits"]: r for r in s["rows"]}
        out.append(f"| {label} | {s['samples'] or ''} | "
                   f"{100 * s['rows'][0]['reference_accuracy']:.2f} | "
                   + " | ".join(f"{100 * rows[b]['accuracy']:.2f}" if b in rows else ""
                                for b in bits) + " |")
    out += ["", "![accuracy against bits](benchmarks/results/precision.png)", ""]
    out += [f"- **{label}** (`{s['run']}`): {_env_line(s['environment'])}"
            for label, s in sweeps.items()]
    return [*out, ""]


if __name__ == "__main__":
    main()
