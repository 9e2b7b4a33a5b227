"""from_nir's failures: one error type naming the file, and a read bounded in time."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import whetstone.runtime as rt

nir = pytest.importorskip("nir", reason="the 'nir' package (extra 'nir') is not installed")

from whetstone.export import NIRFileError, from_nir, nir_graph, to_nir  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _net() -> rt.SpikingNetwork:
    rng = np.random.default_rng(0)
    return rt.SpikingNetwork([rt.Affine(rng.normal(size=(4, 3)).astype(np.float32),
                                        np.zeros(4, np.float32)), rt.Threshold(0.5)])


@pytest.fixture
def nir_path(tmp_path: Path) -> Path:
    path = tmp_path / "net.nir"
    to_nir(_net(), path)
    return path


def test_round_trip_through_the_reader_process(nir_path: Path) -> None:
    back = from_nir(nir_path)
    x = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(rt.run(back, x), rt.run(_net(), x))


@pytest.mark.parametrize("make", ["missing", "folder", "empty", "text", "truncated"])
def test_every_failure_is_a_nir_file_error_naming_the_file(tmp_path: Path, nir_path: Path,
                                                           make: str) -> None:
    path = tmp_path / f"{make}.nir"
    if make == "folder":
        path.mkdir()
    elif make == "empty":
        path.write_bytes(b"")
    elif make == "text":
        path.write_text("not HDF5\n")
    elif make == "truncated":
        path.write_bytes(nir_path.read_bytes()[:1000])
    with pytest.raises(NIRFileError) as info:
        from_nir(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_an_unsupported_graph_names_the_file_and_the_node(tmp_path: Path) -> None:
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([3])}),
               "delay": nir.Delay(delay=np.ones(3)),
               "output": nir.Output(output_type={"output": np.array([3])})},
        edges=[("input", "delay"), ("delay", "output")])
    path = tmp_path / "delay.nir"
    nir.write(path, graph)
    with pytest.raises(NIRFileError, match=r"delay\.nir.*node 'delay' \(Delay\)"):
        from_nir(path)


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "worker.py"
    path.write_text("import sys, time\nsys.stdout.buffer.write(b'READY')\n"
                    "sys.stdout.buffer.flush()\n" + textwrap.dedent(body))
    return path


def test_a_read_that_hangs_is_stopped_and_the_reader_restarts(tmp_path: Path, nir_path: Path,
                                                              monkeypatch) -> None:
    """A stand-in reader that never answers (as h5py on some corrupted files)."""
    hanging = nir_graph._HDF5Reader(_script(tmp_path, "sys.stdin.buffer.read(4)\n"
                                                      "time.sleep(3600)\n"))
    monkeypatch.setattr(nir_graph, "_READER", hanging)
    try:
        start = time.perf_counter()
        with pytest.raises(NIRFileError, match="did not finish within 0.5 s") as info:
            from_nir(nir_path, timeout=0.5)
        assert time.perf_counter() - start < 5.0
        assert str(nir_path) in str(info.value)
        assert hanging._proc is None  # killed
        hanging.script = Path(nir_graph.__file__).with_name("_hdf5_worker.py")
        assert from_nir(nir_path).spiking_layers == 1  # a fresh reader answers
    finally:
        hanging.close()


def test_a_reader_that_dies_is_reported(tmp_path: Path, nir_path: Path, monkeypatch) -> None:
    dying = nir_graph._HDF5Reader(_script(tmp_path, "sys.stdin.buffer.read(4)\nsys.exit(3)\n"))
    monkeypatch.setattr(nir_graph, "_READER", dying)
    try:
        with pytest.raises(NIRFileError, match="died"):
            from_nir(nir_path)
    finally:
        dying.close()


def test_the_reader_never_imports_torch_or_whetstone(nir_path: Path) -> None:
    """The child reads with numpy and h5py only (fast to start, nothing else to import)."""
    import subprocess

    worker = Path(nir_graph.__file__).with_name("_hdf5_worker.py")
    code = textwrap.dedent(f"""
        import runpy, sys
        worker = runpy.run_path({str(worker)!r})
        tree, chunks = worker["read_tree"]({str(nir_path)!r}, 1 << 20)
        assert tree["d"]["type"] == {{"s": "NIRGraph"}}, tree["d"]["type"]
        assert sum(map(len, chunks)) > 0
        loaded = [m for m in ("torch", "whetstone") if m in sys.modules]
        assert not loaded, loaded
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
