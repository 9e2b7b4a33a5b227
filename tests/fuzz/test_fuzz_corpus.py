"""The corpus of malformed files (tests/fuzz/corpus.py), one test each: the parser's own
error naming the file and the problem, quickly, and (for the in-process parsers) without
allocating more than a few MiB."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from corpus import CORPUS, NIR_TIME_BOUND, TIME_BOUND, build, parsers

MEMORY_BOUND = 32 << 20  # bytes Python may allocate while rejecting one corpus file


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_malformed_file_is_rejected(name: str, tmp_path: Path) -> None:
    case = CORPUS[name]
    table = parsers()
    if case.parser not in table:
        pytest.skip(f"{case.parser}: its optional dependency is not installed")
    parser = table[case.parser]
    path = build(name, tmp_path)
    in_process = case.parser != "from_nir"
    if in_process:
        tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(parser.error) as info:
            parser.read(path)
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] if in_process else 0
        if in_process:
            tracemalloc.stop()
    message = str(info.value)
    assert str(path) in message
    assert case.expect in message
    assert elapsed < (NIR_TIME_BOUND if case.parser == "from_nir" else TIME_BOUND), elapsed
    assert peak < MEMORY_BOUND, f"{peak / 2**20:.0f} MiB allocated rejecting {name}"


def test_the_zip_bomb_is_a_bomb(tmp_path: Path) -> None:
    """The bomb really declares gigabytes in a few MB (so the test above means something)."""
    import zipfile

    path = build("npz-zip-bomb", tmp_path)
    with zipfile.ZipFile(path) as zf:
        declared = sum(info.file_size for info in zf.infolist())
    assert path.stat().st_size < 4 << 20
    assert declared > 3 * 10**9


def test_the_nir_file_that_hung_h5py_is_stopped_in_time(tmp_path: Path) -> None:
    """nir.read loops forever on this file (HDF5 2.0.0); from_nir stops its reader after the
    timeout and says so."""
    pytest.importorskip("nir")
    import h5py
    from corpus import NIR_HANG_HDF5, NIR_TIMEOUT

    from whetstone.export import NIRFileError, from_nir

    path = build("nir-one-byte-hang", tmp_path)
    start = time.perf_counter()
    with pytest.raises(NIRFileError) as info:
        from_nir(path, timeout=NIR_TIMEOUT)
    assert time.perf_counter() - start < NIR_TIME_BOUND
    assert str(path) in str(info.value)
    if h5py.version.hdf5_version == NIR_HANG_HDF5:
        assert f"did not finish within {NIR_TIMEOUT} s" in str(info.value)
