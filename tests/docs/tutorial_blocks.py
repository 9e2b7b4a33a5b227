"""Extract a tutorial's code blocks and write a driver script that runs them in order.

A tutorial (``docs/tutorials/*.md``) runs as written: every fenced block whose info string
is ``python`` or ``bash`` is executed, top to bottom, in one process (Python blocks share one
namespace, as in a notebook; ``bash`` blocks run through ``bash -e -o pipefail`` at their
place in the order). Blocks marked ``console`` or ``text`` are shown, not run. An HTML
comment ``<!-- requires: nir norse -->`` names modules without which the tutorial is skipped.

A ``bash`` block made only of plain ``whetstone ...`` command lines (no pipes, variables,
globs or redirections) runs them in the driver's process through
``whetstone.cli.main.main(argv)``, the function the ``whetstone`` console script calls, and
fails on a non-zero status as bash would: each new process would pay several seconds of
torch start-up. Any other block runs in bash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RUN_LANGUAGES = ("python", "bash")
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\s`]*)")
_REQUIRES = re.compile(r"<!--\s*requires:\s*(?P<mods>[^>]*?)\s*-->")


@dataclass(frozen=True)
class Block:
    language: str
    source: str
    line: int
    """1-based line of the block's first code line in the Markdown file."""


def blocks(text: str) -> list[Block]:
    """Every fenced code block of ``text`` (indented ones too, dedented), in order."""
    out: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m["indent"]), m["fence"], m["info"].lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        if j == len(lines):
            raise ValueError(f"line {i + 1}: code block never closed")
        out.append(Block(info, "\n".join(body) + "\n", i + 2))
        i = j + 1
    return out


def requirements(text: str) -> list[str]:
    """Modules the tutorial needs (``<!-- requires: a b -->``)."""
    return [mod for m in _REQUIRES.finditer(text) for mod in m["mods"].split()]


def driver(path: Path) -> str:
    """A Python script running the tutorial ``path``'s blocks in order through
    :mod:`tutorial_runtime` (tracebacks name the Markdown file and its line numbers)."""
    text = path.read_text(encoding="utf-8")
    here = str(Path(__file__).resolve().parent)
    parts = ["import sys\n", f"sys.path.insert(0, {here!r})\n",
             "from tutorial_runtime import bash_block, finish, python_block\n"]
    for b in blocks(text):
        if b.language not in RUN_LANGUAGES:
            continue
        where = f"{path}:{b.line}"
        if b.language == "python":
            padded = "\n" * (b.line - 1) + b.source  # line numbers of the Markdown file
            parts.append(f"python_block({padded!r}, {str(path)!r}, {where!r})\n")
        else:
            parts.append(f"bash_block({b.source!r}, {where!r})\n")
    parts.append("finish()\n")
    return "".join(parts)
