"""network_stats on a really trained (tiny, quick) mnist-dense network."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

import whetstone  # noqa: E402
from whetstone.metrics import network_stats, spike_density, synaptic_ops  # noqa: E402
from whetstone.runtime import run  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tiny_dense_run):
    from whetstone.conversion import to_spiking

    net = to_spiking(whetstone.runs.load_run(tiny_dense_run).model)
    test = whetstone.runs.load_split("mnist", "test", limit=300)
    return net, test.x.numpy(), test.y.numpy()


def test_stats_are_sane(trained) -> None:
    net, x, y = trained
    stats = network_stats(net, x, y, batch_size=128)
    json.dumps(stats)
    spiking = [e for e in stats["layers"] if e["kind"] == "Threshold"]
    assert len(spiking) == net.spiking_layers == 3
    for e in spiking:
        assert 0.0 <= e["density"] <= 1.0
        assert 0.0 <= e["gini"] < 1.0
    # densities agree with the runtime's own recorded spikes
    _, spikes = run(net, x, record=True)
    assert [e["density"] for e in spiking] == pytest.approx(spike_density(spikes)["per_layer"])
    total = stats["total"]
    assert total["ac"] > 0 and total["mac"] > 0
    # MAC: the first Affine only, real pixels: nonzero pixels x fan-out 256, per sample
    first = next(e for e in stats["layers"] if e["kind"] == "Affine")
    assert first["input"] == "real"
    assert total["mac"] == first["mac"] == pytest.approx(np.count_nonzero(x) * 256 / len(x))
    # AC: every later layer's input spikes x its fan-out (256->64, 64->100, decode 100->10)
    fanouts = [64, 100, 10]
    expected_ac = sum(int(s.sum()) * f for s, f in zip(spikes, fanouts, strict=True)) / len(x)
    assert total["ac"] == pytest.approx(expected_ac)
    assert total["dense_mac"] == 784 * 256 + 256 * 64 + 64 * 100 + 100 * 10
    assert total["synops"] < total["dense_mac"]
    assert stats["energy"]["45nm-fp32"]["spiking_pj"] < stats["energy"]["45nm-fp32"][
        "dense_ann_pj"]
    assert stats["accuracy"] > 0.3  # well above chance even for this quick network
    # the same counts from synaptic_ops alone, in another batching
    assert synaptic_ops(net, x, batch_size=7)["total"] == pytest.approx(
        {k: total[k] for k in ("ac", "mac", "synops", "dense_mac")})
