"""Distillation from a conventional teacher: the student's loss mixes labels and soft targets.

The teacher is usually the never-sharpened twin of the student (same network, sharpness 0
throughout), whose decode logits carry more than the label: which classes it finds alike.
With student logits ``z_s``, teacher logits ``z_t`` (both ``(N, C)``), labels ``y`` ``(N,)``,
temperature ``T`` and weight ``w``::

    loss = (1 - w) * L_label(z_s, y) + w * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

``L_label`` is the training loop's label loss (cross-entropy, optionally label-smoothed); the
``T^2`` factor keeps the soft term's gradient on the label term's scale as ``T`` grows (Hinton,
Vinyals and Dean, 2015). The KL divergence is averaged over the batch. Whetstone's decode
logits span ``[-W, W]`` for a population of ``W`` neurons per class code, so useful
temperatures are larger than for ordinary networks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, label_loss: Tensor,
                      temperature: float, weight: float) -> Tensor:
    """``(1 - w) * label_loss + w * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``.

    ``student_logits`` and ``teacher_logits``: ``(N, C)``; ``label_loss``: a scalar, the loss
    of the student against the labels; the KL term is the batch mean of the per-sample sums.
    """
    log_p_student = torch.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = torch.log_softmax(teacher_logits.detach() / temperature, dim=1)
    kl = torch.nn.functional.kl_div(log_p_student, log_p_teacher, reduction="batchmean",
                                    log_target=True)
    return (1.0 - weight) * label_loss + weight * temperature ** 2 * kl


@dataclass(frozen=True)
class Distillation:
    """How a student learns from its teacher: ``temperature`` ``T > 0`` and ``weight`` ``w`` in
    ``[0, 1]`` of :func:`distillation_loss` (``w = 0``: labels only, ``w = 1``: teacher only)."""

    temperature: float = 4.0
    weight: float = 0.5

    def __post_init__(self) -> None:
        if not self.temperature > 0 or self.temperature == float("inf"):
            raise ValueError(f"distillation temperature must be positive and finite, got "
                             f"{self.temperature}")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"distillation weight must lie in [0, 1], got {self.weight}")

    def __call__(self, student_logits: Tensor, teacher_logits: Tensor,
                 label_loss: Tensor) -> Tensor:
        return distillation_loss(student_logits, teacher_logits, label_loss,
                                 self.temperature, self.weight)
