"""The documentation site builds with no warning (``mkdocs build --strict``), and the figure
script draws what it can without training."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE_PACKAGES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _missing() -> list[str]:
    missing = []
    for name in SITE_PACKAGES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


@pytest.mark.skipif(bool(_missing()), reason=f"the docs extra is not installed "
                    f"(missing {', '.join(_missing())}): pip install -e '.[docs]'")
def test_site_builds_strict(tmp_path: Path) -> None:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "s")],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    assert "WARNING" not in done.stderr, done.stderr[-5000:]
    pages = {p.relative_to(tmp_path / "s").as_posix() for p in (tmp_path / "s").rglob("*.html")}
    for page in ("index.html", "api/nn/index.html", "api/metrics/index.html",
                 "tutorials/own-model/index.html", "figures/index.html"):
        assert page in pages, sorted(pages)
    api = (tmp_path / "s" / "api" / "conversion" / "index.html").read_text(encoding="utf-8")
    assert "whetstone.conversion.to_spiking" in api
    assert ":func:" not in api  # docs/griffe_rst.py rewrote the roles
    cli = (tmp_path / "s" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "usage: whetstone train" in cli and "--preset" in cli  # docs/hooks.py


def test_pages_exist_for_the_api_packages() -> None:
    packages = ("nn", "sharpening", "training", "conversion", "runtime", "export", "metrics",
                "presets", "data", "tasks", "quantization")
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for name in packages:
        page = ROOT / "docs" / "api" / f"{name}.md"
        assert page.read_text(encoding="utf-8").startswith(f"::: whetstone.{name}\n")
        assert f"api/{name}.md" in config


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
def test_figures_from_results(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "figures.py"), "--only",
                           "synops", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, MPLBACKEND="Agg"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "accuracy-synops.png").stat().st_size > 10_000


def test_docstring_rst_to_markdown() -> None:
    pytest.importorskip("griffe", reason="the docs extra is not installed")
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from griffe_rst import rst_to_markdown
    finally:
        sys.path.remove(str(ROOT / "docs"))
    text = ("See :func:`fit` and :class:`~whetstone.runtime.SpikingNetwork`. Returns::\n\n"
            "    {x}\n\n"
            "=====  ==========\n"
            "a      b\n"
            "=====  ==========\n"
            "one    first line\n"
            "       continued\n"
            "two    ``x | y``\n"
            "=====  ==========\n"
            "after\n")
    assert rst_to_markdown(text).splitlines() == [
        "See `fit` and `SpikingNetwork`. Returns:", "", "    {x}", "", "",
        "| a | b |", "|---|---|", "| one | first line continued |", "| two | ``x \\| y`` |",
        "", "after"]
