"""Fixtures of the parser fuzz tests: the parsers, their valid seed files, a scratch folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus import Parser, parsers

SEED_SUFFIXES = {"config_toml_file": ".toml", "config_json_file": ".json"}


@pytest.fixture(scope="session")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="session")
def parser_table(fuzz_dir: Path) -> dict[str, tuple[Parser, tuple[tuple[bytes, str], ...]]]:
    """Every parser with the bytes and file suffix of its valid seed files (each read once
    here, which also starts from_nir's reader process before any timed case)."""
    table = {}
    for name, parser in parsers().items():
        seeds = []
        for i, make in enumerate(parser.seeds):
            suffix = SEED_SUFFIXES.get(make.__name__, parser.suffix)
            path = make(fuzz_dir / f"seed-{name}-{i}{suffix}")
            parser.read(path)  # a seed is valid
            seeds.append((path.read_bytes(), suffix))
        table[name] = (parser, tuple(seeds))
    return table
