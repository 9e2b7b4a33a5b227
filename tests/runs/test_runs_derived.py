"""Derived files are bound to the model they came from by its checksum."""

from __future__ import annotations

import shutil

import pytest

import whetstone as ws
from whetstone.runs import (
    StaleFileError,
    check_derived,
    model_hash,
    spiking_network,
    train_run,
)
from whetstone.runs.io import MODEL_HASH_KEY
from whetstone.runtime import SpikingNetwork

QUICK = {"epochs": 3, "finetune_epochs": 0,
         "schedule": {"name": "simple", "start_epoch": 0, "steps": 1}}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, mnist_ready):
    root = tmp_path_factory.mktemp("derived")
    config = ws.presets.get_preset("mnist-dense").merged(QUICK)
    for seed in (0, 1):
        train_run(config.merged({"seed": seed}), root / f"s{seed}", progress=False,
                  plot=False, train_limit=1000, test_limit=200)
    return root / "s0", root / "s1"


def test_spiking_network_records_and_reuses_the_model_checksum(two_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(two_runs[0], run)
    net = spiking_network(run)
    assert net.metadata[MODEL_HASH_KEY] == model_hash(run)
    saved = (run / "spiking.npz").read_bytes()
    assert SpikingNetwork.load(run / "spiking.npz").metadata[MODEL_HASH_KEY] == model_hash(run)
    spiking_network(run)
    assert (run / "spiking.npz").read_bytes() == saved  # reused, not rewritten


def test_a_changed_model_gets_a_fresh_spiking_network(two_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(two_runs[0], run)
    old = spiking_network(run)
    shutil.copy(two_runs[1] / "model.safetensors", run / "model.safetensors")
    new = spiking_network(run)
    assert new.metadata[MODEL_HASH_KEY] == model_hash(two_runs[1])
    assert new.metadata[MODEL_HASH_KEY] != old.metadata[MODEL_HASH_KEY]
    reference = spiking_network(two_runs[1])
    assert all(
        all((a == b).all() for a, b in zip(la.arrays().values(), lb.arrays().values(),
                                            strict=True))
        for la, lb in zip(new.layers, reference.layers, strict=True))


def test_stale_derived_metadata_is_refused(two_runs):
    check_derived({MODEL_HASH_KEY: model_hash(two_runs[0])}, "stats.json", two_runs[0])
    with pytest.raises(StaleFileError, match="stats.json"):
        check_derived({MODEL_HASH_KEY: model_hash(two_runs[1])}, "stats.json", two_runs[0])
    with pytest.raises(StaleFileError, match="not computed from the current model"):
        check_derived({}, "stats.json", two_runs[0])


def test_cli_reconverts_a_stale_spiking_file_and_stamps_stats(two_runs, tmp_path, capsys):
    """The stale-network probe of issue 11: simulate after the model changed uses the new one."""
    import json

    from whetstone.cli.main import main

    run = tmp_path / "run"
    shutil.copytree(two_runs[0], run)
    assert main(["convert", str(run)]) == 0
    old = SpikingNetwork.load(run / "spiking.npz").metadata[MODEL_HASH_KEY]
    assert old == model_hash(run)
    shutil.copy(two_runs[1] / "model.safetensors", run / "model.safetensors")
    assert main(["simulate", str(run), "--limit", "100", "--json"]) == 0
    capsys.readouterr()
    assert SpikingNetwork.load(run / "spiking.npz").metadata[MODEL_HASH_KEY] == model_hash(
        two_runs[1])
    assert main(["stats", str(run), "--limit", "50", "--json"]) == 0
    stats = json.loads((run / "stats.json").read_text())
    assert stats[MODEL_HASH_KEY] == model_hash(two_runs[1])
