"""The numpy spiking runtime: primitives against naive references, files, and no torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from whetstone.runtime import (
    Affine,
    Conv2d,
    Decode,
    Flatten,
    NetworkFileError,
    SpikingNetwork,
    SumPool2d,
    Threshold,
    predict,
    run,
)


def naive_conv(x, w, b, stride, padding, dilation, groups):
    """Loop reference of :class:`Conv2d` on ``(N, C, H, W)`` (float64)."""
    top, bottom, left, right = padding
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right))).astype(np.float64)
    n, _, hp, wp = xp.shape
    cout, cg, kh, kw = w.shape
    ho = (hp - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wp - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, cout, ho, wo))
    per_group = cout // groups
    for o in range(cout):
        g = o // per_group
        for i in range(ho):
            for j in range(wo):
                for c in range(cg):
                    for u in range(kh):
                        for v in range(kw):
                            out[:, o, i, j] += w[o, c, u, v] * xp[
                                :, g * cg + c, i * stride[0] + u * dilation[0],
                                j * stride[1] + v * dilation[1]]
        out[:, o] += b[o]
    return out


def naive_pool(x, k, s, padding, scale):
    top, bottom, left, right = padding
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right))).astype(np.float64)
    ho = (xp.shape[2] - k[0]) // s[0] + 1
    wo = (xp.shape[3] - k[1]) // s[1] + 1
    out = np.zeros(x.shape[:2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = xp[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]].sum(
                axis=(2, 3))
    return out * scale


def small_net(rng: np.random.Generator) -> SpikingNetwork:
    """Conv -> spikes -> OR-pool -> conv (groups) -> spikes -> avg-pool -> dense -> decode."""
    f32 = np.float32
    key = np.zeros((3, 6))
    key[0, :2] = key[1, 2:4] = key[2, 4:] = 1
    return SpikingNetwork([
        Conv2d(rng.normal(size=(4, 2, 3, 3)).astype(f32), rng.normal(size=4).astype(f32) + 0.5,
               padding=(1, 1, 1, 1)),
        Threshold(0.5),
        SumPool2d((2, 2), (2, 2)),
        Threshold(0.5),
        Conv2d(rng.normal(size=(4, 2, 2, 2)).astype(f32), rng.normal(size=4).astype(f32),
               stride=(1, 2), padding=(0, 1, 1, 0), dilation=(2, 1), groups=2),
        Threshold(0.0),
        SumPool2d((2, 1), (1, 1), scale=0.5),
        Flatten(),
        Affine(rng.normal(size=(6, 16)).astype(f32), rng.normal(size=6).astype(f32)),
        Threshold(rng.normal(size=6) * 0.1),
        Decode(key),
    ], {"name": "small"})


# ---------------------------------------------------------------- primitives and simulation


def test_affine_threshold_decode_by_hand():
    w = np.array([[1.0, -1.0], [0.5, 0.5], [0.0, 0.0]])
    net = SpikingNetwork([Affine(w, [0.0, 0.0, 0.5]), Threshold(0.5),
                          Decode(np.array([[1, 1, 0], [0, 0, 1]]))])
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    logits, spikes = run(net, x, record=True)
    # sample 0: [1, 0.5, 0.5] -> all fire (ties fire); sample 1: [-1, 0.5, 0.5] -> [0, 1, 1]
    np.testing.assert_array_equal(spikes[0], [[True, True, True], [False, True, True]])
    # logits = (2a - 1) @ (2K - 1)^T
    np.testing.assert_array_equal(logits, [[1.0, -1.0], [-1.0, 1.0]])
    np.testing.assert_array_equal(predict(net, x), [0, 1])
    assert spikes[0].dtype == np.bool_


def test_tie_at_threshold_fires():
    """``z = 1[x >= theta]``: a neuron exactly on its threshold fires, one ulp below does not."""
    below = np.nextafter(0.5, 0.0)
    net = SpikingNetwork([Threshold(0.5)])
    out = run(net, np.array([[0.5, below, 0.75]]))
    np.testing.assert_array_equal(out, [[1.0, 0.0, 1.0]])
    per_neuron = SpikingNetwork([Threshold(np.array([0.0, 1.0, 2.0]))])
    np.testing.assert_array_equal(run(per_neuron, np.array([[0.0, 0.999, 2.0]])), [[1, 0, 1]])


@pytest.mark.parametrize(
    "stride,padding,dilation,groups",
    [((1, 1), (0, 0, 0, 0), (1, 1), 1), ((2, 1), (1, 2, 0, 1), (1, 2), 1),
     ((1, 1), (1, 1, 1, 1), (1, 1), 3), ((2, 2), (0, 1, 0, 1), (2, 1), 3)],
)
def test_conv2d_matches_loop_reference(stride, padding, dilation, groups):
    rng = np.random.default_rng(1)
    w = rng.normal(size=(6, 6 // groups, 3, 2)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    x = rng.normal(size=(3, 6, 7, 8)).astype(np.float32)
    net = SpikingNetwork([Conv2d(w, b, stride, padding, dilation, groups)])
    np.testing.assert_allclose(run(net, x), naive_conv(x, w, b, stride, padding, dilation, groups),
                               rtol=1e-12, atol=1e-12)


def test_conv2d_chunks_large_batches(monkeypatch):
    import whetstone.runtime.simulate as sim

    rng = np.random.default_rng(2)
    net = SpikingNetwork([Conv2d(rng.normal(size=(2, 1, 3, 3)), np.zeros(2), padding=1)])
    x = rng.normal(size=(5, 1, 6, 6))
    full = run(net, x)
    monkeypatch.setattr(sim, "_IM2COL_BYTES", 1)  # one sample per chunk
    sim._cache.clear()
    np.testing.assert_array_equal(run(net, x), full)


@pytest.mark.parametrize("k,s,padding,scale", [((2, 2), (2, 2), (0, 0, 0, 0), 1.0),
                                               ((3, 2), (1, 2), (1, 1, 0, 1), 1 / 6)])
def test_sum_pool_matches_reference(k, s, padding, scale):
    x = np.random.default_rng(3).random((2, 3, 7, 6))
    net = SpikingNetwork([SumPool2d(k, s, padding, scale)])
    np.testing.assert_allclose(run(net, x), naive_pool(x, k, s, padding, scale), rtol=1e-14)


def test_or_pool_is_max_of_spikes():
    spikes = np.random.default_rng(4).random((4, 2, 6, 6)) < 0.2
    net = SpikingNetwork([SumPool2d(2, 2), Threshold(0.5)])
    expected = spikes.reshape(4, 2, 3, 2, 3, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(run(net, spikes).astype(bool), expected)


def test_flatten_is_c_order():
    x = np.arange(2 * 3 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(run(SpikingNetwork([Flatten()]), x), x.reshape(2, 12))


def test_gather_and_matmul_paths_agree():
    rng = np.random.default_rng(5)
    net = SpikingNetwork([Threshold(0.5), Affine(rng.normal(size=(64, 300)).astype(np.float32),
                                                 rng.normal(size=64).astype(np.float32))])
    x = rng.random((7, 300))
    a = run(net, x, binary_affine="gather")
    b = run(net, x, binary_affine="matmul")
    c = run(net, x[:1])  # auto
    np.testing.assert_array_equal(a, b)  # float32 weights over spikes: exact in float64
    np.testing.assert_array_equal(a[:1], c)


def test_record_batches_and_dtype():
    rng = np.random.default_rng(6)
    net = small_net(rng)
    x = rng.normal(size=(9, 2, 8, 8)).astype(np.float32)
    logits, spikes = run(net, x, record=True)
    assert logits.shape == (9, 3) and logits.dtype == np.float64
    assert len(spikes) == net.spiking_layers == 4
    assert [s.shape for s in spikes] == [(9, 4, 8, 8), (9, 4, 4, 4), (9, 4, 3, 2), (9, 6)]
    assert all(s.dtype == np.bool_ for s in spikes)
    logits2, spikes2 = run(net, x, record=True, batch_size=2)
    np.testing.assert_array_equal(logits, logits2)
    for s, s2 in zip(spikes, spikes2, strict=True):
        np.testing.assert_array_equal(s, s2)
    assert run(net, x, dtype=np.float32).dtype == np.float32
    # decode logits of binary outputs are integers W - 2 hamming
    assert np.array_equal(logits, np.round(logits))
    assert net.num_classes == 3


def test_shape_errors_name_the_layer():
    net = SpikingNetwork([Affine(np.ones((2, 3)), np.zeros(2))])
    with pytest.raises(ValueError, match=r"layer 0 \(Affine\).*\(N, 3\)"):
        run(net, np.ones((1, 4)))
    with pytest.raises(ValueError, match="bias"):
        Affine(np.ones((2, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="zeros and ones"):
        Decode(np.array([[0.5, 1.0]]))
    with pytest.raises(TypeError, match="not a runtime primitive"):
        SpikingNetwork([object()])  # type: ignore[list-item]


def test_primitives_are_frozen():
    a = Affine(np.ones((2, 3)), np.zeros(2))
    with pytest.raises(ValueError):
        a.weight[0, 0] = 2.0
    with pytest.raises(AttributeError):
        a.weight = np.zeros((2, 3))  # type: ignore[misc]


# ------------------------------------------------------------------------------- files


def test_save_load_round_trip(tmp_path: Path):
    rng = np.random.default_rng(7)
    net = small_net(rng)
    path = tmp_path / "net.npz"
    net.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]  # no temporary file left
    back = SpikingNetwork.load(path)
    assert back.metadata == net.metadata
    assert [type(lay) for lay in back.layers] == [type(lay) for lay in net.layers]
    for a, b in zip(net.layers, back.layers, strict=True):
        assert a.params() == b.params()
        for name, arr in a.arrays().items():
            assert arr.dtype == b.arrays()[name].dtype
            np.testing.assert_array_equal(arr, b.arrays()[name])
    x = rng.normal(size=(5, 2, 8, 8))
    np.testing.assert_array_equal(run(net, x), run(back, x))
    with zipfile.ZipFile(path) as zf:  # plain arrays only: nothing to unpickle
        assert all(name.endswith(".npy") for name in zf.namelist())


def _first_weight_offset(path: Path, net: SpikingNetwork) -> int:
    data = path.read_bytes()
    weight = net.layers[0].arrays()["weight"]
    offset = data.find(weight.tobytes()[:32])
    assert offset > 0
    return offset + 5


def test_flipped_byte_is_detected(tmp_path: Path):
    net = small_net(np.random.default_rng(8))
    path = tmp_path / "net.npz"
    net.save(path)
    data = bytearray(path.read_bytes())
    data[_first_weight_offset(path, net)] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(NetworkFileError, match="net.npz"):
        SpikingNetwork.load(path)


def test_consistent_tampering_fails_the_checksum(tmp_path: Path):
    """A rewritten archive with valid zip CRCs but a changed weight fails the sha256."""
    net = small_net(np.random.default_rng(9))
    path = tmp_path / "net.npz"
    net.save(path)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["0.weight"] = arrays["0.weight"].copy()
    arrays["0.weight"][0, 0, 0, 0] += 1.0
    np.savez(path, **arrays)
    with pytest.raises(NetworkFileError, match="checksum mismatch"):
        SpikingNetwork.load(path)
    with pytest.raises(ValueError):  # NetworkFileError is a ValueError
        SpikingNetwork.load(path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 10])
def test_truncated_file(tmp_path: Path, keep: float):
    net = small_net(np.random.default_rng(10))
    path = tmp_path / "net.npz"
    net.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if keep < 1 else int(keep)])
    with pytest.raises(NetworkFileError, match=r"net\.npz"):
        SpikingNetwork.load(path)


def test_wrong_files(tmp_path: Path):
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(NetworkFileError, match="not a whetstone spiking network"):
        SpikingNetwork.load(other)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(NetworkFileError, match="text.npz"):
        SpikingNetwork.load(text)
    with pytest.raises(FileNotFoundError):
        SpikingNetwork.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="JSON"):
        SpikingNetwork([Flatten()], {"bad": object()}).save(tmp_path / "x.npz")


def test_compressed_members_are_refused_before_inflating(tmp_path: Path):
    """numpy.savez_compressed holds the same arrays, but a compressed member could declare
    any size: the format stores members, and load refuses others unread."""
    net = small_net(np.random.default_rng(11))
    path = tmp_path / "net.npz"
    net.save(path)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez_compressed(path, **arrays)
    with pytest.raises(NetworkFileError, match=r"net\.npz: member .* is compressed"):
        SpikingNetwork.load(path)


def test_members_must_be_the_ones_the_layers_name(tmp_path: Path):
    net = small_net(np.random.default_rng(12))
    path = tmp_path / "net.npz"
    net.save(path)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez(path, **arrays, extra=np.zeros(2))
    with pytest.raises(NetworkFileError, match=r"unexpected \['extra.npy'\]"):
        SpikingNetwork.load(path)
    del arrays["1.theta"]
    np.savez(path, **arrays)
    with pytest.raises(NetworkFileError, match=r"missing \['1.theta.npy'\]"):
        SpikingNetwork.load(path)


def test_load_allocates_about_what_the_arrays_need(tmp_path: Path):
    import tracemalloc

    weight = np.random.default_rng(13).normal(size=(1000, 2000)).astype(np.float32)  # 8 MB
    net = SpikingNetwork([Affine(weight, np.zeros(1000, np.float32)), Threshold(0.5)])
    path = tmp_path / "big.npz"
    net.save(path)
    tracemalloc.start()
    try:
        back = SpikingNetwork.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(back.layers[0].weight, weight)
    # the array as read, its frozen copy inside the primitive (whose finiteness check takes
    # a boolean mask of nbytes / 4), and 1 MiB read chunks; not the old twice-inflated copies
    assert peak < 2.25 * weight.nbytes + (4 << 20), peak


def test_runs_without_torch(tmp_path: Path):
    """whetstone.runtime imports and runs in a process where ``import torch`` fails."""
    rng = np.random.default_rng(11)
    net = small_net(rng)
    x = rng.normal(size=(4, 2, 8, 8))
    net.save(tmp_path / "net.npz")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", run(net, x))
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now raises ImportError
        import numpy as np
        import whetstone
        import whetstone.runtime as rt
        net = rt.SpikingNetwork.load({str(tmp_path / "net.npz")!r})
        out = rt.run(net, np.load({str(tmp_path / "x.npy")!r}))
        assert np.array_equal(out, np.load({str(tmp_path / "expected.npy")!r}))
        assert rt.predict(net, np.load({str(tmp_path / "x.npy")!r})).shape == (4,)
        assert sys.modules["torch"] is None
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_average_pooling_divides_like_torch():
    """``scale = 1 / d`` pools compute ``sum / d`` (correctly rounded), not
    ``sum * float(1 / d)``: for d = 49 the two differ on about 4 in 10 of these sums."""
    rng = np.random.default_rng(7)
    spikes = rng.random((200, 3, 7, 7)) < 0.5
    sums = spikes.sum(axis=(2, 3)).astype(np.float64)
    pool = SumPool2d(7, 7, scale=1 / 49)
    assert pool.divisor == 49 and SumPool2d(2, 2, scale=0.3).divisor is None
    out = run(SpikingNetwork([pool]), spikes).reshape(200, 3)
    np.testing.assert_array_equal(out, sums / 49)
    assert np.any(sums * (1 / 49) != sums / 49)
    out32 = run(SpikingNetwork([pool]), spikes, dtype=np.float32).reshape(200, 3)
    np.testing.assert_array_equal(out32, sums.astype(np.float32) / np.float32(49))
