"""Classification: class logits (the key decode's, or any ``(N, C)`` scores) against labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from .base import Meter, Task


class AccuracyMeter(Meter):
    """``accuracy``: the fraction of samples whose argmax class equals the label."""

    primary: ClassVar[str] = "accuracy"

    def __init__(self) -> None:
        self.correct = 0
        self.total = 0

    def update(self, output: Tensor, target: Tensor) -> None:
        self.correct += int((output.argmax(dim=1) == target).sum())
        self.total += int(target.numel())

    def compute(self) -> dict[str, Any]:
        if self.total == 0:
            raise ValueError("accuracy of no samples")
        return {"accuracy": self.correct / self.total}


@dataclass(frozen=True)
class Classification(Task):
    """Cross-entropy on the logits ``(N, C)`` against labels ``(N,)`` (optionally
    label-smoothed); the score is accuracy, the decision the argmax class."""

    label_smoothing: float = 0.0
    name: ClassVar[str] = "classification"
    metric: ClassVar[str] = "accuracy"
    discrete: ClassVar[bool] = True

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return torch.nn.functional.cross_entropy(output, target,
                                                 label_smoothing=self.label_smoothing)

    def score(self, output: Tensor, target: Tensor) -> Tensor:
        return (output.argmax(dim=1) == target).sum()

    def meter(self) -> AccuracyMeter:
        return AccuracyMeter()

    def decision(self, output: Tensor) -> Tensor:
        return output.argmax(dim=1)

    def chance(self, output: Tensor) -> float | None:
        classes = int(output.shape[-1])
        return 1.0 / classes if classes >= 2 else None

    def config(self) -> dict[str, Any]:
        return {"label_smoothing": self.label_smoothing}
