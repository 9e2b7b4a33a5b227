"""Graph networks in the numpy runtime: the Add and Concat primitives, sources and their
checks, evaluation order and freeing, the kernel table, and the version-2 file format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from whetstone.runtime import (
    KERNELS,
    Add,
    Affine,
    Concat,
    Conv2d,
    Decode,
    Flatten,
    NetworkFileError,
    Primitive,
    SpikingNetwork,
    SumPool2d,
    Threshold,
    Unflatten,
    Upsample2d,
    register_kernel,
    run,
)
from whetstone.runtime.network import _digest


def residual_net(rng: np.random.Generator) -> SpikingNetwork:
    """x -> conv a -> T -> conv b; T(b + a's spikes); concat with T(a); pool; dense; decode."""
    layers: list[Primitive] = [
        Conv2d(rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3) * 0.1, padding=1),  # 0
        Threshold(0.5),                                                               # 1
        Conv2d(rng.normal(size=(3, 3, 3, 3)) * 0.5, np.zeros(3), padding=1),          # 2
        Add(),                                                                        # 3
        Threshold(0.5),                                                               # 4
        Concat(),                                                                     # 5
        SumPool2d((4, 4), (4, 4), scale=1 / 16),                                      # 6
        Flatten(),                                                                    # 7
        Affine(rng.normal(size=(8, 6)), rng.normal(size=8) * 0.1),                   # 8
        Threshold(0.25),                                                              # 9
        Decode((rng.random((3, 8)) < 0.5).astype(float)),                             # 10
    ]
    inputs = [(-1,), (0,), (1,), (2, 1), (3,), (4, 1), (5,), (6,), (7,), (8,), (9,)]
    return SpikingNetwork(layers, {"input_shape": [2, 4, 4]}, inputs)


