"""Spike activity: density per layer and the Gini coefficient of neuron activity.

Both work on numpy arrays only (the spikes of :func:`whetstone.runtime.run` with
``record=True``: one bool array ``(N, ...)`` per :class:`~whetstone.runtime.Threshold`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _as_layers(spikes: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(spikes, np.ndarray):
        return [spikes]
    return [np.asarray(s) for s in spikes]


def spike_density(spikes: np.ndarray | Sequence[np.ndarray]) -> dict[str, Any]:
    """Fraction of neurons firing, per sample, per layer and on average.

    For layer ``l`` with ``M_l`` neurons and spikes ``z_l`` ``(N, ...)`` (any nonzero value
    counts as a spike):

    - ``per_sample[l][n] = (1 / M_l) sum_m 1[z_l[n, m] != 0]``, shape ``(N,)``;
    - ``per_layer[l] = mean_n per_sample[l][n]``;
    - ``mean = (1 / L) sum_l per_layer[l]`` (every layer weighs the same);
    - ``overall = sum_l sum_n,m 1[z != 0] / (N sum_l M_l)`` (every neuron weighs the same).

    Args:
        spikes: one array ``(N, ...)`` or a sequence of them (one per layer, same ``N``).

    Returns:
        ``{"per_sample": [array (N,)], "per_layer": [float], "mean": float,
        "overall": float}``.

    Raises:
        ValueError: no layers, a layer without a batch axis, or layers of different ``N``.
    """
    layers = _as_layers(spikes)
    if not layers:
        raise ValueError("spike_density needs at least one layer of spikes")
    if any(z.ndim < 1 for z in layers) or len({len(z) for z in layers}) != 1:
        raise ValueError("every layer must be an array (N, ...) with the same N; got shapes "
                         f"{[z.shape for z in layers]}")
    per_sample = []
    fired = 0
    neurons = 0
    for z in layers:
        flat = z.reshape(len(z), -1)
        counts = np.count_nonzero(flat, axis=1)
        per_sample.append(counts / max(flat.shape[1], 1))
        fired += int(counts.sum())
        neurons += flat.shape[1]
    per_layer = [float(p.mean()) if len(p) else 0.0 for p in per_sample]
    total = neurons * len(layers[0])
    return {
        "per_sample": per_sample,
        "per_layer": per_layer,
        "mean": float(np.mean(per_layer)),
        "overall": fired / total if total else 0.0,
    }


def firing_rates(spikes: np.ndarray) -> np.ndarray:
    """Per-neuron firing rate over the batch: ``r[m] = (1 / N) sum_n 1[z[n, m] != 0]``.

    ``spikes`` ``(N, ...)``; returns float64 ``(prod(...),)`` (neurons flattened, C order).
    """
    z = np.asarray(spikes)
    if z.ndim < 1 or len(z) == 0:
        raise ValueError(f"firing_rates needs a non-empty batch (N, ...), got shape {z.shape}")
    return np.count_nonzero(z.reshape(len(z), -1), axis=0) / len(z)


def gini(activity: np.ndarray | Sequence[float]) -> float:
    """Gini coefficient of non-negative activity values (0: all equal, near 1: one active).

    ``G = sum_i sum_j |x_i - x_j| / (2 n^2 mean(x))``

    computed in ``O(n log n)``: with ``x_(1) <= ... <= x_(n)`` sorted ascending,
    ``sum_i sum_j |x_i - x_j| = 2 sum_k (2k - n - 1) x_(k)``, so
    ``G = sum_k (2k - n - 1) x_(k) / (n sum_k x_k)``.

    ``[1, 1, 1, 1] -> 0``; ``[0, 0, 0, 1] -> 0.75`` (the maximum for ``n`` values is
    ``(n - 1) / n``). All-zero activity (mean 0) gives 0 (no inequality; the formula is 0/0).

    Args:
        activity: values of any shape (flattened), e.g. per-neuron firing rates.

    Raises:
        ValueError: empty input, non-finite or negative values.
    """
    x = np.asarray(activity, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("gini of an empty array is undefined")
    if not np.all(np.isfinite(x)):
        raise ValueError("gini needs finite values")
    if np.any(x < 0):
        raise ValueError("gini needs non-negative values (activity, rates, counts)")
    total = x.sum()
    if total == 0:
        return 0.0
    n = x.size
    k = np.arange(1, n + 1, dtype=np.float64)
    return float(np.dot(2 * k - n - 1, np.sort(x)) / (n * total))
