"""Every tutorial runs as written: its python and bash blocks, in order, in a fresh folder.

Each tutorial runs in its own subprocess (``tutorial_blocks.driver``) with
``WHETSTONE_TUTORIAL_QUICK=1`` (the tutorials' visible switch to a few thousand images and
few epochs) and one thread; a block that raises or a command that exits non-zero fails the
test with the tail of the output, naming the Markdown file and line.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tutorial_blocks import RUN_LANGUAGES, blocks, driver, requirements

DOCS = Path(__file__).resolve().parents[2] / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("*.md"))
TIMEOUT_S = 300


def test_there_are_tutorials() -> None:
    assert len(TUTORIALS) >= 4, TUTORIALS


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_has_python(path: Path) -> None:
    found = [b.language for b in blocks(path.read_text(encoding="utf-8"))]
    assert "python" in found, f"{path.name}: no python block (found {found})"


def test_block_extraction() -> None:
    text = ("intro\n\n```python\nx = 1\n```\n\n!!! note\n    ```bash\n    echo hi\n    ```\n\n"
            "```console\n$ not run\n```\n<!-- requires: nir  norse -->\n")
    got = blocks(text)
    assert [(b.language, b.source, b.line) for b in got] == [
        ("python", "x = 1\n", 4), ("bash", "echo hi\n", 9), ("console", "$ not run\n", 13)]
    assert requirements(text) == ["nir", "norse"]
    assert set(RUN_LANGUAGES) == {"python", "bash"}


def test_driver_fails_on_a_broken_block(tmp_path: Path) -> None:
    md = tmp_path / "broken.md"
    md.write_text("```python\nok = 1\n```\n\n```python\nraise RuntimeError('boom')\n```\n")
    script = tmp_path / "drive.py"
    script.write_text(driver(md))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert done.returncode != 0
    assert "boom" in done.stderr and f'{md}", line 6' in done.stderr
    md.write_text("```bash\nfalse\n```\n")
    script.write_text(driver(md))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert done.returncode != 0 and "exited with status 1" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path: Path, mnist_ready: str, tmp_path: Path) -> None:
    missing = [m for m in requirements(path.read_text(encoding="utf-8"))
               if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{path.name} needs {', '.join(missing)} (not installed)")
    script = tmp_path / "tutorial.py"
    script.write_text(driver(path))
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ)
    env.update(WHETSTONE_TUTORIAL_QUICK="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=work, env=env, timeout=TIMEOUT_S)
    if done.returncode != 0:
        tail = (done.stdout + "\n" + done.stderr)[-6000:]
        pytest.fail(f"{path.name} failed (exit {done.returncode}):\n{tail}", pytrace=False)
