"""Reconstruction (autoencoders): the output reproduces the input image.

Output and target are ``(N, D)``, the image flattened (``D = C H W``), values in ``[0, 1]``.
Per image ``i``: ``mse_i = mean_d (out_id - x_id)^2`` and
``psnr_i = 10 log10(1 / max(mse_i, 1e-10))`` (peak value 1). The split's ``mse`` is the mean
over all values, ``psnr`` the mean of the per-image PSNRs, ``psnr_of_mse`` the PSNR of the
split's MSE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from .base import Meter, Task

MSE_FLOOR = 1e-10
"""Smallest per-image MSE used in the PSNR (a perfect reconstruction scores 100 dB)."""


def psnr(output: Tensor, target: Tensor) -> Tensor:
    """Per-image PSNR in dB, ``(N, D), (N, D) -> (N,)``, peak value 1."""
    mse = (output.double() - target.double()).square().mean(dim=1)
    return -10.0 * torch.log10(mse.clamp_min(MSE_FLOOR))


class ReconstructionMeter(Meter):
    """``mse``, ``psnr`` (mean per-image PSNR, dB) and ``psnr_of_mse`` over a split."""

    primary: ClassVar[str] = "psnr"

    def __init__(self) -> None:
        self.squared = 0.0
        self.values = 0
        self.psnr_sum = 0.0
        self.images = 0

    def update(self, output: Tensor, target: Tensor) -> None:
        output, target = output.reshape(len(output), -1), target.reshape(len(target), -1)
        if output.shape != target.shape:
            raise ValueError(f"reconstruction of shape {tuple(output.shape)} for images of "
                             f"shape {tuple(target.shape)}")
        self.squared += float((output.double() - target.double()).square().sum())
        self.values += int(target.numel())
        self.psnr_sum += float(psnr(output, target).sum())
        self.images += len(target)

    def compute(self) -> dict[str, Any]:
        if self.images == 0:
            raise ValueError("reconstruction scores of no images")
        mse = self.squared / self.values
        return {"mse": mse, "psnr": self.psnr_sum / self.images,
                "psnr_of_mse": -10.0 * math.log10(max(mse, MSE_FLOOR))}


@dataclass(frozen=True)
class Reconstruction(Task):
    """Mean squared error between the output ``(N, D)`` and the flattened input; the score
    is PSNR, the decision the output values themselves."""

    name: ClassVar[str] = "reconstruction"
    metric: ClassVar[str] = "psnr"
    discrete: ClassVar[bool] = False

    def target(self, x: Tensor, y: Tensor) -> Tensor:
        return x.reshape(len(x), -1)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return torch.nn.functional.mse_loss(output, target)

    def score(self, output: Tensor, target: Tensor) -> Tensor:
        return psnr(output, target).sum()

    def meter(self) -> ReconstructionMeter:
        return ReconstructionMeter()

    def decision(self, output: Tensor) -> Tensor:
        return output
