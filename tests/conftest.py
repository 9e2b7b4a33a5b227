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


@pytest.fixture(scope="session")
def tiny_dense_run(mnist_ready: str, tmp_path_factory: pytest.TempPathFactory):
    """A run folder of mnist-dense trained briefly (3 epochs on 3,000 real MNIST images,
    compressed schedule, every layer ends at sharpness 1); trained once per test session."""
    from whetstone.presets import get_preset
    from whetstone.runs import train_run

    out = tmp_path_factory.mktemp("mnist-dense-tiny")
    config = get_preset("mnist-dense").merged({
        "epochs": 3, "finetune_epochs": 0, "augment": None,
        "schedule": {"name": "simple", "start_epoch": 0, "steps": 1}})
    summary = train_run(config, out, train_limit=3000, test_limit=500, progress=False,
                        plot=False)
    assert summary["fully_sharp"], summary["final_sharpness"]
    return out
