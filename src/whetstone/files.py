"""Writing files safely: a reader sees the old file or the new one, never a part.

Every file whetstone writes goes through :func:`atomic_write` (or its byte and text forms):
the content goes to a temporary file in the same folder (``.NAME.XXXX.tmp``), is flushed to
disk (``fsync``), gets the permissions a plain ``open`` would give under the process's umask
(``mkstemp`` alone makes ``0600``) and is renamed over the target with :func:`os.replace`. On
any error (a full disk, an interrupt) the temporary file is removed and the target is left as
it was. Missing parent folders are created.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def file_mode() -> int:
    """Permissions of a new file under the process's umask: ``0o666 & ~umask``."""
    try:  # Linux: read it without changing it (thread-safe)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary binary file that replaces ``path`` when the block ends without error
    (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    with atomic_write(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """Let ``write(file)`` fill ``path`` atomically (:func:`atomic_write`), e.g.
    ``atomic_write_with(p, lambda f: numpy.savez(f, **arrays))``."""
    with atomic_write(path) as f:
        write(f)
