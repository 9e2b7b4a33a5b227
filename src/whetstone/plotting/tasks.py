"""Figures of what a network outputs: reconstructions beside their originals, predicted
segmentation masks beside the true ones."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .sharpening import _pyplot, save_figure


def plot_reconstructions(originals: np.ndarray, rows: Mapping[str, np.ndarray],
                         path: str | Path, title: str = "") -> Path:
    """A grid: the ``originals`` ``(n, H, W)`` in the first row, then one row per entry of
    ``rows`` (label: ``(n, H, W)`` reconstructions of the same images, values clipped to
    [0, 1]); saved to ``path`` (PNG, written to a temporary file, then renamed)."""
    plt = _pyplot()
    n = len(originals)
    labelled = [("original", originals), *rows.items()]
    fig, axes = plt.subplots(len(labelled), n, figsize=(1.1 * n + 1.2, 1.2 * len(labelled)),
                             squeeze=False)
    for r, (label, images) in enumerate(labelled):
        if images.shape != originals.shape:
            raise ValueError(f"{label}: shape {images.shape}, the originals {originals.shape}")
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(np.clip(images[c], 0.0, 1.0), cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_segmentation(images: np.ndarray, masks: np.ndarray, predictions: Mapping[str, np.ndarray],
                      path: str | Path, classes: int = 11, title: str = "") -> Path:
    """Columns of samples; rows: the input ``images`` ``(n, H, W)``, the true ``masks``
    ``(n, H, W)`` (class indices, 0 background) and one row per entry of ``predictions``
    (label: predicted masks ``(n, H, W)``), colour-coded by class (background black)."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap

    colours = plt.get_cmap("tab10")(np.arange(10))[:, :3]
    cmap = ListedColormap(np.vstack([[0.0, 0.0, 0.0], colours])[:classes])
    n = len(images)
    labelled = [("true", masks), *predictions.items()]
    fig, axes = plt.subplots(1 + len(labelled), n, figsize=(1.3 * n + 1.2,
                                                            1.35 * (1 + len(labelled))),
                             squeeze=False)
    for c in range(n):
        axes[0, c].imshow(images[c], cmap="gray", vmin=0.0, vmax=1.0)
        for r, (_label, values) in enumerate(labelled, start=1):
            axes[r, c].imshow(values[c], cmap=cmap, vmin=-0.5, vmax=classes - 0.5,
                              interpolation="nearest")
    for r, label in enumerate(["input", *(label for label, _ in labelled)]):
        axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(f"{title}  (colours: digits 0-9; black: background)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
