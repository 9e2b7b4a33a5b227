"""The learning-curve figure: episode return against environment step, sharpness on a
second y-axis."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():  # noqa: ANN202
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install 'whetstone[plot]'") from exc
    return plt


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean ``m[i] = mean(v[max(0, i - window + 1) .. i])`` (same length as
    ``values``)."""
    v = np.asarray(values, dtype=np.float64)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    c = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_learning_curve(curves: Mapping[str, Sequence[Mapping[str, Any]]], path: str | Path,
                        title: str = "", window: int = 20,
                        sharpness_of: str | None = "whetstone") -> Path:
    """Save the learning curves to ``path`` (PNG); returns the path.

    Args:
        curves: label -> curve (a list of :data:`whetstone.rl.CurvePoint`, or any dicts with
            ``step``, ``return`` and ``sharpness``). Each curve is drawn as its episode returns
            (faint dots) and their trailing mean over ``window`` episodes (a line).
        path: the PNG file.
        title: figure title.
        window: episodes of the trailing mean.
        sharpness_of: label whose model sharpness is drawn on the second y-axis (``None``:
            none).

    Raises:
        ImportError: matplotlib is not installed.
        ValueError: no curve has any episode, or ``sharpness_of`` is not a label.
    """
    if not any(len(c) for c in curves.values()):
        raise ValueError("no episodes to plot")
    if sharpness_of is not None and sharpness_of not in curves:
        raise ValueError(f"sharpness_of={sharpness_of!r} is not one of {sorted(curves)}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, curve) in enumerate(curves.items()):
        if not curve:
            continue
        steps = [p["step"] for p in curve]
        returns = [p["return"] for p in curve]
        color = colors[i % len(colors)]
        ax.scatter(steps, returns, s=3, alpha=0.25, color=color)
        ax.plot(steps, moving_average(returns, window), color=color,
                label=f"{label} (mean of {window} episodes)")
    ax.set_xlabel("environment step")
    ax.set_ylabel("episode return (training, with exploration)")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if sharpness_of is not None and curves[sharpness_of]:
        ax2 = ax.twinx()
        curve = curves[sharpness_of]
        line = ax2.plot([p["step"] for p in curve], [p["sharpness"] for p in curve],
                        color="black", linestyle="--", label=f"{sharpness_of} sharpness")
        ax2.set_ylabel("model sharpness")
        ax2.set_ylim(-0.02, 1.05)
        handles += line
        labels.append(line[0].get_label())
    ax.legend(handles, labels, loc="upper left", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
