"""SynOps, network statistics and quantization of graph networks (residual sums and
concatenations), against counts and networks written out by hand."""

from __future__ import annotations

import numpy as np

import whetstone.runtime as rt
from whetstone.metrics import network_stats, synaptic_ops
from whetstone.metrics.synops import conv_fanout
from whetstone.quantization import fake_quantize, quantize


def graph(rng: np.random.Generator, avg: bool) -> rt.SpikingNetwork:
    """conv -> T -> conv -> Add(., T) -> T -> Concat(T, T1) -> pool (average or OR + T) ->
    Flatten -> Affine -> T -> Decode; input (2, 4, 4)."""
    pool: list[rt.Primitive] = [rt.SumPool2d(2, 2, scale=0.25)] if avg else \
        [rt.SumPool2d(2, 2), rt.Threshold(0.5)]
    layers = [
        rt.Conv2d(rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3) * 0.3, padding=1),  # 0
        rt.Threshold(0.5),                                                               # 1
        rt.Conv2d(rng.normal(size=(3, 3, 3, 3)), rng.normal(size=3) * 0.3, padding=1),  # 2
        rt.Add(),                                                                        # 3
        rt.Threshold(0.5),                                                               # 4
        rt.Concat(),                                                                     # 5
        *pool,                                                                           # 6(,7)
        rt.Flatten(),
        rt.Affine(rng.normal(size=(8, 24)), rng.normal(size=8) * 0.3),
        rt.Threshold(0.5),
        rt.Decode((rng.random((3, 8)) < 0.5).astype(float)),
    ]
    inputs = [(-1,), (0,), (1,), (2, 1), (3,), (4, 1)]
    inputs += [(k - 1,) for k in range(len(inputs), len(layers))]
    return rt.SpikingNetwork(layers, {"input_shape": [2, 4, 4]}, inputs)


def test_synops_of_a_graph_by_hand() -> None:
    rng = np.random.default_rng(0)
    net = graph(rng, avg=True)
    x = rng.random((9, 2, 4, 4)) * 2
    result = synaptic_ops(net, x, batch_size=4)
    _, spikes = rt.run(net, x, record=True)
    s1, s4, s9 = spikes
    pooled = np.concatenate([s4, s1], 1).reshape(9, 6, 2, 2, 2, 2).mean(axis=(3, 5))
    conv0, conv2, _, _ = (net.layers[i] for i in (0, 2, 8, 10))

    def conv_ops(layer: rt.Conv2d, h: np.ndarray) -> float:
        return float((np.count_nonzero(h, axis=(0, 1)) * conv_fanout(layer, (4, 4))).sum()) / 9

    want = [
        (0, "real", conv_ops(conv0, x)),
        (2, "binary", conv_ops(conv2, s1)),
        (8, "real", np.count_nonzero(pooled) * 8 / 9),
        (10, "binary", np.count_nonzero(s9) * 3 / 9),
    ]
    got = [(e["index"], e["input"], e["synops"]) for e in result["layers"]]
    assert [g[:2] for g in got] == [w[:2] for w in want]  # Add and Concat are not counted
    np.testing.assert_allclose([g[2] for g in got], [w[2] for w in want], rtol=1e-12)
    assert result["layers"][1]["ac"] == result["layers"][1]["synops"] > 0
    assert result["layers"][2]["mac"] == result["layers"][2]["synops"] > 0
    assert result["neuron_updates"] == 48 + 48 + 8
    assert result["layers"][0]["dense_mac"] == 3 * 4 * 4 * 2 * 9
    assert result["readout"] == {"kind": "decode", "index": 10}


def test_network_stats_of_a_graph() -> None:
    rng = np.random.default_rng(1)
    net = graph(rng, avg=False)
    x = rng.random((12, 2, 4, 4)) * 2
    stats = network_stats(net, x, y=np.zeros(12, dtype=int), batch_size=5)
    _, spikes = rt.run(net, x, record=True)
    dens = [e["density"] for e in stats["layers"] if e["kind"] == "Threshold"]
    np.testing.assert_allclose(dens, [s.mean() for s in spikes], rtol=1e-12)
    kinds = {e["kind"]: e for e in stats["layers"]}
    assert kinds["Add"]["synops"] is None and kinds["Concat"]["output_shape"] == [6, 4, 4]
    pred = rt.predict(net, x)
    assert stats["accuracy"] == float((pred == 0).mean())


def test_quantized_graph_on_integer_inputs_is_the_fake_quantized_graph() -> None:
    rng = np.random.default_rng(2)
    net = graph(rng, avg=False)
    x = rng.random((64, 2, 4, 4)) < 0.5
    for bits in (3, 6):
        q = quantize(net, bits, integer_inputs=True)
        assert q.inputs == net.inputs
        modes = {e["index"]: e["mode"] for e in q.metadata["quantization"]["layers"]}
        assert modes[0] == modes[6] == modes[9] == "integer (exact)"  # conv, OR pool, affine
        assert modes[2].startswith("dequantized")  # read by the Add: no threshold of its own
        out_q, spikes_q = rt.run(q, x, record=True)
        out_f, spikes_f = rt.run(fake_quantize(net, bits), x, record=True)
        np.testing.assert_array_equal(out_q, out_f)
        for a, b in zip(spikes_q, spikes_f, strict=True):
            np.testing.assert_array_equal(a, b)
        assert np.all(np.asarray(q.layers[0].weight) == np.round(q.layers[0].weight))
