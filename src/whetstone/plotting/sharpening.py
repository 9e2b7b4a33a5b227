"""The sharpening timeline: per-layer sharpness, loss and both accuracies against epoch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the annotation: importing the training package imports torch
    from ..training.history import History


def _pyplot():  # noqa: ANN202
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover
        raise ImportError("plots need matplotlib: pip install 'whetstone[plot]'") from exc
    return plt


DB_METRICS = ("psnr", "psnr_of_mse")
"""Scores drawn in decibels; every other score is a fraction drawn as a percentage."""


def plot_history(history: History, path: str | Path, title: str = "") -> Path:
    """Save a three-panel figure of ``history`` to ``path`` (PNG); returns the path."""
    plt = _pyplot()
    epochs = [r.epoch + 1 for r in history]
    fig, axes = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
    sharp = list(zip(*history.column("sharpness"), strict=True))
    for i, values in enumerate(sharp):
        axes[0].plot(epochs, values, marker=".", label=f"layer {i}")
    axes[0].set_ylabel("sharpness")
    axes[0].set_ylim(-0.05, 1.05)
    axes[0].legend(fontsize=7, ncol=4, loc="upper left")
    axes[1].plot(epochs, history.column("train_loss"), color="black")
    axes[1].set_ylabel("training loss")
    axes[1].set_yscale("log")
    last = history[-1] if history else None
    metric = last.metric if last is not None else "accuracy"
    val_metric = last.val_metric if last is not None else "accuracy"
    fraction = metric not in DB_METRICS  # fractions are drawn as percentages
    scale = 100.0 if fraction else 1.0
    names = (metric,) if metric == val_metric else (metric, val_metric)
    for name, label in (("train_accuracy", f"train {metric} (current s)"),
                        ("val_accuracy", f"validation {val_metric} (current s)"),
                        ("val_accuracy_binary", f"validation {val_metric} (fully binary)")):
        pts = [(e, scale * v) for e, v in zip(epochs, history.column(name), strict=True)
               if v is not None]
        if pts:
            xs, ys = zip(*pts, strict=True)
            axes[2].plot(xs, ys, marker=".", label=label)
    unit = " (%)" if fraction else " (dB)"
    axes[2].set_ylabel(" / ".join(n.replace("_", " ") for n in names) + unit)
    axes[2].set_xlabel("epoch")
    axes[2].legend(fontsize=8)
    lo = [scale * v for v in history.column("val_accuracy_binary") if v is not None]
    if lo and fraction:
        axes[2].set_ylim(max(0.0, min(lo[-1], max(lo)) - 10), 100.5)
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:  # noqa: ANN001
    """Save ``fig`` as PNG at ``path`` through a temporary file renamed into place (a reader
    never sees half a figure), close it and return the path."""
    plt = _pyplot()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_activations(path: str | Path, sharpness_levels: tuple[float, ...] = (0.0, 0.5, 0.8, 0.95,
                                                                              1.0)) -> Path:
    """The bounded ReLU and the sigmoid at several sharpness levels (the README figure)."""
    import torch

    from ..nn import functional as F

    plt = _pyplot()
    x = torch.linspace(-0.5, 1.5, 2001)
    xs = torch.linspace(-2.0, 2.0, 2001)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for s in sharpness_levels:
        axes[0].plot(x, F.brelu(x, s), label=f"s = {s:g}")
        axes[1].plot(xs, F.sigmoid(xs, s), label=f"s = {s:g}")
    axes[0].set_title("SpikingBReLU: clip((x-0.5)/(1-s+0.001)+0.5, 0, 1)", fontsize=9)
    axes[1].set_title("SpikingSigmoid: 1/(1+exp(-k(s) x))", fontsize=9)
    for ax in axes:
        ax.set_xlabel("pre-activation x")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("activation")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
