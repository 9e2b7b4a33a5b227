"""Transactional run folders: a run is built aside and swapped in whole, by one writer.

``train_run(config, "runs/NAME")`` never writes into ``runs/NAME`` itself. It takes an
exclusive lock on ``runs/.NAME.lock`` (a second writer is refused at once), builds the run in
``runs/.NAME.partial/`` (configuration, metrics, checkpoints) and, once everything is
written, swaps that folder with ``runs/NAME`` in one atomic rename (Linux ``renameat2``
with ``RENAME_EXCHANGE``; elsewhere two renames, between which the run is absent but never
mixed) and deletes the previous run. A rejected, failed or killed command therefore leaves
the previous ``runs/NAME`` exactly as it was; a killed or interrupted one leaves its
``.partial`` folder with the last checkpoint, which ``train_run(..., resume=True)`` (``whetstone
train --resume runs/NAME``) continues.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class RunFolderError(ValueError):
    """A run folder cannot be written or resumed: locked by another process, nothing to
    resume, or a partial run of another configuration. The message names the folder."""


def partial_folder(out: Path) -> Path:
    """Where the run ``out`` is built before it is swapped in: ``out/../.NAME.partial``."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def lock_file(out: Path) -> Path:
    """The lock file of the run ``out``: ``out/../.NAME.lock``."""
    out = Path(out)
    return out.parent / f".{out.name}.lock"


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold the exclusive write lock of the run ``out`` (``fcntl.flock``, released when the
    process ends, even killed); raises :class:`RunFolderError` if another process holds it."""
    path = lock_file(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunFolderError(
                    f"{out}: another whetstone process is writing this run (lock {path}); "
                    "wait for it to finish or choose another --out") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux renameat2); False where unsupported."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        renameat2 = ctypes.CDLL(name, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this file system cannot exchange
        return False
    raise OSError(errno, f"cannot swap {a} and {b}: {os.strerror(errno)}")


def commit(partial: Path, out: Path) -> None:
    """Put the finished run ``partial`` in place of ``out`` (see the module docstring)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise RunFolderError(f"{out}: exists and is not a run folder")
    if not out.exists():
        os.rename(partial, out)
        return
    if _exchange(partial, out):
        shutil.rmtree(partial)  # now the previous run
        return
    old = out.parent / f".{out.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    os.rename(out, old)
    os.rename(partial, out)
    shutil.rmtree(old)
