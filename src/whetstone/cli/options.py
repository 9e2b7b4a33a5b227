"""Command-line plumbing shared by every subcommand: a parser whose errors are one line, the
checked option types, and up-front checks of output paths.

Nothing here imports torch: ``whetstone --help`` and a mistyped option answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn, TextIO

DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100")
"""Dataset names the options accept (equal to :data:`whetstone.data.DATASETS`' keys; a test
keeps them equal without importing torch here)."""


class UsageError(ValueError):
    """A command line whetstone refuses (a missing option, a bad path, options that do not go
    together); the message names the option."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr, exit status 2:
    ``whetstone train: error: argument --epochs: invalid int value: 'x' (see 'whetstone
    train --help')`` (argparse's default prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see '{self.prog} --help')\n")


def count(text: str) -> int:
    """An option that counts samples or items: an integer >= 1."""
    return _integer(text, 1)


def seed(text: str) -> int:
    """A random seed: an integer in [0, 2^63)."""
    return _integer(text, 0, 2**63 - 1)


def bits(text: str) -> int:
    """A quantization bit width: an integer in [2, 32]."""
    return _integer(text, 2, 32)


def _integer(text: str, minimum: int, maximum: int | None = None) -> int:
    rule = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer {rule}, got {text!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise argparse.ArgumentTypeError(f"must be an integer {rule}, got {value}")
    return value


def check_output_file(path: str | Path, option: str) -> Path:
    """``path`` can be written as a file: its folder exists (and is a folder) and ``path`` is
    not a folder; else :class:`UsageError` naming ``option`` and the path."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder; give a file name")
    if not parent.exists():
        raise UsageError(f"{option} {path}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot write in {parent} (permission denied)")
    return path


def check_output_folder(path: str | Path, option: str) -> Path:
    """``path`` can be a run folder: an existing folder, or a path whose nearest existing
    ancestor is a folder we may write in; else :class:`UsageError` naming ``option``."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{option} {path}: is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"{option} {path}: cannot write in this folder (permission denied)")
        return path
    ancestor = path.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"{option} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot create it in {ancestor} (permission denied)")
    return path


PROGRESS_CHOICES = ("auto", "bar", "log", "none")
"""``--progress``: ``auto`` (the default) draws bars on a terminal and prints log lines
otherwise; see :mod:`whetstone.progress` for the others."""


def add_progress(p: argparse.ArgumentParser) -> None:
    """``--progress MODE`` and its short form ``--no-progress`` on the command ``p``."""
    p.add_argument("--progress", choices=PROGRESS_CHOICES, default=None,
                   help="bar: tqdm bars on stderr (training also prints a line per epoch); "
                        "log: one plain line per epoch and per stage, no bars (batch logs); "
                        "none: nothing; auto (default): bar on a terminal, else log")
    p.add_argument("--no-progress", action="store_true",
                   help="no bars and no progress lines (same as --progress none)")


def progress_mode(args: argparse.Namespace, stream: TextIO | None = None) -> str:
    """The progress mode of a command line (``bar``, ``log`` or ``none``): ``--progress``,
    ``--no-progress`` (``none``), else ``bar`` when ``stream`` (default ``sys.stderr``) is a
    terminal and ``log`` otherwise. Both options at once, disagreeing, is a
    :class:`UsageError`."""
    chosen = getattr(args, "progress", None)
    if getattr(args, "no_progress", False):
        if chosen not in (None, "none"):
            raise UsageError(f"--no-progress and --progress {chosen} contradict each other; "
                             f"give one")
        return "none"
    if chosen in (None, "auto"):
        stream = stream if stream is not None else sys.stderr
        isatty = getattr(stream, "isatty", None)
        return "bar" if isatty is not None and isatty() else "log"
    return str(chosen)


def progress(args: argparse.Namespace, command: str) -> Any:
    """The :class:`whetstone.progress.Progress` of a command line (see :func:`progress_mode`);
    its log lines start ``whetstone COMMAND:``."""
    from ..progress import Progress

    return Progress(progress_mode(args), prefix=f"whetstone {command}")
