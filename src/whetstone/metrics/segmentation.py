"""Segmentation scores from a confusion matrix: pixel accuracy and intersection over union.

The confusion matrix ``C`` (``(K, K)`` int64 for ``K`` classes) counts pixels by their
target class (row) and predicted class (column): ``C[t, p] = #{pixels: target = t, pred = p}``.
It is additive, so batches can be scored one at a time and their matrices summed. From it:

- ``pixel_accuracy = sum_k C[k, k] / sum_{t,p} C[t, p]``;
- ``iou[k] = C[k, k] / (sum_p C[k, p] + sum_t C[t, k] - C[k, k])`` (true positives over the
  union of target and prediction), ``None`` for a class absent from both;
- ``mean_iou`` = the mean of ``iou[k]`` over the classes that appear (not ``None``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["confusion_matrix", "segmentation_scores"]


def confusion_matrix(pred: np.ndarray, target: np.ndarray, classes: int) -> np.ndarray:
    """Count pixels by (target class, predicted class).

    Args:
        pred: predicted classes ``(N, H, W)`` (any shape equal to ``target``'s), integers in
            ``0..classes-1``.
        target: true classes, the same shape.
        classes: the number of classes ``K >= 1``.

    Returns:
        int64 ``(K, K)``: ``C[t, p]`` pixels of target ``t`` predicted as ``p``. Sum the
        matrices of several batches to score them together.

    Raises:
        ValueError: shapes that differ, non-integer arrays, values outside ``0..K-1`` or
            ``classes < 1``.
    """
    pred = np.asarray(pred)
    target = np.asarray(target)
    if isinstance(classes, bool) or not isinstance(classes, int | np.integer) or classes < 1:
        raise ValueError(f"classes must be an integer >= 1, got {classes!r}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {pred.shape} and "
                         f"{target.shape}")
    for name, a in (("pred", pred), ("target", target)):
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must hold integer classes, got dtype {a.dtype}")
        if a.size and (a.min() < 0 or a.max() >= classes):
            raise ValueError(f"{name} holds classes in [{int(a.min())}, {int(a.max())}], "
                             f"outside 0..{classes - 1}")
    k = int(classes)
    flat = target.reshape(-1).astype(np.int64) * k + pred.reshape(-1).astype(np.int64)
    return np.bincount(flat, minlength=k * k).reshape(k, k).astype(np.int64)


def segmentation_scores(confusion: np.ndarray) -> dict[str, Any]:
    """Pixel accuracy, per-class IoU and mean IoU of a confusion matrix (see the module).

    Args:
        confusion: ``(K, K)`` non-negative integer counts, rows target, columns prediction.

    Returns:
        ``{"pixel_accuracy": float, "iou": [float | None] * K, "mean_iou": float}``;
        ``iou[k]`` is ``None`` for a class that neither the target nor the prediction holds,
        and ``mean_iou`` averages the other classes.

    Raises:
        ValueError: not a square 2-D integer matrix, negative counts, or no pixels at all.
    """
    c = np.asarray(confusion)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
        raise ValueError(f"confusion must be a square (K, K) matrix, got shape {c.shape}")
    if not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"confusion must hold integer counts, got dtype {c.dtype}")
    if (c < 0).any():
        raise ValueError("confusion holds negative counts")
    c = c.astype(np.int64)
    total = int(c.sum())
    if total == 0:
        raise ValueError("confusion matrix is empty (no pixels counted)")
    tp = np.diag(c)
    union = c.sum(axis=0) + c.sum(axis=1) - tp
    iou: list[float | None] = [
        float(tp[k] / union[k]) if union[k] > 0 else None for k in range(len(c))]
    present = [v for v in iou if v is not None]
    return {
        "pixel_accuracy": float(tp.sum() / total),
        "iou": iou,
        "mean_iou": float(np.mean(present)),
    }
