"""The export targets (:data:`whetstone.export.TARGETS`): the table itself, what each
target writes (neuron form, ``dt``, threshold for the importer's comparison, pooling node,
no ``v_reset``, batch-safe ``Flatten``), refusals with their reasons, exact round trips
through :func:`from_nir` for every accepted form, and the ``whetstone export --target``
command. The importers themselves run in ``tests/interop``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import whetstone.runtime as rt

nir = pytest.importorskip("nir", reason="the 'nir' package (extra 'nir') is not installed")
h5py = pytest.importorskip("h5py")

from whetstone.export import (  # noqa: E402
    NEURON_FORMS,
    TARGET_NAMES,
    TARGETS,
    NIRExportError,
    exported_threshold,
    from_graph,
    from_nir,
    to_graph,
    to_nir,
)

ACCEPTED = [(t, n) for t in TARGETS for n in TARGETS[t].dt]
REFUSED = [(t, n) for t in TARGETS for n in TARGETS[t].refused]


def conv_net() -> rt.SpikingNetwork:
    """Conv (grouped second) -> OR-pools -> pool scaled by 0.5 -> Flatten -> Affine -> decode, with
    per-neuron thresholds; input (2, 8, 8), recorded in the metadata."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    return rt.SpikingNetwork([
        rt.Conv2d(rng.normal(size=(4, 2, 3, 3)).astype(f32), rng.normal(size=4).astype(f32),
                  padding=(1, 1, 1, 1)),
        rt.Threshold(rng.normal(size=(4, 1, 1)).astype(f32)),
        rt.SumPool2d((2, 2), (2, 2)), rt.Threshold(0.5),
        rt.Conv2d(rng.normal(size=(6, 2, 3, 3)).astype(f32), np.zeros(6, f32),
                  padding=(1, 1, 1, 1), groups=2),
        rt.Threshold(np.float32(0.25)),
        rt.SumPool2d((2, 2), (2, 2), scale=0.5),
        rt.Flatten(),
        rt.Affine(rng.normal(size=(12, 24)).astype(f32), rng.normal(size=12).astype(f32)),
        rt.Threshold(0.0),
        rt.Decode((rng.random((3, 12)) < 0.5).astype(f32)),
    ], {"input_shape": [2, 8, 8]})


def test_table_covers_every_target_and_form() -> None:
    assert TARGET_NAMES == ("generic", "norse", "snntorch", "spikingjelly", "sinabs")
    assert isinstance(TARGETS["norse"].dt, type(TARGETS["sinabs"].dt))
    for name, target in TARGETS.items():
        assert target.name == name
        # every form is either written (with its dt) or refused (with a reason), never both
        assert set(target.dt) | set(target.refused) == set(NEURON_FORMS)
        assert not set(target.dt) & set(target.refused)
        assert target.neuron in target.dt
        assert all(dt > 0 for dt in target.dt.values())
        assert all(len(reason) > 40 for reason in target.refused.values())
        assert target.fires_on in (">", ">=") and target.pool in ("sumpool", "conv")
        assert target.loading and target.batching
    assert "norse.torch.from_nir" in TARGETS["norse"].loading
    assert "import_from_nir" in TARGETS["snntorch"].loading
    assert "reset_mem" in TARGETS["snntorch"].loading
    assert "nir_exchange.import_from_nir" in TARGETS["spikingjelly"].loading
    assert "SingleSpike" in TARGETS["sinabs"].loading
    assert "num_timesteps=1" in TARGETS["sinabs"].loading


@pytest.mark.parametrize(("target", "neuron"), REFUSED)
def test_refused_forms_name_the_reason(target: str, neuron: str, tmp_path: Path) -> None:
    path = tmp_path / "m.nir"
    with pytest.raises(ValueError, match=f"target '{target}'") as info:
        to_nir(conv_net(), path, target=target, neuron=neuron)
    assert TARGETS[target].refused[neuron] in str(info.value)
    assert not path.exists()


def test_unknown_target_and_neuron(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="target must be one of .*'loihi'"):
        to_nir(conv_net(), tmp_path / "m.nir", target="loihi")
    with pytest.raises(ValueError, match="neuron must be one of .*'hh'"):
        to_nir(conv_net(), tmp_path / "m.nir", neuron="hh")


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_default_form_and_metadata(target: str) -> None:
    settings = TARGETS[target]
    net = conv_net()
    if settings.pool == "conv":  # the scaled pooling has no exact Conv2d form
        with pytest.raises(NIRExportError, match="layer 6 .*scale 0.5.*no exact Conv2d"):
            to_graph(net, target=target)
        return
    graph = to_graph(net, target=target)
    meta = graph.metadata
    assert meta["target"] == target and meta["neuron"] == settings.neuron
    assert meta["dt"] == settings.dt[settings.neuron]
    assert meta["loading"] == settings.loading and meta["fires_on"] == settings.fires_on
    assert list(meta["input_shape"]) == [2, 8, 8]


def _or_pool_net() -> rt.SpikingNetwork:
    """``conv_net`` without its scaled pooling (every target can write it)."""
    layers = [layer for layer in conv_net().layers
              if not (isinstance(layer, rt.SumPool2d) and layer.scale != 1.0)]
    layers[-3] = rt.Affine(np.ones((12, 96), np.float32), np.zeros(12, np.float32))
    return rt.SpikingNetwork(layers, {"input_shape": [2, 8, 8]})


