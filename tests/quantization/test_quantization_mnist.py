"""Accuracy against bit width on a really trained (tiny, quick) mnist-dense network."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

import whetstone  # noqa: E402
from whetstone.quantization import levels, quantization_sweep, quantize  # noqa: E402
from whetstone.runtime import Affine, Threshold  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tiny_dense_run):
    from whetstone.conversion import to_spiking

    net = to_spiking(whetstone.runs.load_run(tiny_dense_run).model)
    test = whetstone.runs.load_split("mnist", "test", limit=500)
    return net, test.x.numpy(), test.y.numpy()


def test_sweep_16_bits_equal_2_bits_degrades(trained) -> None:
    net, x, y = trained
    rows = quantization_sweep(net, x, y, bits=[2, 4, 8, 16])
    json.dumps(rows)
    by_bits = {r["bits"]: r for r in rows}
    reference = rows[0]["reference_accuracy"]
    assert reference > 0.3
    # 16 bits: tolerance one sample of 500 in accuracy, 99 % of predictions identical
    # (only the first layer, on real pixels, rounds its threshold: half a weight unit)
    assert abs(by_bits[16]["accuracy"] - reference) <= 1 / 500
    assert by_bits[16]["agreement"] >= 0.99
    # 2 bits (ternary weights, one level per layer) loses a lot
    assert by_bits[2]["accuracy"] < reference - 0.1
    assert by_bits[2]["agreement"] < by_bits[16]["agreement"]


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_trained_weights_integer_and_levels(trained, bits) -> None:
    net, _, _ = trained
    q = quantize(net, bits)
    for layer in q.layers:
        if isinstance(layer, Affine):
            w = layer.weight
            assert np.all(w == np.rint(w)) and not layer.bias.any()
            assert len(np.unique(np.abs(w[w != 0]))) <= levels(bits)
        if isinstance(layer, Threshold):
            assert np.all(layer.theta == np.rint(layer.theta))
