"""The linear probe: separable codes are read perfectly, noise is read at chance."""

from __future__ import annotations

import numpy as np
import pytest

from whetstone.metrics.probe import linear_probe


def test_probe_reads_a_code_that_holds_the_class():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    codes = np.eye(4)[labels].repeat(3, axis=1)  # 12 bits, 3 copies of a one-hot class
    codes = np.logical_xor(codes, rng.random(codes.shape) < 0.05)  # 5 % of bits flipped
    result = linear_probe(codes[:300], labels[:300], codes[300:], labels[300:])
    assert result.test_accuracy > 0.95 and result.train_accuracy > 0.95


def test_probe_of_noise_is_near_chance():
    rng = np.random.default_rng(1)
    codes = rng.random((2000, 8)) < 0.5
    labels = rng.integers(0, 4, 2000)
    result = linear_probe(codes[:1500], labels[:1500], codes[1500:], labels[1500:])
    assert 0.15 < result.test_accuracy < 0.35


def test_probe_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="length"):
        linear_probe(np.zeros((3, 2)), np.zeros(2), np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="features"):
        linear_probe(np.zeros((3, 2)), np.zeros(3), np.zeros((1, 3)), np.zeros(1))
