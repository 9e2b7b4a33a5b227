"""Safe file writing: all or nothing, umask permissions, no temporary file left behind."""

from __future__ import annotations

import os

import numpy as np
import pytest

from whetstone.files import atomic_write, atomic_write_bytes, atomic_write_with, file_mode
from whetstone.runtime import SpikingNetwork
from whetstone.runtime.primitives import Threshold


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_files_get_the_umask_permissions(tmp_path, umask_027):
    assert file_mode() == 0o640
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.txt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write(b"half of the new")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_spiking_network_files_get_the_umask_permissions(tmp_path, umask_027):
    net = SpikingNetwork([Threshold(np.zeros(3))])
    net.save(tmp_path / "net.npz")
    assert (tmp_path / "net.npz").stat().st_mode & 0o777 == 0o640
    atomic_write_with(tmp_path / "arr.npz", lambda f: np.savez(f, a=np.ones(2)))
    assert np.load(tmp_path / "arr.npz")["a"].tolist() == [1.0, 1.0]
