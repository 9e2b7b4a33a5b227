"""How long computations report their progress: tqdm bars, plain log lines, or nothing.

A :class:`Progress` is handed to the functions that take a while (training, evaluation,
the numpy runtime, statistics, quantization sweeps); ``None`` means silent. Everything goes
to standard error (resolved when written, so a redirected ``sys.stderr`` is honoured):
standard output stays free for results (``--json``). Modes (:data:`MODES`):

- ``"bar"``: tqdm bars that vanish when done (and, in training, one line per epoch);
- ``"log"``: no bars; one plain line per epoch and per stage, for batch logs;
- ``"none"``: nothing.

Progress never changes a result: the same computation runs in every mode.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO, TypeVar

from tqdm.auto import tqdm

MODES = ("bar", "log", "none")
"""The progress modes, see the module doc."""

T = TypeVar("T")


class Progress:
    """Reports progress in one of :data:`MODES` on ``stream`` (default: ``sys.stderr`` at the
    time of writing); ``prefix`` starts every log line (e.g. ``"whetstone evaluate"``)."""

    def __init__(self, mode: str = "bar", stream: TextIO | None = None,
                 prefix: str = "whetstone") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown progress mode {mode!r}; choose from {list(MODES)}")
        self.mode = mode
        self.prefix = prefix
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    @property
    def bars(self) -> bool:
        """True when bars are drawn (mode ``"bar"``)."""
        return self.mode == "bar"

    @property
    def lines(self) -> bool:
        """True when per-epoch and per-stage lines are printed (mode ``"log"``)."""
        return self.mode == "log"

    def iterate(self, iterable: Iterable[T], total: int | None = None,
                desc: str = "", unit: str = "it") -> Iterable[T]:
        """``iterable`` with a bar in mode ``"bar"`` (``total`` steps of ``unit``), else as is."""
        if not self.bars:
            return iterable
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=self.stream,
                    leave=False, dynamic_ncols=True, mininterval=0.5)

    @contextmanager
    def counter(self, total: int, desc: str = "", unit: str = "sample"
                ) -> Iterator[Callable[[int], object]]:
        """A bar of ``total`` ``unit`` in mode ``"bar"``; yields the function that advances
        it by ``n`` (a function that does nothing in the other modes)."""
        if not self.bars:
            yield lambda n: None
            return
        bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, leave=False,
                   dynamic_ncols=True, mininterval=0.5)
        try:
            yield bar.update
        finally:
            bar.close()

    def line(self, text: str) -> None:
        """One plain line (mode ``"log"`` only): ``PREFIX: text``."""
        if self.lines:
            print(f"{self.prefix}: {text}", file=self.stream, flush=True)

    @contextmanager
    def stage(self, desc: str, samples: int | None = None) -> Iterator[None]:
        """A step of a longer command: in mode ``"log"`` one line when it is done,
        ``PREFIX: desc: done in 1.2 s`` (with ``samples``: ``..., 830 samples/s``)."""
        t0 = time.perf_counter()
        yield
        seconds = time.perf_counter() - t0
        rate = (f", {samples / seconds:.0f} samples/s"
                if samples and seconds > 0 else "")
        self.line(f"{desc}: done in {seconds:.1f} s{rate}")


def as_progress(progress: Progress | bool | None) -> Progress:
    """A :class:`Progress` for an argument that may be one, a bool (``True``: bars) or
    ``None`` (silent)."""
    if isinstance(progress, Progress):
        return progress
    return Progress("bar" if progress else "none")


def iterate(progress: Progress | None, iterable: Iterable[T], total: int | None = None,
            desc: str = "", unit: str = "it") -> Iterable[T]:
    """:meth:`Progress.iterate` when ``progress`` is given, else ``iterable`` as is."""
    if progress is None:
        return iterable
    return progress.iterate(iterable, total, desc, unit)


def counter(progress: Progress | None, total: int, desc: str = "", unit: str = "sample"
            ) -> Any:
    """:meth:`Progress.counter` when ``progress`` is given, else a context yielding a
    function that does nothing."""
    if progress is None:
        return Progress("none").counter(total, desc, unit)
    return progress.counter(total, desc, unit)


def stage(progress: Progress | None, desc: str, samples: int | None = None) -> Any:
    """:meth:`Progress.stage` when ``progress`` is given, else a context that does nothing."""
    if progress is None:
        return _nothing()
    return progress.stage(desc, samples)


@contextmanager
def _nothing() -> Iterator[None]:
    yield
