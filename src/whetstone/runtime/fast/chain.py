"""A chain of affine layers in one compiled call (numba): the dense networks.

For ``Flatten, (Affine, Threshold)+, [Affine | Decode]`` (every affine but the optional
last fused with its threshold) the whole network runs sample by sample inside one kernel:

``z_0 = 1[b_0 + x W_0^T >= theta_0]`` (real inputs, zeros skipped),
``z_l = 1[b_l + sum_{i: z_{l-1, i} = 1} W_l^T[i, :] >= theta_l]`` (gathers),

and the last layer writes either its spikes or its values ``y = b_L + sum_{i fired}
W_L^T[i, :]`` (a decode's logits). The layers' ``W^T`` are a tuple of arrays of one dtype
(float32 / float64, or the integer network's weight dtype), the biases and thresholds
tuples in the accumulator's dtype (thresholds: one dtype), so numba compiles one loop over
the layers. The spikes of a layer live in a per-sample uint8 buffer (ping-pong between
two), nothing is allocated per layer, and a batch of one costs one call: this is what
makes batch 1 cheap. Arithmetic as in :mod:`.dense` (same row kernels).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .dense import fire_row, spikes_row, values_row


@njit(cache=True, nogil=True)
def chain_sample(x: np.ndarray, wts: tuple, bs: tuple, thetas: tuple, fire_last: bool,
                 acc: np.ndarray, s_a: np.ndarray, s_b: np.ndarray, y: np.ndarray,
                 z: np.ndarray) -> None:
    """One sample ``x`` ``(D_0,)``: spikes of the last layer into ``z`` (``fire_last``) or
    its values into ``y``; ``acc``, ``s_a``, ``s_b`` are scratch at least as wide as the
    widest layer."""
    n_layers = len(wts)
    values_row(x, wts[0], bs[0], acc)
    if n_layers == 1 and not fire_last:
        for o in range(y.shape[0]):
            y[o] = acc[o]
        return
    fire_row(acc, thetas[0], s_a)
    src, dst = s_a, s_b
    for layer in range(1, n_layers):
        spikes_row(src, wts[layer], bs[layer], acc)
        if layer < n_layers - 1 or fire_last:
            fire_row(acc, thetas[layer], dst)
            src, dst = dst, src
    if fire_last:
        for o in range(z.shape[0]):
            z[o] = src[o]
    else:
        for o in range(y.shape[0]):
            y[o] = acc[o]


@njit(cache=True, nogil=True)
def chain(x: np.ndarray, wts: tuple, bs: tuple, thetas: tuple, fire_last: bool,
          acc: np.ndarray, y: np.ndarray, z: np.ndarray) -> None:
    """Batch ``x`` ``(N, D_0)`` into ``y`` or ``z`` ``(N, O_L)``, serial (``acc``: scratch
    template, as wide as the widest layer, in the accumulator dtype)."""
    width = acc.shape[0]
    s_a = np.empty(width, np.uint8)
    s_b = np.empty(width, np.uint8)
    for n in range(x.shape[0]):
        chain_sample(x[n], wts, bs, thetas, fire_last, acc, s_a, s_b, y[n], z[n])


@njit(cache=True, nogil=True, parallel=True)
def chain_par(x: np.ndarray, wts: tuple, bs: tuple, thetas: tuple, fire_last: bool,
              acc: np.ndarray, y: np.ndarray, z: np.ndarray) -> None:
    """:func:`chain`, samples in parallel (scratch per sample)."""
    width = acc.shape[0]
    for n in prange(x.shape[0]):
        a = np.empty_like(acc)
        s_a = np.empty(width, np.uint8)
        s_b = np.empty(width, np.uint8)
        chain_sample(x[n], wts, bs, thetas, fire_last, a, s_a, s_b, y[n], z[n])
