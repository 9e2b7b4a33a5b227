"""Acceptance 6: network files written by format version 1 (before graphs) still load and
compute what they computed then (the files and expected values are in ``data/``, written
by ``data/make_legacy.py`` with the version-1 code)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from whetstone.runtime import SpikingNetwork, run

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["cnn", "dense"])
def test_version_1_file_loads_and_computes_the_recorded_values(name: str) -> None:
    path = DATA / f"legacy_v1_{name}.npz"
    with zipfile.ZipFile(path) as zf:
        raw = np.load(zf.open("__header__.npy"), allow_pickle=False)
    assert json.loads(raw.tobytes())["version"] == 1
    net = SpikingNetwork.load(path)
    expected = np.load(DATA / f"legacy_v1_{name}_expected.npz", allow_pickle=False)
    out, spikes = run(net, expected["x"], record=True, dtype=np.float64)
    np.testing.assert_array_equal(out, expected["out"])
    recorded = sorted((k for k in expected.files if k.startswith("spikes_")),
                      key=lambda k: int(k.split("_")[1]))
    assert len(spikes) == len(recorded) == net.spiking_layers
    for got, key in zip(spikes, recorded, strict=True):
        np.testing.assert_array_equal(got, expected[key])
    assert net.is_chain and net.inputs is None
    assert net.readout == ("decode" if name == "cnn" else "affine")
    assert net.input_shape == ((1, 8, 8) if name == "cnn" else (16,))
