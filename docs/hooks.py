"""MkDocs hooks (``hooks:`` in mkdocs.yml): the command-line reference from the parser itself.

A page holding the marker ``<!-- whetstone-cli-help -->`` gets ``whetstone --help`` and every
command's ``--help`` in its place, so the reference cannot drift from the command line.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

MARKER = "<!-- whetstone-cli-help -->"


def cli_reference() -> str:
    from whetstone.cli.main import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "96"  # argparse wraps to the terminal width
    try:
        parser = build_parser()
        parts = ["```text", parser.format_help().rstrip(), "```", ""]
        for action in parser._actions:  # noqa: SLF001 - argparse has no public accessor
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                for name, sub in action.choices.items():
                    parts += [f"## whetstone {name}", "", "```text",
                              sub.format_help().rstrip(), "```", ""]
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(parts)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())
