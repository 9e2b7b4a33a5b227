"""Convolution kernels of the fast engine (numba), channels-last.

Layout. A sample is ``(H, W, C)`` (channels last) so that the ``Cout`` outputs of one pixel
are contiguous. The weight ``W`` ``(Cout, Cin, kh, kw)`` is stored as ``w2``
``(kh kw Cin, Cout)``, row ``r = (u kw + v) Cin + c`` holding the synapses from input
channel ``c`` at window offset ``(u, v)`` to every output channel. ``geo`` is the int64
array ``(kh, kw, sh, sw, top, left, dh, dw, H', W')``.

Arithmetic (one output pixel ``(i, j)``, zero padding, groups = 1):

``y[i, j, :] = b + sum_{u, v} sum_{c active at (i sh - top + u dh, j sw - left + v dw)}
x[., ., c] w2[(u kw + v) Cin + c, :]``

- :func:`conv_spikes`: binary inputs (uint8 0/1). Each sample's active channels are first
  listed per input pixel (``cnt[p]``, ``idx[p, :cnt[p]]``); each output pixel then adds the
  weight rows of the active inputs in its window (additions only, no multiply): an
  event-driven convolution whose work is the number of synaptic events, ``sum over active
  inputs of the outputs they reach`` (the SynOps of :mod:`whetstone.metrics`), gathered per
  output so that the accumulator ``(Cout,)`` stays in L1.
- :func:`conv_values`: real or integer inputs (the first layer, on pixels): the same loop
  over the window, skipping zero inputs, adding ``x_c w2[r, :]``.

Outputs: with ``fire`` the spikes ``z[i, j, :] = 1[y[i, j, :] >= theta[i, j, :]]`` (uint8,
``(H', W', Cout)``, ties fire), else the values ``y``. Per output the terms are taken in the
order ``u, v, c`` in the accumulator's dtype (over spikes four at a time per input pixel,
``acc + ((w_a + w_b) + (w_c + w_d))``, then by pairs and one): exact for integers in
range, for floats a rounding order of its own. Over spikes the loops are blocked per
output row (see :func:`spikes_rows`). ``*_par``
variants run the samples of a batch in parallel (``prange``), ``*_rows_par`` the output rows
of a single sample (batch 1 on several cores); the plain ones are serial.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, inline="always")
def _store(acc: np.ndarray, theta: np.ndarray, z: np.ndarray, y: np.ndarray, i: int, j: int,
           fire: bool) -> None:
    """Write the accumulator of output pixel ``(i, j)``: spikes into ``z`` or values into ``y``."""
    if fire:
        for o in range(acc.shape[0]):
            z[i, j, o] = 1 if acc[o] >= theta[i, j, o] else 0
    else:
        for o in range(acc.shape[0]):
            y[i, j, o] = acc[o]


@njit(cache=True, nogil=True)
def active_lists(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For spikes ``s`` ``(H, W, C)``: ``cnt[p]`` the number of active channels at pixel
    ``p = y W + x`` and ``idx[p, :cnt[p]]`` those channels, in increasing order."""
    h, w, cin = s.shape
    cnt = np.zeros(h * w, np.int32)
    idx = np.empty((h * w, cin), np.int32)
    for yy in range(h):
        for xx in range(w):
            p = yy * w + xx
            k = 0
            for c in range(cin):
                if s[yy, xx, c]:
                    idx[p, k] = c
                    k += 1
            cnt[p] = k
    return cnt, idx


@njit(cache=True, nogil=True)
def spikes_rows(cnt: np.ndarray, idx: np.ndarray, h: int, w: int, w2: np.ndarray,
                b: np.ndarray, geo: np.ndarray, theta: np.ndarray, z: np.ndarray,
                y: np.ndarray, fire: bool, i0: int, i1: int, accrow: np.ndarray) -> None:
    """Output rows ``i0 <= i < i1`` of one sample from its active lists (see the module
    doc); ``accrow`` is scratch ``(W', Cout)``.

    Blocked for the L1 cache: one output row at a time (its accumulators, ``W' Cout``
    values), window offset by window offset: the weight slice of offset ``(u, v)``
    (``Cin Cout`` values) is added for every output pixel of the row, so both stay in L1
    while the slice is used, and the whole weight is read once per output row instead of
    once per event. Per pixel the active channels are added four at a time,
    ``acc += (w_a + w_b) + (w_c + w_d)``, then a pair ``acc += w_a + w_b``, then one."""
    kh, kw, sh, sw, top, left, dh, dw, ho, wo = geo
    cin = idx.shape[1]
    cout = w2.shape[1]
    for i in range(i0, i1):
        for j in range(wo):
            for o in range(cout):
                accrow[j, o] = b[o]
        for u in range(kh):
            iy = i * sh - top + u * dh
            if iy < 0 or iy >= h:
                continue
            for v in range(kw):
                base = (u * kw + v) * cin
                for j in range(wo):
                    ix = j * sw - left + v * dw
                    if ix < 0 or ix >= w:
                        continue
                    p = iy * w + ix
                    m = cnt[p]
                    g = 0
                    while g + 4 <= m:
                        r0 = base + idx[p, g]
                        r1 = base + idx[p, g + 1]
                        r2 = base + idx[p, g + 2]
                        r3 = base + idx[p, g + 3]
                        for o in range(cout):
                            accrow[j, o] += (w2[r0, o] + w2[r1, o]) + (w2[r2, o] + w2[r3, o])
                        g += 4
                    if g + 2 <= m:
                        r0 = base + idx[p, g]
                        r1 = base + idx[p, g + 1]
                        for o in range(cout):
                            accrow[j, o] += w2[r0, o] + w2[r1, o]
                        g += 2
                    if g < m:
                        r0 = base + idx[p, g]
                        for o in range(cout):
                            accrow[j, o] += w2[r0, o]
        for j in range(wo):
            _store(accrow[j], theta, z, y, i, j, fire)


