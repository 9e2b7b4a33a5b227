"""Batch augmentation: exact translations with zero fill, seeded."""

import pytest
import torch

from whetstone.training.augment import (
    Augmented,
    parse_augment,
    parse_shift,
    random_flip,
    random_shift,
)


def test_zero_shift_is_identity():
    x = torch.rand(4, 1, 6, 6)
    assert torch.equal(random_shift(x, 0, torch.Generator().manual_seed(0)), x)


def test_each_image_is_a_translation_of_itself():
    x = torch.rand(16, 3, 8, 8) + 1.0  # no zeros inside, so zero fill marks the border
    y = random_shift(x, 2, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if torch.equal(padded[i, :, dy:dy + 8, dx:dx + 8], y[i])]
        assert len(hits) == 1


def test_augmented_loader_is_seeded():
    batches = [(torch.rand(8, 1, 5, 5), torch.zeros(8))]
    a = [x for x, _ in Augmented(batches, 1, seed=3)]
    b = [x for x, _ in Augmented(batches, 1, seed=3)]
    assert torch.equal(a[0], b[0])


def test_parse_shift():
    assert parse_shift("shift") == 2
    assert parse_shift("shift-1") == 1
    with pytest.raises(ValueError, match="augment"):
        parse_shift("rotate")


def test_flip_mirrors_about_half_of_the_images():
    x = torch.rand(200, 3, 4, 5)
    y = random_flip(x, torch.Generator().manual_seed(0))
    mirrored = [torch.equal(y[i], x[i].flip(-1)) for i in range(200)]
    kept = [torch.equal(y[i], x[i]) for i in range(200)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 70 < sum(mirrored) < 130


def test_parse_augment():
    assert parse_augment("shift-4+flip") == (4, True)
    assert parse_augment("flip") == (0, True)
    assert parse_augment("shift") == (2, False)
    with pytest.raises(ValueError, match="flip"):
        parse_augment("shift-1+rotate")


def test_augmented_shift_only_draws_as_before():
    """Adding the flip option left shift-only runs' random sequence unchanged."""
    batches = [(torch.rand(8, 1, 5, 5), torch.zeros(8))]
    got = next(iter(Augmented(batches, 1, seed=3)))[0]
    assert torch.equal(got, random_shift(batches[0][0], 1, torch.Generator().manual_seed(3)))


def test_shift_follows_the_documented_draws():
    """dy for every image, then dx, each uniform in 0..2p; out = pad(x)[dy:dy+H, dx:dx+W]."""
    x = torch.rand(12, 2, 7, 9)
    y = random_shift(x, 3, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    dy = torch.randint(0, 7, (12,), generator=g)
    dx = torch.randint(0, 7, (12,), generator=g)
    padded = torch.nn.functional.pad(x, (3, 3, 3, 3))
    for i in range(12):
        a, b = int(dy[i]), int(dx[i])
        assert torch.equal(y[i], padded[i, :, a:a + 7, b:b + 9])