@pytest.mark.parametrize(("target", "neuron"), ACCEPTED)
def test_every_accepted_form_round_trips_exactly(target: str, neuron: str,
                                                 tmp_path: Path) -> None:
    net = conv_net() if TARGETS[target].pool == "sumpool" else _or_pool_net()
    path = tmp_path / "m.nir"
    to_nir(net, path, target=target, neuron=neuron)
    back = from_nir(path)
    assert [type(a) for a in back.layers] == [type(b) for b in net.layers]
    for a, b in zip(back.layers, net.layers, strict=True):
        if isinstance(a, rt.Threshold):
            np.testing.assert_array_equal(a.theta, b.theta)
    x = np.random.default_rng(1).random((32, 2, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(rt.run(back, x), rt.run(net, x))


@pytest.mark.parametrize(("target", "neuron"), ACCEPTED)
def test_what_each_target_writes(target: str, neuron: str, tmp_path: Path) -> None:
    """Neuron parameters from the file's dt, the threshold for the importer's comparison, no
    v_reset dataset, Flatten(-3, -1), pooling as the target needs it."""
    settings = TARGETS[target]
    net = _or_pool_net()
    path = tmp_path / "m.nir"
    to_nir(net, path, target=target, neuron=neuron)
    dt = settings.dt[neuron]
    with h5py.File(path, "r") as f:
        names: list[str] = []
        f.visit(names.append)
    assert not [n for n in names if n.endswith("v_reset")]  # nir 1.0.4 rejects the field
    graph = nir.read(path)
    kinds = {type(node).__name__ for node in graph.nodes.values()}
    flatten = next(n for n in graph.nodes.values() if isinstance(n, nir.Flatten))
    assert (flatten.start_dim, flatten.end_dim) == (-3, -1)
    assert ("SumPool2d" in kinds) == (settings.pool == "sumpool")
    neurons = [n for n in graph.nodes.values() if isinstance(n, (nir.IF, nir.LIF, nir.Threshold))]
    assert len(neurons) == 4
    theta = net.layers[1].theta  # per channel (4, 1, 1)
    first = neurons[0]
    thr = first.threshold if neuron == "threshold" else first.v_threshold
    want = np.float32(theta) if settings.fires_on == ">=" else exported_threshold(theta)
    np.testing.assert_array_equal(thr, np.broadcast_to(want, thr.shape))
    for node in neurons:
        if neuron == "if":
            assert np.all(node.r == np.float32(1.0 / dt))
        elif neuron == "lif":
            assert np.all(node.tau == np.float32(dt)) and np.all(node.r == 1)
            assert np.all(node.v_leak == 0)


def test_threshold_fallback_follows_the_comparison() -> None:
    """Without the exact theta in the node metadata, the threshold is restored by the file's
    comparison: nextafter(v_threshold, +inf) for '>', v_threshold itself for '>='."""
    net = rt.SpikingNetwork([rt.Affine(np.eye(2, dtype=np.float32), np.zeros(2, np.float32)),
                             rt.Threshold(np.float32(0.3))])
    for target in ("norse", "sinabs"):
        graph = to_graph(net, target=target)
        for node in graph.nodes.values():
            if isinstance(node, nir.IF):
                del node.metadata["whetstone_theta"]
        assert from_graph(graph).layers[1].theta == np.float32(0.3)


def test_foreign_dt_mismatch_is_refused() -> None:
    """An IF whose r is not 1 / dt (or a LIF whose tau is not dt) does not give v = x in one
    step: from_graph refuses it instead of reading another network."""
    net = rt.SpikingNetwork([rt.Affine(np.eye(2, dtype=np.float32), np.zeros(2, np.float32)),
                             rt.Threshold(0.5)])
    graph = to_graph(net, target="spikingjelly")  # dt 1e-4, r 1e4
    graph.metadata["dt"] = 1.0
    with pytest.raises(ValueError, match=r"IF with r != 1 / dt"):
        from_graph(graph)
    graph = to_graph(net, target="snntorch")  # lif, tau = dt = 1e-4
    graph.metadata["dt"] = 1e-3
    with pytest.raises(ValueError, match=r"LIF with tau != dt"):
        from_graph(graph)


def test_cli_export_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``whetstone export RUN --nir F --target T``: the refusal is a one-line usage error
    before any work (no run needed); a written file records the target."""
    from whetstone.cli.main import main

    code = main(["export", str(tmp_path / "no-run"), "--nir", str(tmp_path / "m.nir"),
                 "--target", "snntorch", "--neuron", "if"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--neuron if --target snntorch" in err and "TypeError" in err
    assert not (tmp_path / "m.nir").exists()


@pytest.mark.slow
def test_cli_export_writes_the_target(tiny_dense_run: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from whetstone.cli.main import main

    out = tmp_path / "m.nir"
    assert main(["export", str(tiny_dense_run), "--nir", str(out), "--target",
                 "spikingjelly", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["target"] == "spikingjelly" and result["neuron"] == "if"
    assert result["dt"] == 1e-4 and "import_from_nir" in result["loading"]
    graph = nir.read(out)
    assert graph.metadata["target"] == "spikingjelly" and graph.metadata["dt"] == 1e-4
    assert list(graph.metadata["input_shape"]) == [1, 28, 28]
