"""Shared fixtures: a real MNIST subset (fetched once per machine through the data routes)."""

from __future__ import annotations

import pytest

from whetstone.data import DatasetError


@pytest.fixture(scope="session")
def mnist_ready() -> str:
    """Make sure real MNIST is in the cache; skip (with the reason) only if no route works."""
    from whetstone.data import load

    try:
        load("mnist", "train")
        load("mnist", "test")
    except DatasetError as exc:
        pytest.skip(f"real MNIST could not be fetched by any route here: {exc}")
    return "mnist"
