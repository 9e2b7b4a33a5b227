"""A digit-segmentation dataset built from MNIST, generated deterministically from a seed.

Each sample is a ``size x size`` canvas (:data:`CANVAS_SIZE` = 64 by default) holding 1 to
``max_digits`` MNIST digits whose 28x28 boxes do not overlap, and a mask with
:data:`SEGMENTATION_CLASSES` = 11 classes per pixel::

    mask[y, x] = 0          background
    mask[y, x] = 1 + d      the pixel belongs to a digit d and its intensity is >= threshold

The masks are derived from the digits' own pixels (no hand labelling): inside the box of a
digit ``d`` a pixel is labelled ``1 + d`` exactly when its intensity is at least
``threshold`` (128 by default, the midpoint of the uint8 range); every other pixel is
background. Because boxes never overlap, each canvas pixel is covered by at most one digit,
so ``canvas[y, x] >= threshold  <=>  mask[y, x] != 0``.

:func:`compose_digits` builds canvases from any pool of 28x28 digits;
:func:`load_segmentation` builds them from a split of MNIST (:func:`whetstone.data.load`).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from whetstone.data.sources import SPLITS, load

__all__ = [
    "CANVAS_SIZE",
    "DIGIT_SIZE",
    "MAX_PLACEMENT_TRIES",
    "SEGMENTATION_CLASSES",
    "compose_digits",
    "load_segmentation",
    "placement_capacity",
    "split_seed",
]

SEGMENTATION_CLASSES = 11
"""Classes of the masks: 0 = background, ``1 + d`` for digit ``d`` (0-9)."""

CANVAS_SIZE = 64
"""Default height and width of the canvases (pixels)."""

DIGIT_SIZE = 28
"""Height and width of one digit's box (MNIST images are 28x28)."""

MAX_PLACEMENT_TRIES = 50
"""How many times the boxes of one canvas are placed afresh, uniformly among free positions,
at most, before the canvas falls back to a placement in grid cells (see
:func:`compose_digits`)."""

#: Canvases generated per block: ``min(2048, max(16, 2**22 // (size - 27) ** 2))``, which
#: bounds the memory of the placement step (part of the generation recipe, so changing it
#: changes the bytes produced for a seed).
_BLOCK = 2048

#: A round of placement tries over at least ``_HOPELESS_ROUND`` canvases that places fewer
#: than ``_HOPELESS_RATE`` of them ends the tries of its block (the canvases left are then
#: placed in grid cells): such a layout needs many tries per canvas.
_HOPELESS_ROUND = 32
_HOPELESS_RATE = 0.125


