"""Digit-segmentation canvases: determinism, masks against pixels, placement, arguments."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest
import torch

from whetstone.data import CANVAS_SIZE, SEGMENTATION_CLASSES, compose_digits, load_segmentation
from whetstone.data.segmentation import _choose_distinct, placement_capacity, split_seed

THRESHOLD = 128


def marked_pool(m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``m`` distinguishable digits: every pixel in 1..254 (so a box is nonzero everywhere),
    except the top-left pixel 255 (the box's marker, the only 255s on a canvas) and pixel
    (0, 1) = index + 1 (which digit of the pool it is)."""
    assert m <= 250
    rng = np.random.default_rng(seed)
    images = rng.integers(1, 255, size=(m, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = 255
    images[:, 0, 1] = np.arange(m) + 1
    labels = rng.integers(0, 10, size=m).astype(np.uint8)
    return images, labels


def boxes_of(canvas: np.ndarray, images: np.ndarray) -> list[tuple[int, int, int]]:
    """(y, x, pool index) of each digit on a canvas made from :func:`marked_pool` digits,
    checking that the box holds exactly that pool digit."""
    found = []
    for y, x in zip(*np.nonzero(canvas == 255), strict=True):
        index = int(canvas[y, x + 1]) - 1
        np.testing.assert_array_equal(canvas[y:y + 28, x:x + 28], images[index])
        found.append((int(y), int(x), index))
    return found


def check_masks_agree_with_pixels(canvases: np.ndarray, masks: np.ndarray) -> None:
    labelled = masks != 0
    np.testing.assert_array_equal(labelled, canvases >= THRESHOLD)
    assert masks.max() <= 10


def test_shapes_dtypes_and_constants() -> None:
    images, labels = marked_pool(20)
    c, m = compose_digits(torch.from_numpy(images), torch.from_numpy(labels), 7)
    assert SEGMENTATION_CLASSES == 11 and CANVAS_SIZE == 64
    assert c.shape == (7, 64, 64) and c.dtype == torch.uint8
    assert m.shape == (7, 64, 64) and m.dtype == torch.uint8
    c, m = compose_digits(images, labels, 0, size=40, max_digits=1)
    assert c.shape == (0, 40, 40) and m.shape == (0, 40, 40)


def test_same_seed_same_bytes_different_seed_different() -> None:
    images, labels = marked_pool(30)

    def digest(seed: int) -> str:
        c, m = compose_digits(images, labels, 50, seed=seed)
        return hashlib.sha256(c.numpy().tobytes() + m.numpy().tobytes()).hexdigest()

    assert digest(3) == digest(3)
    assert digest(3) != digest(4)


def test_every_digit_matches_its_box_and_mask() -> None:
    images, labels = marked_pool(40)
    canvases, masks = (t.numpy() for t in compose_digits(images, labels, 300, seed=1))
    check_masks_agree_with_pixels(canvases, masks)
    digits_per_canvas = Counter()
    for canvas, mask in zip(canvases, masks, strict=True):
        boxes = boxes_of(canvas, images)
        covered = np.zeros(canvas.shape, dtype=np.int64)
        expected = np.zeros(mask.shape, dtype=np.int64)
        for y, x, index in boxes:
            covered[y:y + 28, x:x + 28] += 1
            d = int(labels[index])
            expected[y:y + 28, x:x + 28] = np.where(images[index] >= THRESHOLD, 1 + d, 0)
        assert covered.max() <= 1, "boxes overlap"
        # every nonzero pixel lies in some box (pool pixels are >= 1, so boxes are solid)
        np.testing.assert_array_equal(covered == 1, canvas != 0)
        np.testing.assert_array_equal(mask, expected)
        indices = [b[2] for b in boxes]
        assert len(set(indices)) == len(indices), "a digit used twice in one canvas"
        digits_per_canvas[len(boxes)] += 1
    assert set(digits_per_canvas) == {1, 2, 3}
    assert all(60 < n < 140 for n in digits_per_canvas.values()), digits_per_canvas


def test_boxes_spread_over_the_canvas() -> None:
    images, labels = marked_pool(10)
    canvases, _ = compose_digits(images, labels, 200, size=64, max_digits=1, seed=2)
    corners = [boxes_of(c, images)[0][:2] for c in canvases.numpy()]
    ys = {y for y, _ in corners}
    xs = {x for _, x in corners}
    assert min(ys) >= 0 and max(ys) <= 36 and min(xs) >= 0 and max(xs) <= 36
    assert len(ys) > 20 and len(xs) > 20


def test_without_replacement_uses_the_whole_small_pool() -> None:
    images, labels = marked_pool(3)
    canvases, _ = compose_digits(images, labels, 200, max_digits=3, seed=5)
    full = [sorted(b[2] for b in boxes_of(c, images)) for c in canvases.numpy()]
    threes = [f for f in full if len(f) == 3]
    assert threes and all(f == [0, 1, 2] for f in threes)


def test_choose_distinct_is_uniform_over_ordered_pairs() -> None:
    picks = _choose_distinct(np.random.default_rng(0), 4, 12000, 2)
    assert (picks[:, 0] != picks[:, 1]).all()
    assert picks.min() == 0 and picks.max() == 3
    counts = Counter(map(tuple, picks.tolist()))
    assert len(counts) == 12
    assert all(850 < n < 1150 for n in counts.values()), counts


@pytest.mark.parametrize("size, max_digits", [(28, 1), (56, 4), (64, 4), (84, 9), (90, 5)])
def test_tight_layouts_still_place_without_overlap(size: int, max_digits: int) -> None:
    images, labels = marked_pool(12)
    canvases, masks = (t.numpy() for t in compose_digits(
        images, labels, 60, size=size, max_digits=max_digits, seed=7))
    check_masks_agree_with_pixels(canvases, masks)
    seen = set()
    for canvas in canvases:
        boxes = boxes_of(canvas, images)
        assert 1 <= len(boxes) <= max_digits
        seen.add(len(boxes))
        for i, (y1, x1, _) in enumerate(boxes):
            assert 0 <= y1 <= size - 28 and 0 <= x1 <= size - 28
            for y2, x2, _ in boxes[i + 1:]:
                assert abs(y1 - y2) >= 28 or abs(x1 - x2) >= 28, "boxes overlap"
    assert max(seen) == max_digits


def test_threshold_sets_the_mask() -> None:
    images = np.zeros((1, 28, 28), dtype=np.uint8)
    images[0, 5, 5], images[0, 6, 6], images[0, 7, 7] = 9, 10, 200
    c, m = compose_digits(images, np.array([4]), 1, size=28, threshold=10, max_digits=1)
    assert c.numpy()[0, 5, 5] == 9
    assert (m.numpy()[0] == 5).sum() == 2 and m.numpy()[0, 6, 6] == 5 and m[0, 7, 7] == 5
    assert m.numpy()[0, 5, 5] == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"size": 27}, "size must be an integer >= 28"),
    ({"max_digits": 0}, "max_digits must be an integer >= 1"),
    ({"size": 55, "max_digits": 2}, "impossible to place.*at most 1"),
    ({"size": 64, "max_digits": 5}, "impossible to place.*at most 4"),
    ({"count": -1}, "count must be a non-negative integer"),
    ({"threshold": 0}, "threshold must be an integer in 1..255"),
    ({"threshold": 256}, "threshold must be an integer in 1..255"),
])
def test_bad_arguments(kwargs: dict, match: str) -> None:
    images, labels = marked_pool(10)
    args = {"count": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        compose_digits(images, labels, **args)


def test_bad_pools() -> None:
    images, labels = marked_pool(4)
    with pytest.raises(ValueError, match="pool is empty"):
        compose_digits(images[:0], labels[:0], 3)
    with pytest.raises(ValueError, match="only 2 digits"):
        compose_digits(images[:2], labels[:2], 3, max_digits=3)
    with pytest.raises(ValueError, match=r"shaped \(M, 28, 28\)"):
        compose_digits(images[:, :27], labels, 3)
    with pytest.raises(ValueError, match="uint8"):
        compose_digits(images.astype(np.float32), labels, 3)
    with pytest.raises(ValueError, match=r"labels must be shaped \(4,\)"):
        compose_digits(images, labels[:3], 3)
    with pytest.raises(ValueError, match="digits 0..9"):
        compose_digits(images, np.array([0, 1, 2, 10]), 3)


def test_placement_capacity() -> None:
    assert [placement_capacity(s) for s in (28, 55, 56, 64, 83, 84)] == [1, 1, 4, 4, 4, 9]


def test_split_seeds_differ_and_are_fixed() -> None:
    seeds = {split_seed(0, s) for s in ("train", "val", "test", "train-full")}
    assert len(seeds) == 4
    assert split_seed(0, "train") == split_seed(0, "train") != split_seed(1, "train")
    with pytest.raises(ValueError, match="unknown split"):
        split_seed(0, "validation")


def test_load_segmentation_argument_errors() -> None:
    with pytest.raises(ValueError, match="unknown split"):
        load_segmentation("dev")
    with pytest.raises(ValueError, match="count must be"):
        load_segmentation("val", count=-3)


def test_load_segmentation_real_mnist(mnist_ready: str) -> None:
    from whetstone.data import load

    images, masks = load_segmentation("val")
    assert images.shape == (2500, 1, 64, 64) and images.dtype == torch.uint8
    assert masks.shape == (2500, 64, 64) and masks.dtype == torch.int64
    check_masks_agree_with_pixels(images[:, 0].numpy(), masks.numpy())
    assert set(torch.unique(masks).tolist()) == set(range(11))
    # built from the val digits with the val seed
    digits, labels = load("mnist", "val")
    c, m = compose_digits(digits, labels, 100, seed=split_seed(0, "val"))
    few, few_masks = load_segmentation("val", count=100)
    assert torch.equal(few[:, 0], c) and torch.equal(few_masks, m.long())
    same, same_masks = load_segmentation("val", count=100)
    assert torch.equal(same, few) and torch.equal(same_masks, few_masks)
    test_images, _ = load_segmentation("test", count=100)
    other_seed, _ = load_segmentation("val", count=100, seed=1)
    assert not torch.equal(test_images, few) and not torch.equal(other_seed, few)
