"""What a tutorial's driver script (:func:`tutorial_blocks.driver`) calls, block by block."""

from __future__ import annotations

import re
import subprocess
import sys
import time

NAMESPACE: dict[str, object] = {"__name__": "__main__"}
"""The namespace every Python block of one tutorial runs in (as in a notebook)."""
_START = time.perf_counter()
_SHELL_SYNTAX = re.compile(r"""[|&;<>()$`*?~!{}\[\]"'\\]""")


def python_block(source: str, filename: str, where: str) -> None:
    print(f"--- {where}", flush=True)
    exec(compile(source, filename, "exec"), NAMESPACE)  # noqa: S102 - the tutorial's own code


def whetstone_lines(source: str) -> list[list[str]] | None:
    """The arguments of each line when every line is a plain ``whetstone`` command (line
    continuations joined, comments and blank lines skipped), else None."""
    commands = []
    for line in source.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        argv = line.split()
        if _SHELL_SYNTAX.search(line) or argv[0] != "whetstone":
            return None
        commands.append(argv[1:])
    return commands


def bash_block(source: str, where: str) -> None:
    """Run a shell block: plain ``whetstone`` lines in this process through the console
    script's function, anything else in ``bash -e -o pipefail``; exit on a non-zero status."""
    print(f"--- {where}\n$ " + source.rstrip().replace("\n", "\n$ "), flush=True)
    commands = whetstone_lines(source)
    status: int = 0
    if commands is None:
        status = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", source]).returncode
    else:
        from whetstone.cli.main import main

        for argv in commands:
            try:
                status = main(argv)
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
            sys.stdout.flush()
            sys.stderr.flush()
            if status:
                break
    if status:
        sys.exit(f"{where}: the bash block exited with status {status}")


def finish() -> None:
    print(f"--- done in {time.perf_counter() - _START:.1f} s", flush=True)
