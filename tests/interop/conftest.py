"""Fixtures of the interop tests: two converted whetstone networks and real MNIST digits.

- ``dense_net``: the tiny mnist-dense run of ``tests/conftest.py`` (trained 3 epochs on
  3,000 real MNIST images, sharpened to 1), converted: ``Flatten, (Affine, Threshold)*,
  Decode``.
- ``cnn_net``: a small CNN (``Conv 8, OR-pool, Conv 16, OR-pool, Flatten, Linear 100,
  decode``) trained here on 3,000 real MNIST images while its sharpness rises to 1 (about
  half a minute on one CPU thread), converted with its input shape.
- ``digits``: 256 real MNIST test digits, float32 ``(256, 1, 28, 28)`` in [0, 1].
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import whetstone.runtime as rt
from whetstone.conversion import to_spiking

DIGITS = 256


@pytest.fixture(scope="session")
def digits(mnist_ready: str) -> np.ndarray:
    from whetstone.data import load, to_float

    images, _ = load("mnist", "test")
    return to_float(images[:DIGITS]).numpy()


@pytest.fixture(scope="session")
def dense_net(tiny_dense_run) -> rt.SpikingNetwork:
    from whetstone.runs import load_run

    return to_spiking(load_run(tiny_dense_run).model, torch.zeros(1, 1, 28, 28))


@pytest.fixture(scope="session")
def cnn_net(mnist_ready: str) -> rt.SpikingNetwork:
    from torch import nn

    from whetstone.data import load, to_float
    from whetstone.nn import SoftmaxDecode, SpikingBReLU, key_generator
    from whetstone.sharpening.allocation import set_model_sharpness

    images, labels = load("mnist", "train")
    x, y = to_float(images[:3000]), labels[:3000].long()
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), SpikingBReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), SpikingBReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 100), SpikingBReLU(),
        SoftmaxDecode(key_generator(10, 100, seed=0)))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for sharpness in (0.0, 0.0, 0.3, 0.6, 0.8, 0.9, 0.95):  # one epoch each, bottom-up
        set_model_sharpness(model, sharpness)
        for i in range(0, len(x), 100):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + 100]), y[i:i + 100]).backward()
            opt.step()
    set_model_sharpness(model, 1.0)
    return to_spiking(model.eval(), x[:1])
