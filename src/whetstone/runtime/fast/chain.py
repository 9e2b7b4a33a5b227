"""A chain of affine layers in one compiled call (numba): the dense networks.

For ``Flatten, (Affine, Threshold)+, [Affine | Decode]`` (every affine but the optional
last fused with its threshold) the whole network runs sample by sample inside one kernel:

``z_0 = 1[b_0 + x W_0^T >= theta_0]`` (real inputs, zeros skipped),
``z_l = 1[b_l + sum_{i: z_{l-1, i} = 1} W_l^T[i, :] >= theta_l]`` (gathers),

and the last layer writes either its spikes or its values ``y = b_L + sum_{i fired}
W_L^T[i, :]`` (a decode's logits).

Layout. The layers are packed into flat arrays so that a call passes a handful of plain
arrays (numba's dispatcher types a tuple of arrays slowly: tens of microseconds, more than
the whole network at batch 1): ``dims = (D_0, O_0, O_1, ..., O_L)``; ``wflat`` holds each
``W_l^T`` ``(dims[l], dims[l + 1])`` in C order from ``woff[l]``; ``bflat`` each ``b_l``
from ``boff[l]`` (``boff[l + 1] - boff[l] = dims[l + 1]``), ``tflat`` each ``theta_l`` from
the same offsets (unused for a last layer that does not fire). Per sample, the spikes of a
layer live in a uint8 buffer (ping-pong between two) and nothing is allocated per layer.
Every output is accumulated input by input in the order ``i = 0, 1, ...`` in the
accumulator's dtype (the dtype of ``bflat``), as in :mod:`.dense`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .dense import fire_row, spikes_row, values_row


@njit(cache=True, nogil=True)
def chain_sample(x: np.ndarray, wflat: np.ndarray, woff: np.ndarray, dims: np.ndarray,
                 bflat: np.ndarray, boff: np.ndarray, tflat: np.ndarray, fire_last: bool,
                 acc: np.ndarray, s_a: np.ndarray, s_b: np.ndarray, y: np.ndarray,
                 z: np.ndarray) -> None:
    """One sample ``x`` ``(D_0,)``: the last layer's spikes into ``z`` (``fire_last``) or
    its values into ``y``; ``acc``, ``s_a``, ``s_b`` are scratch as wide as the widest
    layer."""
    n_layers = dims.shape[0] - 1
    src, dst = s_a, s_b
    for layer in range(n_layers):
        n_in = dims[layer]
        n_out = dims[layer + 1]
        # per-layer views (one each per layer and sample): the row kernels vectorize over
        # the outputs of a 2-D W^T
        wt = wflat[woff[layer]:woff[layer] + n_in * n_out].reshape(n_in, n_out)
        b = bflat[boff[layer]:boff[layer] + n_out]
        if layer == 0:
            values_row(x, wt, b, acc)
        else:
            spikes_row(src, wt, b, acc)
        if layer < n_layers - 1 or fire_last:
            fire_row(acc, tflat[boff[layer]:boff[layer] + n_out], dst)
            src, dst = dst, src
    n_out = dims[n_layers]
    if fire_last:
        for o in range(n_out):
            z[o] = src[o]
    else:
        for o in range(n_out):
            y[o] = acc[o]


@njit(cache=True, nogil=True)
def chain(x: np.ndarray, wflat: np.ndarray, woff: np.ndarray, dims: np.ndarray,
          bflat: np.ndarray, boff: np.ndarray, tflat: np.ndarray, fire_last: bool,
          y: np.ndarray, z: np.ndarray) -> None:
    """Batch ``x`` ``(N, D_0)`` into ``y`` or ``z`` ``(N, O_L)`` (the other one a
    placeholder ``(N, 1)``), serial."""
    width = dims.max()
    acc = np.empty(width, bflat.dtype)
    s_a = np.empty(width, np.uint8)
    s_b = np.empty(width, np.uint8)
    for n in range(x.shape[0]):
        chain_sample(x[n], wflat, woff, dims, bflat, boff, tflat, fire_last, acc, s_a, s_b,
                     y[n], z[n])


@njit(cache=True, nogil=True, parallel=True)
def chain_par(x: np.ndarray, wflat: np.ndarray, woff: np.ndarray, dims: np.ndarray,
              bflat: np.ndarray, boff: np.ndarray, tflat: np.ndarray, fire_last: bool,
              y: np.ndarray, z: np.ndarray) -> None:
    """:func:`chain`, samples in parallel (scratch per sample)."""
    width = dims.max()
    for n in prange(x.shape[0]):
        acc = np.empty(width, bflat.dtype)
        s_a = np.empty(width, np.uint8)
        s_b = np.empty(width, np.uint8)
        chain_sample(x[n], wflat, woff, dims, bflat, boff, tflat, fire_last, acc, s_a, s_b,
                     y[n], z[n])
