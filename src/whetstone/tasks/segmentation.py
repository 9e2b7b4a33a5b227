"""Semantic segmentation: per-pixel class scores ``(N, K, H, W)`` against masks ``(N, H, W)``.

The loss is the per-pixel cross-entropy averaged over pixels, optionally class-weighted:
with ``background_weight`` ``w_0`` the background's pixels count ``w_0`` times a digit's,
``loss = sum_p w_{t_p} CE_p / sum_p w_{t_p}`` (sparse foreground: the all-background answer
otherwise holds training at its local minimum for long); the decision is the argmax
class of each pixel. A split is scored from its confusion matrix ``M`` (``M[t, p]``: pixels
of true class ``t`` predicted ``p``): pixel accuracy ``trace(M) / sum(M)`` and per class
``IoU_k = M[k, k] / (sum_p M[k, p] + sum_t M[t, k] - M[k, k])``, their mean over the classes
present (:func:`whetstone.metrics.segmentation.segmentation_scores`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from .base import Meter, Task


class ConfusionMeter(Meter):
    """Pixel accuracy, per-class and mean IoU from a running confusion matrix."""

    primary: ClassVar[str] = "mean_iou"

    def __init__(self, classes: int) -> None:
        self.classes = classes
        self.confusion = torch.zeros(classes, classes, dtype=torch.int64)

    def update(self, output: Tensor, target: Tensor) -> None:
        if output.ndim != target.ndim + 1 or output.shape[1] != self.classes:
            raise ValueError(f"per-pixel scores of shape {tuple(output.shape)} for masks of "
                             f"shape {tuple(target.shape)} and {self.classes} classes")
        pred = output.argmax(dim=1).reshape(-1).long().cpu()
        true = target.reshape(-1).long().cpu()
        if true.numel() and (int(true.min()) < 0 or int(true.max()) >= self.classes):
            raise ValueError(f"mask values must lie in [0, {self.classes})")
        self.confusion += torch.bincount(true * self.classes + pred,
                                         minlength=self.classes ** 2).view(self.classes, -1)

    def compute(self) -> dict[str, Any]:
        from ..metrics.segmentation import segmentation_scores

        if int(self.confusion.sum()) == 0:
            raise ValueError("segmentation scores of no pixels")
        return segmentation_scores(self.confusion.numpy())


@dataclass(frozen=True)
class Segmentation(Task):
    """Per-pixel cross-entropy over ``classes`` (class 0, the background, weighted by
    ``background_weight``); the score is each image's pixel accuracy."""

    classes: int = 11
    background_weight: float = 1.0
    name: ClassVar[str] = "segmentation"
    metric: ClassVar[str] = "pixel_accuracy"
    discrete: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not 0.0 < self.background_weight <= 1.0:
            raise ValueError(f"background_weight must lie in (0, 1], got "
                             f"{self.background_weight}")

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        if self.background_weight == 1.0:
            return torch.nn.functional.cross_entropy(output, target)
        weight = torch.ones(self.classes, dtype=output.dtype, device=output.device)
        weight[0] = self.background_weight
        return torch.nn.functional.cross_entropy(output, target, weight=weight)

    def score(self, output: Tensor, target: Tensor) -> Tensor:
        hits = (output.argmax(dim=1) == target).reshape(len(target), -1)
        return hits.double().mean(dim=1).sum()

    def meter(self) -> ConfusionMeter:
        return ConfusionMeter(self.classes)

    def decision(self, output: Tensor) -> Tensor:
        return output.argmax(dim=1)

    def config(self) -> dict[str, Any]:
        return {"classes": self.classes, "background_weight": self.background_weight}