@njit(cache=True, nogil=True)
def values_rows(x: np.ndarray, w2: np.ndarray, b: np.ndarray, geo: np.ndarray,
                theta: np.ndarray, z: np.ndarray, y: np.ndarray, fire: bool, i0: int,
                i1: int, acc: np.ndarray) -> None:
    """Output rows ``i0 <= i < i1`` of one sample ``x`` ``(H, W, Cin)`` of real or integer
    values (zeros skipped); ``acc`` is scratch ``(Cout,)``."""
    h, w, cin = x.shape
    kh, kw, sh, sw, top, left, dh, dw, ho, wo = geo
    cout = w2.shape[1]
    for i in range(i0, i1):
        for j in range(wo):
            for o in range(cout):
                acc[o] = b[o]
            for u in range(kh):
                iy = i * sh - top + u * dh
                if iy < 0 or iy >= h:
                    continue
                for v in range(kw):
                    ix = j * sw - left + v * dw
                    if ix < 0 or ix >= w:
                        continue
                    base = (u * kw + v) * cin
                    for c in range(cin):
                        val = x[iy, ix, c]
                        if val != 0:
                            r = base + c
                            for o in range(cout):
                                acc[o] += val * w2[r, o]
            _store(acc, theta, z, y, i, j, fire)


@njit(cache=True, nogil=True)
def conv_spikes(s: np.ndarray, w2: np.ndarray, b: np.ndarray, geo: np.ndarray,
                theta: np.ndarray, z: np.ndarray, y: np.ndarray, fire: bool) -> None:
    """Batch ``s`` ``(N, H, W, Cin)`` of spikes into ``z`` or ``y`` ``(N, H', W', Cout)``
    (the other a placeholder ``(N, 1, 1, 1)``), serial."""
    _, h, w, _ = s.shape
    accrow = np.empty((geo[9], b.shape[0]), b.dtype)
    for n in range(s.shape[0]):
        cnt, idx = active_lists(s[n])
        spikes_rows(cnt, idx, h, w, w2, b, geo, theta, z[n], y[n], fire, 0, geo[8], accrow)


@njit(cache=True, nogil=True, parallel=True)
def conv_spikes_par(s: np.ndarray, w2: np.ndarray, b: np.ndarray, geo: np.ndarray,
                    theta: np.ndarray, z: np.ndarray, y: np.ndarray, fire: bool) -> None:
    """:func:`conv_spikes`, samples in parallel."""
    _, h, w, _ = s.shape
    for n in prange(s.shape[0]):
        accrow = np.empty((geo[9], b.shape[0]), b.dtype)
        cnt, idx = active_lists(s[n])
        spikes_rows(cnt, idx, h, w, w2, b, geo, theta, z[n], y[n], fire, 0, geo[8], accrow)


@njit(cache=True, nogil=True, parallel=True)
def conv_spikes_rows_par(s: np.ndarray, w2: np.ndarray, b: np.ndarray, geo: np.ndarray,
                         theta: np.ndarray, z: np.ndarray, y: np.ndarray, fire: bool) -> None:
    """:func:`conv_spikes` for one sample (``N = 1``), its output rows in parallel."""
    _, h, w, _ = s.shape
    cnt, idx = active_lists(s[0])
    zs, ys = z[0], y[0]
    for i in prange(geo[8]):
        accrow = np.empty((geo[9], b.shape[0]), b.dtype)
        spikes_rows(cnt, idx, h, w, w2, b, geo, theta, zs, ys, fire, i, i + 1, accrow)


@njit(cache=True, nogil=True)
def conv_values(x: np.ndarray, w2: np.ndarray, b: np.ndarray, geo: np.ndarray,
                theta: np.ndarray, z: np.ndarray, y: np.ndarray, fire: bool) -> None:
    """Batch ``x`` ``(N, H, W, Cin)`` of values into ``z`` or ``y`` ``(N, H', W', Cout)``,
    serial."""
    acc = np.empty_like(b)
    for n in range(x.shape[0]):
        values_rows(x[n], w2, b, geo, theta, z[n], y[n], fire, 0, geo[8], acc)


@njit(cache=True, nogil=True, parallel=True)
def conv_values_par(x: np.ndarray, w2: np.ndarray, b: np.ndarray, geo: np.ndarray,
                    theta: np.ndarray, z: np.ndarray, y: np.ndarray, fire: bool) -> None:
    """:func:`conv_values`, samples in parallel."""
    for n in prange(x.shape[0]):
        acc = np.empty_like(b)
        values_rows(x[n], w2, b, geo, theta, z[n], y[n], fire, 0, geo[8], acc)


@njit(cache=True, nogil=True, parallel=True)
def conv_values_rows_par(x: np.ndarray, w2: np.ndarray, b: np.ndarray, geo: np.ndarray,
                         theta: np.ndarray, z: np.ndarray, y: np.ndarray, fire: bool) -> None:
    """:func:`conv_values` for one sample (``N = 1``), its output rows in parallel."""
    xs, zs, ys = x[0], z[0], y[0]
    for i in prange(geo[8]):
        acc = np.empty_like(b)
        values_rows(xs, w2, b, geo, theta, zs, ys, fire, i, i + 1, acc)