def reference(net: SpikingNetwork, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The same network written out by hand with numpy (float64)."""
    c0, _, c2, _, _, _, _, _, a8, t9, d10 = net.layers

    def conv(layer: Conv2d, h: np.ndarray) -> np.ndarray:
        return run(SpikingNetwork([layer]), h)

    s1 = conv(c0, x) >= 0.5
    s4 = (conv(c2, s1) + s1) >= 0.5
    cat = np.concatenate([s4, s1], axis=1).astype(np.float64)
    pooled = cat.reshape(len(x), 6, 1, 4, 1, 4).sum(axis=(3, 5)).reshape(len(x), 6) / 16
    s9 = pooled @ a8.weight.T + a8.bias >= t9.theta
    return s9 @ d10.weight.T + d10.bias, [s1, s4, s9]


def test_graph_computes_the_hand_written_reference() -> None:
    rng = np.random.default_rng(0)
    net = residual_net(rng)
    x = rng.random((7, 2, 4, 4)) * 2
    out, spikes = run(net, x, record=True, batch_size=3)
    want, want_spikes = reference(net, x)
    np.testing.assert_array_equal(out, want)
    assert len(spikes) == net.spiking_layers == 3
    for got, expected in zip(spikes, want_spikes, strict=True):
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, expected)
    assert 0 < np.mean(spikes[1]) < 1 and 0 < np.mean(spikes[2]) < 1
    assert not net.is_chain and net.readout == "decode" and net.readout_index == 10
    assert net.num_classes == 3
    shapes = net.shapes(net.input_shape)
    assert shapes[3] == (3, 4, 4) and shapes[5] == (6, 4, 4) and shapes[-1] == (3,)


def test_add_sums_left_to_right_and_concat_keeps_spikes() -> None:
    x = np.array([[1.0, 2.0], [3.0, -4.0]])
    net = SpikingNetwork([Add()], inputs=[(-1, -1, -1)])
    np.testing.assert_array_equal(run(net, x), 3 * x)
    spikes = np.array([[True, False], [False, True]])
    both = SpikingNetwork([Concat(), Threshold(0.5)], inputs=[(-1, -1), (0,)])
    np.testing.assert_array_equal(run(both, spikes), np.concatenate([spikes, spikes], 1))
    summed = SpikingNetwork([Add()], inputs=[(-1, -1)])  # spikes add up to counts
    np.testing.assert_array_equal(run(summed, spikes), 2.0 * spikes)


def test_output_shapes_and_their_errors() -> None:
    assert Add().output_shape((2, 3), (2, 3)) == (2, 3)
    assert Concat().output_shape((2, 4, 4), (5, 4, 4)) == (7, 4, 4)
    assert Concat().output_shape((3,), (4,), (1,)) == (8,)
    assert Flatten().output_shape((2, 3, 4)) == (24,)
    assert Unflatten((2, 3)).output_shape((6,)) == (2, 3)
    assert Upsample2d(2).output_shape((1, 2, 3)) == (1, 4, 6)
    assert SumPool2d(2, 2).output_shape((3, 5, 5)) == (3, 2, 2)
    assert Threshold(np.ones((3, 1, 1))).output_shape((3, 4, 4)) == (3, 4, 4)
    with pytest.raises(ValueError, match=r"Add expects input shapes that are all equal"):
        Add().output_shape((2, 3), (3, 2))
    with pytest.raises(ValueError, match=r"Concat expects .*agree after the first axis"):
        Concat().output_shape((2, 4, 4), (2, 4, 5))
    with pytest.raises(ValueError, match="Add takes two or more inputs, got 1"):
        Add().output_shape((2,))
    with pytest.raises(ValueError, match="Flatten takes 1 input"):
        Flatten().output_shape((2,), (2,))
    with pytest.raises(ValueError, match=r"Affine expects input \(4,\), got \(5,\)"):
        Affine(np.zeros((2, 4)), np.zeros(2)).output_shape((5,))
    with pytest.raises(ValueError, match="Threshold expects input a shape theta"):
        Threshold(np.ones(3)).output_shape((4,))
    with pytest.raises(ValueError, match=r"layer 1 \(Add\): Add expects"):
        SpikingNetwork([Flatten(), Add()], inputs=[(-1,), (0, -1)]).shapes((2, 2))


@pytest.mark.parametrize(("layers", "inputs", "match"), [
    ([Flatten(), Flatten()], [(-1,)], "inputs has 1 entries for 2 layers"),
    ([Flatten(), Flatten()], [(-1,), (1,)], r"layer 1 \(Flatten\): sources \(1,\) must be "
                                            "earlier layers"),
    ([Flatten(), Flatten()], [(-1,), (-2,)], "must be earlier layers"),
    ([Flatten(), Add()], [(-1,), (0,)], r"layer 1 \(Add\) takes two or more inputs"),
    ([Flatten(), Flatten()], [(-1,), (0, -1)], r"layer 1 \(Flatten\) takes 1 input"),
    ([Flatten(), Flatten(), Flatten()], [(-1,), (-1,), (1,)],
     r"outputs of layers \[0\] are never read"),
    ([Add()], None, r"layer 0 \(Add\) takes two or more inputs; a chain"),
])
def test_bad_sources_are_refused(layers, inputs, match) -> None:
    with pytest.raises(ValueError, match=match):
        SpikingNetwork(layers, inputs=inputs)


def test_sources_must_be_ints() -> None:
    with pytest.raises(TypeError, match="sources must be ints"):
        SpikingNetwork([Add()], inputs=[(-1, 0.5)])


def test_chain_sources_are_a_chain() -> None:
    net = SpikingNetwork([Flatten(), Threshold(0.5)], inputs=[(-1,), (0,)])
    assert net.is_chain and net.inputs is None and net.sources(1) == (0,)
    assert net.consumers() == {-1: [0], 0: [1], 1: []}


def test_values_are_freed_after_their_last_reader() -> None:
    """While layer ``i`` runs, only the values later layers read (and layer ``i``'s own
    inputs and output) are alive."""
    import weakref

    from whetstone.runtime import Context, walk

    net = residual_net(np.random.default_rng(1))
    x = np.random.default_rng(2).random((2, 2, 4, 4))
    refs: dict[int, weakref.ref] = {}
    alive_at: dict[int, set[int]] = {}
    for i, inputs, out in walk(net, x, Context(np.dtype(np.float64))):
        refs[i] = weakref.ref(out)
        del inputs, out
        alive_at[i] = {j for j, r in refs.items() if r() is not None}
    assert net.consumers()[1] == [2, 3, 5]
    assert alive_at[3] == {1, 2, 3}  # 0 was last read by 1
    assert alive_at[5] == {1, 4, 5}  # 2 and 3 freed; 1 read for the last time by 5
    assert alive_at[10] == {9, 10}


def test_kernel_table_has_every_primitive_and_takes_new_ones() -> None:
    from whetstone.runtime import PRIMITIVES

    assert set(PRIMITIVES.values()) <= set(KERNELS)

    class Negate(Flatten):
        """A subclass of a registered type: Flatten's kernel until it has its own."""

    from whetstone.runtime import kernel_for

    assert kernel_for(Negate()) is KERNELS[Flatten]
    saved = dict(KERNELS)
    try:
        @register_kernel(Negate)
        def _negate(layer, xs, ctx):
            return -xs[0].astype(ctx.dtype)

        assert kernel_for(Negate()) is _negate and kernel_for(Flatten()) is KERNELS[Flatten]
        x = np.array([[1.0, -2.0]])
        np.testing.assert_array_equal(run(SpikingNetwork([Flatten()]), x), x)
        with pytest.raises(TypeError, match="runtime primitive"):
            SpikingNetwork([Negate()])  # the network admits only the file-format primitives
    finally:
        KERNELS.clear()
        KERNELS.update(saved)
    with pytest.raises(TypeError, match="Primitive subclasses"):
        register_kernel(int)


def _header(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return json.loads(z["__header__"].tobytes())


def test_graph_round_trips_the_file_as_version_2(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    net = residual_net(rng)
    net.save(tmp_path / "g.npz")
    header = _header(tmp_path / "g.npz")
    assert header["version"] == 2
    assert header["inputs"] == [list(s) for s in net.inputs]
    back = SpikingNetwork.load(tmp_path / "g.npz")
    assert back.inputs == net.inputs and back.metadata == net.metadata
    x = rng.random((5, 2, 4, 4)) * 2
    np.testing.assert_array_equal(run(back, x), run(net, x))
    chain = SpikingNetwork([Flatten(), Threshold(0.5)])
    chain.save(tmp_path / "c.npz")
    header = _header(tmp_path / "c.npz")
    assert header["version"] == 1 and "inputs" not in header
    assert "inputs=[[-1], [0], [1], [2, 1]" in repr(net)


def _forge(src: Path, dst: Path, edit) -> None:
    """Rewrite the header of ``src`` with ``edit`` and a valid checksum (a consistent forgery:
    only the loader's own checks can refuse it)."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "__header__"}
        header = json.loads(z["__header__"].tobytes())
    header.pop("sha256")
    edit(header)
    header["sha256"] = _digest(header, arrays)
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(dst, __header__=blob, **arrays)


@pytest.mark.parametrize(("edit", "match"), [
    (lambda h: h.update(inputs=[[-1]] * (len(h["layers"]) - 1)), "needs 'inputs'"),
    (lambda h: h.pop("inputs"), "needs 'inputs'"),
    (lambda h: h["inputs"].__setitem__(3, [2, 3]), r"layer 3: inputs must be"),
    (lambda h: h["inputs"].__setitem__(3, [2, True]), r"layer 3: inputs must be"),
    (lambda h: h["inputs"].__setitem__(3, []), r"layer 3: inputs must be"),
    (lambda h: h["inputs"].__setitem__(3, [-1] * 5000), r"layer 3: inputs must be 1 to 4096"),
    (lambda h: h["inputs"].__setitem__(3, [2]), r"invalid graph: layer 3 \(Add\) takes two"),
    (lambda h: h["inputs"].__setitem__(6, [4]), r"invalid graph: the outputs of layers \[5\]"),
    (lambda h: h.update(version=1), "a version 1 header has no 'inputs'"),
    (lambda h: h.update(version=3), "unsupported format version 3"),
])
def test_forged_graph_headers_are_refused(tmp_path: Path, edit, match) -> None:
    net = residual_net(np.random.default_rng(4))
    net.save(tmp_path / "g.npz")
    _forge(tmp_path / "g.npz", tmp_path / "bad.npz", edit)
    with pytest.raises(NetworkFileError, match=match):
        SpikingNetwork.load(tmp_path / "bad.npz")


def test_tampered_sources_fail_the_checksum(tmp_path: Path) -> None:
    net = residual_net(np.random.default_rng(5))
    net.save(tmp_path / "g.npz")
    with np.load(tmp_path / "g.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["__header__"].tobytes())
    header["inputs"][5] = [1, 4]  # a valid graph, but not the one that was saved
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(NetworkFileError, match="checksum mismatch"):
        SpikingNetwork.load(tmp_path / "bad.npz")


def test_merge_shape_errors_at_run_time_name_the_layer() -> None:
    net = SpikingNetwork([Flatten(), Add()], inputs=[(-1,), (0, -1)])
    with pytest.raises(ValueError, match=r"layer 1 \(Add\): Add expects inputs of equal "
                                         r"shape, got \(2, 4\), \(2, 2, 2\)"):
        run(net, np.zeros((2, 2, 2)))
    cat = SpikingNetwork([Flatten(), Concat()], inputs=[(-1,), (0, -1)])
    with pytest.raises(ValueError, match=r"layer 1 \(Concat\): Concat expects inputs"):
        run(cat, np.zeros((2, 2, 2)))


def test_graph_in_float32_matches_float64_decisions() -> None:
    rng = np.random.default_rng(6)
    net = residual_net(rng)
    x = (rng.random((16, 2, 4, 4)) * 2).astype(np.float32)
    out32, spikes32 = run(net, x, record=True, dtype=np.float32)
    out64 = run(net, x)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-5, atol=1e-5)
    assert all(s.dtype == np.bool_ for s in spikes32)
