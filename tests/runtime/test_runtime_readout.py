"""Runtime: Upsample2d and Unflatten primitives, the readout property, predict per readout,
and the file format for the new primitives (numpy only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from whetstone.runtime import (
    PRIMITIVES,
    READOUTS,
    Add,
    Affine,
    Concat,
    Conv2d,
    Decode,
    Flatten,
    SpikingNetwork,
    SumPool2d,
    Threshold,
    Unflatten,
    Upsample2d,
    predict,
    run,
)


def test_upsample2d_by_hand() -> None:
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])  # (1, 1, 2, 2)
    out = run(SpikingNetwork([Upsample2d((2, 3))]), x)
    expected = np.array([[[[1, 1, 1, 2, 2, 2], [1, 1, 1, 2, 2, 2],
                           [3, 3, 3, 4, 4, 4], [3, 3, 3, 4, 4, 4]]]], dtype=np.float64)
    np.testing.assert_array_equal(out, expected)
    # y[c, i, j] = x[c, i // sh, j // sw] on a random map, by the equation
    rng = np.random.default_rng(0)
    x = rng.random((3, 2, 4, 5))
    out = run(SpikingNetwork([Upsample2d((3, 2))]), x)
    i, j = np.meshgrid(np.arange(12), np.arange(10), indexing="ij")
    np.testing.assert_array_equal(out, x[:, :, i // 3, j // 2])


def test_upsample2d_keeps_spikes_binary() -> None:
    """After a Threshold, upsampled spikes stay bool (recorded spikes, gather path)."""
    net = SpikingNetwork([Threshold(0.5), Upsample2d(2), Flatten(),
                          Affine(np.ones((1, 4 * 4)), np.zeros(1)), Threshold(3.0)])
    x = np.zeros((2, 1, 2, 2))
    x[0, 0, 0, 0] = 1.0  # one spike -> 4 copies -> sum 4 >= 3
    out, spikes = run(net, x, record=True)
    np.testing.assert_array_equal(out, [[1.0], [0.0]])
    assert spikes[0].dtype == np.bool_


def test_unflatten() -> None:
    x = np.arange(24.0).reshape(2, 12)
    out = run(SpikingNetwork([Unflatten((3, 2, 2))]), x)
    np.testing.assert_array_equal(out, x.reshape(2, 3, 2, 2))
    back = run(SpikingNetwork([Unflatten((3, 2, 2)), Flatten()]), x)
    np.testing.assert_array_equal(back, x)
    # trailing axes are kept: (N, 6, 5) -> (N, 2, 3, 5)
    y = np.arange(60.0).reshape(2, 6, 5)
    np.testing.assert_array_equal(run(SpikingNetwork([Unflatten((2, 3))]), y),
                                  y.reshape(2, 2, 3, 5))
    with pytest.raises(ValueError, match=r"layer 0 \(Unflatten\).*\(N, 12, \.\.\.\)"):
        run(SpikingNetwork([Unflatten((3, 4))]), np.zeros((2, 10)))


@pytest.mark.parametrize("bad", [0, (2, 0), (1, 2, 3), 1.5])
def test_upsample2d_rejects_bad_scale(bad: object) -> None:
    with pytest.raises(ValueError, match="Upsample2d.scale"):
        Upsample2d(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [(), (0, 3), (2.5,), (True, 2)])
def test_unflatten_rejects_bad_sizes(bad: tuple) -> None:
    with pytest.raises(ValueError, match="Unflatten.sizes"):
        Unflatten(bad)


def test_upsample2d_needs_4d_input() -> None:
    with pytest.raises(ValueError, match=r"layer 1 \(Upsample2d\).*\(N, C, H, W\)"):
        run(SpikingNetwork([Threshold(0.5), Upsample2d(2)]), np.zeros((2, 4)))


def _readout_nets() -> dict[str, SpikingNetwork]:
    rng = np.random.default_rng(1)
    hidden = [Flatten(), Affine(rng.normal(size=(6, 8)), rng.normal(size=6)), Threshold(0.5)]
    conv = [Conv2d(rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3), padding=1),
            Threshold(0.5)]
    return {
        "decode": SpikingNetwork([*hidden, Decode(np.eye(2, 6))]),
        "affine": SpikingNetwork([*hidden, Affine(rng.normal(size=(2, 6)), np.zeros(2))]),
        "affine+unflatten": SpikingNetwork(
            [*hidden, Affine(rng.normal(size=(4, 6)), np.zeros(4)), Unflatten((1, 2, 2))]),
        "conv2d": SpikingNetwork([*conv, Upsample2d(2),
                                  Conv2d(rng.normal(size=(4, 3, 1, 1)), np.zeros(4))]),
        "pool": SpikingNetwork([*conv, SumPool2d(2, 2, scale=0.25)]),
        "spikes": SpikingNetwork([*conv, Upsample2d(2)]),
        "identity": SpikingNetwork([Flatten()]),
        "add": SpikingNetwork([*conv, Conv2d(rng.normal(size=(3, 3, 1, 1)), np.zeros(3)),
                               Add(), Flatten()], inputs=[(-1,), (0,), (1,), (2, 1), (3,)]),
        "concat": SpikingNetwork([*conv, Concat()], inputs=[(-1,), (0,), (1, 1)]),
    }


def test_readout_kinds() -> None:
    nets = _readout_nets()
    got = {name: (net.readout, net.readout_index) for name, net in nets.items()}
    assert got == {
        "decode": ("decode", 3), "affine": ("affine", 3), "affine+unflatten": ("affine", 3),
        "conv2d": ("conv2d", 3), "pool": ("pool", 2), "spikes": ("spikes", 1),
        "identity": ("identity", None), "add": ("add", 3), "concat": ("concat", 2),
    }
    assert {kind for kind, _ in got.values()} == set(READOUTS)
    assert SpikingNetwork([]).readout == "identity"


def test_predict_per_readout() -> None:
    nets = _readout_nets()
    rng = np.random.default_rng(2)
    flat_x, map_x = rng.random((5, 2, 2, 2)) * 4 - 1, rng.random((5, 2, 3, 3)) * 4 - 1
    for name in ("decode", "affine"):
        scores = run(nets[name], flat_x)
        np.testing.assert_array_equal(predict(nets[name], flat_x), scores.argmax(axis=1))
    scores = run(nets["conv2d"], map_x)
    assert scores.shape == (5, 4, 6, 6)
    pred = predict(nets["conv2d"], map_x)  # per pixel
    assert pred.shape == (5, 6, 6)
    np.testing.assert_array_equal(pred, scores.argmax(axis=1))
    for name in ("spikes", "identity"):
        with pytest.raises(ValueError, match=f"readout is '{name}'.*use run"):
            predict(nets[name], map_x if name == "spikes" else flat_x)


def test_new_primitives_round_trip_the_file(tmp_path: Path) -> None:
    assert PRIMITIVES["Upsample2d"] is Upsample2d and PRIMITIVES["Unflatten"] is Unflatten
    nets = _readout_nets()
    rng = np.random.default_rng(3)
    for name, x in (("conv2d", rng.random((4, 2, 3, 3))),
                    ("affine+unflatten", rng.random((4, 8)))):
        net = nets[name]
        net.save(tmp_path / f"{name}.npz")
        back = SpikingNetwork.load(tmp_path / f"{name}.npz")
        assert [layer.kind for layer in back.layers] == [layer.kind for layer in net.layers]
        assert [layer.params() for layer in back.layers] == \
            [layer.params() for layer in net.layers]
        assert back.readout == net.readout
        np.testing.assert_array_equal(run(back, x), run(net, x))
    assert "Upsample2d(scale=[2, 2])" in repr(nets["conv2d"])


def test_upsample_scale_is_bounded():
    from whetstone.runtime.primitives import MAX_UPSAMPLE, Upsample2d

    assert Upsample2d((MAX_UPSAMPLE, 1)).scale == (MAX_UPSAMPLE, 1)
    with pytest.raises(ValueError, match="exceeds"):
        Upsample2d((1, MAX_UPSAMPLE + 1))
