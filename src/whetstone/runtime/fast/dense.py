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
others (batch 1 pays no thread start). Every output is accumulated input by input in the
order ``i = 0, 1, ...`` in the accumulator's dtype (float32, float64, int32 or int64): exact
for integers within the accumulator's range, rounded per addition for floats.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def values_row(x: np.ndarray, wt: np.ndarray, b: np.ndarray, acc: np.ndarray) -> None:
    """``acc = b + sum_{i: x_i != 0} x_i wt[i, :]`` for one row ``x`` ``(D,)`` (``acc`` at
    least ``O`` long: only ``acc[:O]`` is written)."""
    n_out = wt.shape[1]
    for o in range(n_out):
        acc[o] = b[o]
    for i in range(x.shape[0]):
        v = x[i]
        if v != 0:
            for o in range(n_out):  # direct indexing: a row view would cost a refcount
                acc[o] += v * wt[i, o]


@njit(cache=True, nogil=True)
def spikes_row(s: np.ndarray, wt: np.ndarray, b: np.ndarray, acc: np.ndarray) -> None:
    """``acc = b + sum_{i: s_i = 1} wt[i, :]`` for one spike row ``s`` (uint8, at least
    ``D`` long: only ``s[:D]`` is read; ``acc`` at least ``O`` long)."""
    n_out = wt.shape[1]
    for o in range(n_out):
        acc[o] = b[o]
    for i in range(wt.shape[0]):
        if s[i]:
            for o in range(n_out):
                acc[o] += wt[i, o]


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
