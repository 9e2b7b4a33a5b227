"""A griffe extension for the API pages: the docstrings' reStructuredText bits as Markdown.

whetstone's docstrings are Google style with a few Sphinx habits that Markdown shows
verbatim: roles (``:func:`fit```, ``:class:`~whetstone.runtime.SpikingNetwork```), RST
"simple tables" (columns under runs of ``=``) and ``::`` before a literal block. This
extension rewrites them when griffe loads the package (mkdocstrings' ``extensions`` option),
so the source stays as it is:

- a role becomes inline code of its target's last component when written ``~a.b.c``, else
  of the target as written (``:mod:`.fold``` -> ``.fold``);
- a simple table becomes a Markdown table (a row whose first cell is empty continues the
  row above);
- a line ending in ``::`` ends in ``:``; Markdown already shows the indented block after it
  as code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const|term):`([^`]+)`")
_RULE = re.compile(r"^( *)(=+)( +=+)+ *$")


def _role(match: re.Match[str]) -> str:
    target = match.group(1).strip()
    if "<" in target and target.endswith(">"):  # :func:`text <target>`
        target = target[: target.index("<")].strip()
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


def _columns(rule: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"=+", rule)]


def _cells(line: str, cols: list[tuple[int, int]]) -> list[str]:
    cells = []
    for i, (start, _end) in enumerate(cols):
        stop = cols[i + 1][0] if i + 1 < len(cols) else len(line)
        cells.append(line[start:stop].strip())
    return cells


def _table(lines: list[str], cols: list[tuple[int, int]], indent: str) -> list[str]:
    """A Markdown table from ``lines``: a simple table between its first and last rules."""
    head: list[list[str]] = []
    rows: list[list[str]] = []
    body = False
    for line in lines:
        if _RULE.match(line):
            body = True
            continue
        if not line.strip():
            continue
        cells = _cells(line, cols)
        group = rows if body else head
        if group and cells[0] == "":  # a continuation line
            prev = group[-1]
            for k, cell in enumerate(cells):
                if cell:
                    prev[k] = f"{prev[k]} {cell}".strip()
        else:
            group.append(cells)
    header = [" ".join(filter(None, column)) for column in zip(*head, strict=True)]

    def fmt(cells: list[str]) -> str:
        return indent + "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return ["", fmt(header), indent + "|" + "---|" * len(cols), *(fmt(r) for r in rows), ""]


def rst_to_markdown(text: str) -> str:
    """The docstring ``text`` with roles, simple tables and ``::`` rewritten (module doc)."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _RULE.match(lines[i])
        rules = [j for j in range(i + 1, len(lines)) if _RULE.match(lines[j])][:2] if m else []
        if m and len(rules) == 2 and rules[0] - i <= 4:
            # rule, header line(s), rule, body, rule
            out += _table(lines[i + 1:rules[1]], _columns(lines[i]), m.group(1))
            i = rules[1] + 1
            continue
        line = lines[i]
        if line.rstrip().endswith("::"):
            stripped = line.rstrip()[:-2].rstrip()
            line = stripped + ":" if stripped else ""
        out.append(line)
        i += 1
    return _ROLE.sub(_role, "\n".join(out))


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring of the loaded package (see the module doc)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        seen: set[int] = set()
        stack: list[Any] = [pkg]
        while stack:
            obj = stack.pop()
            if id(obj) in seen or obj.is_alias:
                continue
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = rst_to_markdown(obj.docstring.value)
            stack.extend(obj.members.values())
