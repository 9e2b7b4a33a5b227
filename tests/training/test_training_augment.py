"""Batch augmentation: exact translations with zero fill, seeded."""

import pytest
import torch

from whetstone.training.augment import Augmented, parse_shift, random_shift


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
