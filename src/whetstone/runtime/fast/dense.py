"""Affine kernels of the fast engine (numba): one sample per row, batches over ``prange``.

Notation: ``x`` the input row ``(D,)``, ``wt = W^T`` ``(D, O)`` (row ``i`` holds the
synapses leaving input ``i``, contiguous over the outputs), ``b`` ``(O,)`` in the
accumulator dtype, ``theta`` ``(O,)``.

- :func:`affine_values`: real (or integer, e.g. uint8 pixel) inputs,
  ``y = b + sum_{i: x_i != 0} x_i wt[i, :]`` (zero inputs are skipped: most pixels of a
  digit are 0).
- :func:`affine_spikes`: binary inputs (uint8 0/1), ``y = b + sum_{i: x_i = 1} wt[i, :]``:
  a gather of the rows whose input fired, additions only.

Each comes in two forms: ``*_fire`` fuses the following ``Threshold`` and writes the spikes
``z = 1[y >= theta]`` (ties fire) as uint8 ``(N, O)``; ``*_out`` writes ``y`` ``(N, O)``.
The batch loop runs in parallel (``prange``) in the ``*_par`` variants and serially in the
others (batch 1 pays no thread start). Every output is accumulated in the accumulator's
dtype (float32, float64, int32 or int64), four input rows at a time as
``acc + ((r_a + r_b) + (r_c + r_d))`` in increasing ``i``: exact for integers within the
accumulator's range; for floats another rounding order than the reference's (whose BLAS
has its own), a difference in the last bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def values_row(x: np.ndarray, wt: np.ndarray, b: np.ndarray, acc: np.ndarray) -> None:
    """``acc = b + sum_{i: x_i != 0} x_i wt[i, :]`` for one row ``x`` ``(D,)`` (``acc`` at
    least ``O`` long: only ``acc[:O]`` is written). The nonzero inputs are listed first,
    then added four rows at a time, ``acc += (x_a wt[a] + x_b wt[b]) + (x_c wt[c] +
    x_d wt[d])`` (one load and store of ``acc`` per four rows), the rest one by one."""
    n_out = wt.shape[1]
    nz = np.empty(wt.shape[0], np.int64)
    m = 0
    for i in range(wt.shape[0]):
        if x[i] != 0:
            nz[m] = i
            m += 1
    for o in range(n_out):
        acc[o] = b[o]
    g = 0
    while g + 4 <= m:
        i0, i1, i2, i3 = nz[g], nz[g + 1], nz[g + 2], nz[g + 3]
        v0, v1, v2, v3 = x[i0], x[i1], x[i2], x[i3]
        for o in range(n_out):
            acc[o] += (v0 * wt[i0, o] + v1 * wt[i1, o]) + (v2 * wt[i2, o] + v3 * wt[i3, o])
        g += 4
    while g < m:
        i0 = nz[g]
        v0 = x[i0]
        for o in range(n_out):  # direct indexing: a row view would cost a refcount
            acc[o] += v0 * wt[i0, o]
        g += 1


@njit(cache=True, nogil=True)
def spikes_row(s: np.ndarray, wt: np.ndarray, b: np.ndarray, acc: np.ndarray) -> None:
    """``acc = b + sum_{i: s_i = 1} wt[i, :]`` for one spike row ``s`` (uint8, at least
    ``D`` long: only ``s[:D]`` is read; ``acc`` at least ``O`` long). The active rows are
    listed first, then added four at a time, ``acc += (wt[a] + wt[b]) + (wt[c] + wt[d])``,
    the rest one by one."""
    n_out = wt.shape[1]
    on = np.empty(wt.shape[0], np.int64)
    m = 0
    for i in range(wt.shape[0]):
        if s[i]:
            on[m] = i
            m += 1
    for o in range(n_out):
        acc[o] = b[o]
    g = 0
    while g + 4 <= m:
        i0, i1, i2, i3 = on[g], on[g + 1], on[g + 2], on[g + 3]
        for o in range(n_out):
            acc[o] += (wt[i0, o] + wt[i1, o]) + (wt[i2, o] + wt[i3, o])
        g += 4
    while g < m:
        i0 = on[g]
        for o in range(n_out):
            acc[o] += wt[i0, o]
        g += 1


@njit(cache=True, nogil=True)
def fire_row(acc: np.ndarray, theta: np.ndarray, z: np.ndarray) -> None:
    """``z = 1[acc >= theta]`` as uint8 (ties fire), over the ``len(theta)`` first entries."""
    for o in range(theta.shape[0]):
        z[o] = 1 if acc[o] >= theta[o] else 0


@njit(cache=True, nogil=True)
def affine_values_fire(x: np.ndarray, wt: np.ndarray, b: np.ndarray, theta: np.ndarray,
                        z: np.ndarray) -> None:
    """``z[n] = 1[b + x[n] W^T >= theta]`` over real rows ``x`` ``(N, D)``, serial."""
    acc = np.empty_like(b)
    for n in range(x.shape[0]):
        values_row(x[n], wt, b, acc)
        fire_row(acc, theta, z[n])


@njit(cache=True, nogil=True, parallel=True)
def affine_values_fire_par(x: np.ndarray, wt: np.ndarray, b: np.ndarray, theta: np.ndarray,
                        z: np.ndarray) -> None:
    """:func:`affine_values_fire`, samples in parallel."""
    for n in prange(x.shape[0]):
        acc = np.empty_like(b)
        values_row(x[n], wt, b, acc)
        fire_row(acc, theta, z[n])


@njit(cache=True, nogil=True)
def affine_values_out(x: np.ndarray, wt: np.ndarray, b: np.ndarray, y: np.ndarray) -> None:
    """``y[n] = b + x[n] W^T`` over real rows, serial."""
    for n in range(x.shape[0]):
        values_row(x[n], wt, b, y[n])


@njit(cache=True, nogil=True, parallel=True)
def affine_values_out_par(x: np.ndarray, wt: np.ndarray, b: np.ndarray, y: np.ndarray) -> None:
    """:func:`affine_values_out`, samples in parallel."""
    for n in prange(x.shape[0]):
        values_row(x[n], wt, b, y[n])


@njit(cache=True, nogil=True)
def affine_spikes_fire(s: np.ndarray, wt: np.ndarray, b: np.ndarray, theta: np.ndarray,
                        z: np.ndarray) -> None:
    """``z[n] = 1[b + sum_{i: s[n, i]} wt[i] >= theta]`` over spikes ``s`` ``(N, D)``, serial."""
    acc = np.empty_like(b)
    for n in range(s.shape[0]):
        spikes_row(s[n], wt, b, acc)
        fire_row(acc, theta, z[n])


@njit(cache=True, nogil=True, parallel=True)
def affine_spikes_fire_par(s: np.ndarray, wt: np.ndarray, b: np.ndarray, theta: np.ndarray,
                        z: np.ndarray) -> None:
    """:func:`affine_spikes_fire`, samples in parallel."""
    for n in prange(s.shape[0]):
        acc = np.empty_like(b)
        spikes_row(s[n], wt, b, acc)
        fire_row(acc, theta, z[n])


@njit(cache=True, nogil=True)
def affine_spikes_out(s: np.ndarray, wt: np.ndarray, b: np.ndarray, y: np.ndarray) -> None:
    """``y[n] = b + sum_{i: s[n, i]} wt[i]`` over spikes, serial."""
    for n in range(s.shape[0]):
        spikes_row(s[n], wt, b, y[n])


@njit(cache=True, nogil=True, parallel=True)
def affine_spikes_out_par(s: np.ndarray, wt: np.ndarray, b: np.ndarray, y: np.ndarray) -> None:
    """:func:`affine_spikes_out`, samples in parallel."""
    for n in prange(s.shape[0]):
        spikes_row(s[n], wt, b, y[n])