def _block_size(size: int) -> int:
    return min(_BLOCK, max(16, 2**22 // (size - DIGIT_SIZE + 1) ** 2))


def placement_capacity(size: int) -> int:
    """The most non-overlapping axis-aligned 28x28 boxes a ``size x size`` canvas can hold.

    ``floor(size / 28) ** 2`` for boxes at integer positions: the 28 consecutive columns of a
    box hold exactly one column ``28 a + 27`` (``0 <= a < floor(size / 28)``), and likewise
    its rows, so each box holds exactly one point of a grid of ``floor(size / 28) ** 2``
    points, and disjoint boxes hold different points. The grid of boxes at ``(28 a, 28 b)``
    reaches the bound.
    """
    return (size // DIGIT_SIZE) ** 2


def _as_numpy(x: object) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _choose_distinct(rng: np.random.Generator, pool: int, count: int, picks: int) -> np.ndarray:
    """``picks`` distinct indices in ``[0, pool)`` per row, uniformly (``(count, picks)``).

    The ``j``-th pick draws ``r`` uniformly from ``[0, pool - j)`` and maps it to the ``r``-th
    index not picked yet (stepping over the earlier picks in increasing order), which gives
    every ordered ``picks``-tuple of distinct indices the same probability.
    """
    chosen = np.empty((count, picks), dtype=np.int64)
    for j in range(picks):
        x = rng.integers(0, pool - j, size=count, dtype=np.int64)
        earlier = np.sort(chosen[:, :j], axis=1)
        for i in range(j):
            x += x >= earlier[:, i]
        chosen[:, j] = x
    return chosen


def _place_boxes(rng: np.random.Generator, counts: np.ndarray, size: int,
                 max_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners ``(ys, xs)``, each ``(n, max_digits)`` int64, of non-overlapping boxes.

    Canvas ``i`` gets ``counts[i]`` boxes (slots beyond it hold -1). Boxes are placed one by
    one, each uniformly among the corners ``(y, x) in [0, size - 28]^2`` whose box does not
    overlap the boxes already placed (two boxes overlap when ``|y1 - y2| < 28`` and
    ``|x1 - x2| < 28``). A canvas where no corner is left for its next box is placed again
    from scratch, in rounds over all such canvases, at most :data:`MAX_PLACEMENT_TRIES`
    rounds, and no more once a round over at least 32 canvases placed fewer than 1/8 of them;
    canvases still without room then get :func:`_place_in_cells`, which always succeeds.
    """
    n = len(counts)
    p = size - DIGIT_SIZE + 1
    grid = np.arange(p)
    ys = np.full((n, max_digits), -1, dtype=np.int64)
    xs = np.full((n, max_digits), -1, dtype=np.int64)
    todo = np.arange(n)
    for _ in range(MAX_PLACEMENT_TRIES):
        k = counts[todo]
        free = np.ones((len(todo), p, p), dtype=bool)
        failed = np.zeros(len(todo), dtype=bool)
        ty = np.full((len(todo), max_digits), -1, dtype=np.int64)
        tx = np.full((len(todo), max_digits), -1, dtype=np.int64)
        for j in range(max_digits):
            active = np.flatnonzero((k > j) & ~failed)
            if len(active) == 0:
                break
            keys = rng.random((len(active), p * p), dtype=np.float32)
            sub = free[active].reshape(len(active), p * p)
            keys[~sub] = -1.0
            flat = keys.argmax(axis=1)
            dead = ~sub[np.arange(len(active)), flat]
            failed[active[dead]] = True
            alive = active[~dead]
            y, x = flat[~dead] // p, flat[~dead] % p
            ty[alive, j], tx[alive, j] = y, x
            block_y = np.abs(grid[None, :] - y[:, None]) < DIGIT_SIZE
            block_x = np.abs(grid[None, :] - x[:, None]) < DIGIT_SIZE
            free[alive] &= ~(block_y[:, :, None] & block_x[:, None, :])
        done = ~failed
        ys[todo[done]], xs[todo[done]] = ty[done], tx[done]
        if len(todo) >= _HOPELESS_ROUND and _HOPELESS_RATE * len(todo) > done.sum():
            break
        todo = todo[failed]
        if len(todo) == 0:
            return ys, xs
    ys[todo], xs[todo] = _place_in_cells(rng, counts[todo], size, max_digits)
    return ys, xs


def _place_in_cells(rng: np.random.Generator, counts: np.ndarray, size: int,
                    max_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """Fallback placement that always succeeds: split each axis of the canvas into
    ``m = floor(size / 28)`` cells of ``floor(size / m)`` or ``ceil(size / m)`` pixels (each at
    least 28), give the boxes of a canvas distinct cells (uniformly) and put each box at a
    uniform position inside its cell. Boxes in different cells cannot overlap."""
    n = len(counts)
    m = size // DIGIT_SIZE
    edges = (np.arange(m + 1) * size) // m
    cells = _choose_distinct(rng, m * m, n, max_digits)
    row, col = cells // m, cells % m
    slack_y = edges[row + 1] - edges[row] - DIGIT_SIZE
    slack_x = edges[col + 1] - edges[col] - DIGIT_SIZE
    ys = edges[row] + rng.integers(0, slack_y + 1)
    xs = edges[col] + rng.integers(0, slack_x + 1)
    unused = np.arange(max_digits)[None, :] >= counts[:, None]
    ys[unused], xs[unused] = -1, -1
    return ys, xs


def compose_digits(
    images: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    count: int,
    size: int = CANVAS_SIZE,
    max_digits: int = 3,
    seed: int = 0,
    threshold: int = 128,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compose ``count`` canvases of non-overlapping digits and their per-pixel class masks.

    For each canvas ``i`` (all random choices from one ``numpy.random.Generator`` seeded with
    ``seed`` only, so the same arguments give the same bytes):

    1. ``k_i`` is drawn uniformly from ``{1, ..., max_digits}``;
    2. ``k_i`` distinct digits are drawn from the pool (without replacement within the canvas;
       different canvases may reuse a digit);
    3. their 28x28 boxes are placed one by one at top-left corners ``(y, x)`` drawn uniformly
       from ``[0, size - 28]^2`` among those whose box does not overlap the boxes already
       placed; a canvas that runs out of room is placed again from scratch, and after
       :data:`MAX_PLACEMENT_TRIES` failed tries, or a round of tries in which fewer than 1/8
       of at least 32 canvases of its block found room (both only likely when
       ``max_digits`` is close to the canvas's capacity, e.g. 4 digits on 64x64), its boxes
       go to distinct cells of a ``floor(size / 28)``-square grid, each at a uniform
       position inside its cell;
    4. ``canvas[y:y+28, x:x+28] = image`` and, inside that box,
       ``mask = 1 + label`` where ``image >= threshold``; everything else is 0.

    Args:
        images: uint8 digits ``(M, 28, 28)`` (tensor or array).
        labels: their digits ``(M,)``, integers in ``0..9``.
        count: number of canvases ``N >= 0``.
        size: canvas height and width, at least 28.
        max_digits: most digits per canvas, at least 1, at most
            :func:`placement_capacity` ``(size)`` and the pool size ``M``.
        seed: the seed of the generator.
        threshold: intensity (1..255) at or above which a digit pixel is labelled.

    Returns:
        ``(canvases, masks)``: uint8 ``(N, size, size)`` and uint8 ``(N, size, size)`` with
        values in ``0..10`` (see the module docstring).

    Raises:
        ValueError: bad shapes, dtypes or values of the pool, an empty pool, a negative
            count, ``size < 28``, ``max_digits < 1``, more digits than fit on the canvas
            (:func:`placement_capacity`) or than the pool holds, or a threshold outside
            ``1..255``.
    """
    pool = _as_numpy(images)
    digits = _as_numpy(labels)
    if pool.ndim != 3 or pool.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE):
        raise ValueError(f"images must be shaped (M, 28, 28), got {tuple(pool.shape)}")
    if pool.dtype != np.uint8:
        raise ValueError(f"images must be uint8 intensities, got dtype {pool.dtype}")
    if digits.shape != (len(pool),):
        raise ValueError(f"labels must be shaped ({len(pool)},) to match images, "
                         f"got {tuple(digits.shape)}")
    if len(pool) == 0:
        raise ValueError("the digit pool is empty: images has 0 digits")
    if not np.issubdtype(digits.dtype, np.integer):
        raise ValueError(f"labels must be integers 0..9, got dtype {digits.dtype}")
    if digits.min() < 0 or digits.max() > 9:
        raise ValueError(f"labels must be digits 0..9, got values in "
                         f"[{int(digits.min())}, {int(digits.max())}]")
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < DIGIT_SIZE:
        raise ValueError(f"size must be an integer >= 28 (one digit's box), got {size!r}")
    if isinstance(max_digits, bool) or not isinstance(max_digits, int | np.integer) \
            or max_digits < 1:
        raise ValueError(f"max_digits must be an integer >= 1, got {max_digits!r}")
    capacity = placement_capacity(size)
    if max_digits > capacity:
        raise ValueError(f"max_digits={max_digits} is impossible to place: a {size}x{size} "
                         f"canvas holds at most {capacity} non-overlapping 28x28 digits")
    if max_digits > len(pool):
        raise ValueError(f"max_digits={max_digits} digits per canvas are drawn without "
                         f"replacement, but the pool holds only {len(pool)} digits")
    if isinstance(threshold, bool) or not isinstance(threshold, int | np.integer) \
            or not 1 <= threshold <= 255:
        raise ValueError(f"threshold must be an integer in 1..255, got {threshold!r}")

    count, size, max_digits = int(count), int(size), int(max_digits)
    rng = np.random.default_rng(seed)
    pool_masks = np.where(pool >= threshold, (digits.astype(np.uint8) + 1)[:, None, None],
                          0).astype(np.uint8)
    canvases = np.zeros((count, size, size), dtype=np.uint8)
    masks = np.zeros((count, size, size), dtype=np.uint8)
    offsets = np.arange(DIGIT_SIZE)
    block = _block_size(size)
    for start in range(0, count, block):
        n = min(block, count - start)
        k = rng.integers(1, max_digits + 1, size=n)
        which = _choose_distinct(rng, len(pool), n, max_digits)
        ys, xs = _place_boxes(rng, k, size, max_digits)
        for j in range(max_digits):
            rows = np.flatnonzero(k > j)
            if len(rows) == 0:
                break
            r = (ys[rows, j][:, None] + offsets)[:, :, None]
            c = (xs[rows, j][:, None] + offsets)[:, None, :]
            i = (start + rows)[:, None, None]
            canvases[i, r, c] = pool[which[rows, j]]
            masks[i, r, c] = pool_masks[which[rows, j]]
    return torch.from_numpy(canvases), torch.from_numpy(masks)


def split_seed(seed: int, split: str) -> int:
    """The seed :func:`load_segmentation` passes to :func:`compose_digits` for ``split``.

    ``numpy.random.SeedSequence(entropy=seed, spawn_key=(index of split in SPLITS,))``, first
    64-bit word of its state: a different, fixed stream per split and seed.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    sequence = np.random.SeedSequence(entropy=seed, spawn_key=(SPLITS.index(split),))
    return int(sequence.generate_state(1, dtype=np.uint64)[0])


def load_segmentation(
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    count: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Digit-segmentation canvases composed from the digits of one MNIST split.

    Calls ``whetstone.data.load("mnist", split, data_dir)`` and :func:`compose_digits` with
    ``size = CANVAS_SIZE`` (64), ``max_digits = 3``, ``threshold = 128`` and the seed
    :func:`split_seed` ``(seed, split)``, so train, val and test canvases come from different
    random streams as well as from different digits. By default ``count = M // 2`` canvases
    for a split of ``M`` digits (27,500 train, 2,500 val, 5,000 test for MNIST): with 2 digits
    per canvas on average, each digit is used about once.

    Args:
        split: ``"train"``, ``"val"``, ``"test"`` or ``"train-full"`` (see
            :data:`whetstone.data.SPLITS`).
        data_dir: the data folder (see :func:`whetstone.data.load`).
        seed: the base seed.
        count: number of canvases; default half the number of digits in the split.

    Returns:
        ``(images, masks)``: uint8 ``(N, 1, 64, 64)`` and int64 ``(N, 64, 64)`` with classes
        ``0..10`` (:data:`SEGMENTATION_CLASSES`).

    Raises:
        ValueError: an unknown split or a negative count.
        whetstone.data.DatasetError: MNIST could not be loaded or fetched.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)
                              or count < 0):
        raise ValueError(f"count must be a non-negative integer or None, got {count!r}")
    digits, labels = load("mnist", split, data_dir)
    n = len(digits) // 2 if count is None else count
    canvases, masks = compose_digits(digits, labels, n, size=CANVAS_SIZE, max_digits=3,
                                     seed=split_seed(seed, split), threshold=128)
    return canvases.unsqueeze(1), masks.to(torch.int64)
