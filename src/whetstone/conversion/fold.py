"""Folding an eval-mode BatchNorm into the Linear / Conv2d before it (method.md §4).

BatchNorm in eval mode is the per-channel affine map ``y = g (x - mu) / sqrt(var + eps) + beta``
(running statistics, its own ``eps``). After ``x = W u + b`` it folds into the layer:

    s  = g / sqrt(var + eps)
    W' = W * s            (s scales output channel o: row o of a Linear weight, filter o of a
                           Conv2d weight)
    b' = (b - mu) * s + beta

The fold is computed in float64 from the float32 parameters, so ``W' u + b'`` is the exact
real value of ``BN(W u + b)`` up to float64 rounding.
"""

from __future__ import annotations

import numpy as np
from torch import nn


def batchnorm_scale_shift(bn: nn.modules.batchnorm._BatchNorm) -> tuple[np.ndarray, np.ndarray]:
    """``(s, t)`` with ``BN(x) = s x + t`` per channel (float64): ``s = g / sqrt(var + eps)``,
    ``t = beta - mu s``. Raises ``ValueError`` for a BatchNorm without running statistics."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("BatchNorm without running statistics (track_running_stats=False) "
                         "cannot be folded")
    mu = bn.running_mean.detach().cpu().double().numpy()
    var = bn.running_var.detach().cpu().double().numpy()
    gamma = bn.weight.detach().cpu().double().numpy() if bn.weight is not None else 1.0
    beta = bn.bias.detach().cpu().double().numpy() if bn.bias is not None else 0.0
    s = gamma / np.sqrt(var + float(bn.eps))
    return np.broadcast_to(s, mu.shape).copy(), beta - mu * s


def fold_batchnorm(
    weight: np.ndarray, bias: np.ndarray, bn: nn.modules.batchnorm._BatchNorm
) -> tuple[np.ndarray, np.ndarray]:
    """``(W', b')`` (float64) of ``BN(W x + b)``; ``weight`` ``(out, ...)``, ``bias`` ``(out,)``."""
    s, t = batchnorm_scale_shift(bn)
    if s.shape != (weight.shape[0],):
        raise ValueError(f"BatchNorm has {s.shape[0]} features but the layer before it has "
                         f"{weight.shape[0]} outputs")
    w = np.asarray(weight, dtype=np.float64) * s.reshape((-1,) + (1,) * (weight.ndim - 1))
    b = np.asarray(bias, dtype=np.float64) * s + t
    return w, b
