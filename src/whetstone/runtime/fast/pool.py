"""Sum pooling of spikes fused with the following threshold (numba), channels-last.

For a sample ``s`` ``(H, W, C)`` of spikes, window ``(kh, kw)``, stride ``(sh, sw)``, zero
padding ``(top, left)`` (``geo = (kh, kw, sh, sw, top, left, H', W')``):

``count[i, j, c] = sum_{u < kh, v < kw} s[i sh - top + u, j sw - left + v, c]`` (an integer)

``z[i, j, c] = 1[value(count) >= theta[i, j, c]]`` with ``value(k) = k / divisor`` when the
pool's scale is ``1 / divisor``, else ``k * scale``, computed in float64 (exact for the OR
pool: ``scale = 1``, ``theta = 0.5``, and for the integer network's integer thresholds).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def pool_sample(s: np.ndarray, geo: np.ndarray, scale: float, divisor: int,
                theta: np.ndarray, z: np.ndarray) -> None:
    """One sample; see the module doc (``divisor = 0``: multiply by ``scale``)."""
    h, w, c = s.shape
    kh, kw, sh, sw, top, left, ho, wo = geo
    count = np.empty(c, np.int64)
    for i in range(ho):
        for j in range(wo):
            count[:] = 0
            for u in range(kh):
                iy = i * sh - top + u
                if iy < 0 or iy >= h:
                    continue
                for v in range(kw):
                    ix = j * sw - left + v
                    if ix < 0 or ix >= w:
                        continue
                    for k in range(c):
                        count[k] += s[iy, ix, k]
            for k in range(c):
                value = count[k] / divisor if divisor > 0 else count[k] * scale
                z[i, j, k] = 1 if value >= theta[i, j, k] else 0


@njit(cache=True, nogil=True)
def pool_fire(s: np.ndarray, geo: np.ndarray, scale: float, divisor: int,
              theta: np.ndarray, z: np.ndarray) -> None:
    """Batch ``s`` ``(N, H, W, C)`` into ``z`` ``(N, H', W', C)``."""
    for n in range(s.shape[0]):
        pool_sample(s[n], geo, scale, divisor, theta, z[n])


@njit(cache=True, nogil=True, parallel=True)
def pool_fire_par(s: np.ndarray, geo: np.ndarray, scale: float, divisor: int,
                  theta: np.ndarray, z: np.ndarray) -> None:
    """:func:`pool_fire`, samples in parallel."""
    for n in prange(s.shape[0]):
        pool_sample(s[n], geo, scale, divisor, theta, z[n])
