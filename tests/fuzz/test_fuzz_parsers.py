"""Property tests: random and mutated bytes fed to every file parser.

For ``read_idx``, the CIFAR reader, ``SpikingNetwork.load``, ``from_nir`` and the
configuration loader, the only outcomes allowed are a successful read or the parser's own
documented error (a ``ValueError`` subclass naming the file), within a time bound per case
(``corpus.check_case``). Examples are derandomized (the same cases on every run) and
counted so that the whole folder runs in about a minute on 2 cores; ``benchmarks/fuzz.py``
runs the long version (100,000+ cases).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from corpus import Parser, check_case, network_parts, signed_members, zip_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PARSERS = ["read_idx", "read_cifar_bin", "SpikingNetwork.load", "from_nir", "config"]

# Examples per parser, sized for about 35 s for the whole folder on 2 cores (from_nir costs
# ~10 ms a case, a round trip to its reader process; read_idx ~1 ms).
MUTATED = {"read_idx": 1000, "read_cifar_bin": 600, "SpikingNetwork.load": 1000,
           "from_nir": 500, "config": 600}
RANDOM = {"read_idx": 300, "read_cifar_bin": 300, "SpikingNetwork.load": 300,
          "from_nir": 200, "config": 300}
HEADER_EDITS = 600

_counter = itertools.count()


def _settings(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


OPS = st.lists(st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate",
                                          "repeat"]),
                         st.integers(0, 2**31), st.integers(0, 255)),
               min_size=1, max_size=6)


def mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    """Apply bit flips, byte overwrites, insertions, deletions, truncations and repeated
    chunks at positions taken modulo the current length."""
    buf = bytearray(data)
    for kind, pos, val in ops:
        n = len(buf)
        if kind == "flip" and n:
            buf[pos % n] ^= 1 << (val % 8)
        elif kind == "set" and n:
            buf[pos % n] = val
        elif kind == "insert":
            i = pos % (n + 1)
            buf[i:i] = bytes([val]) * (1 + val % 4)
        elif kind == "delete" and n:
            i = pos % n
            del buf[i:i + 1 + val % 16]
        elif kind == "truncate":
            del buf[pos % (n + 1):]
        elif kind == "repeat" and n:
            i = pos % n
            buf[i:i] = buf[i:i + 1 + val]
    return bytes(buf)


def _table(parser_table: dict, name: str) -> tuple[Parser, tuple[tuple[bytes, str], ...]]:
    if name not in parser_table:
        pytest.skip(f"{name}: its optional dependency is not installed")
    return parser_table[name]


def _run(fuzz_dir: Path, parser: Parser, data: bytes, suffix: str) -> None:
    path = fuzz_dir / f"case-{next(_counter)}{suffix}"
    path.write_bytes(data)
    try:
        check_case(parser, path)
    finally:
        path.unlink()


@pytest.mark.parametrize("name", PARSERS)
def test_mutated_valid_files(name: str, parser_table: dict, fuzz_dir: Path) -> None:
    parser, seeds = _table(parser_table, name)

    @_settings(MUTATED[name])
    @given(seed=st.sampled_from(seeds), ops=OPS)
    def run(seed: tuple[bytes, str], ops: list[tuple[str, int, int]]) -> None:
        _run(fuzz_dir, parser, mutate(seed[0], ops), seed[1])

    run()


@pytest.mark.parametrize("name", PARSERS)
def test_random_bytes(name: str, parser_table: dict, fuzz_dir: Path) -> None:
    parser, seeds = _table(parser_table, name)
    # random tails after each seed's first bytes (its magic), and plain random bytes
    prefixes = sorted({seed[:k] for seed, _ in seeds for k in (0, 4, 8, 64)})

    @_settings(RANDOM[name])
    @given(prefix=st.sampled_from(prefixes), tail=st.binary(max_size=4096),
           suffix=st.sampled_from(sorted({s for _, s in seeds})))
    def run(prefix: bytes, tail: bytes, suffix: str) -> None:
        _run(fuzz_dir, parser, prefix + tail, suffix)

    run()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=8)


@_settings(HEADER_EDITS)
@given(layer=st.integers(0, 7),
       where=st.sampled_from(["param", "kind", "params", "arrays", "metadata", "version",
                              "layers", "new-param"]),
       value=JSON, data=st.data())
def test_network_header_with_valid_checksum(parser_table: dict, fuzz_dir: Path, layer: int,
                                            where: str, value: object,
                                            data: st.DataObject) -> None:
    """Header edits re-signed with a valid sha256, so they reach the layer checks."""
    parser, _ = parser_table["SpikingNetwork.load"]
    header, arrays = network_parts()
    spec = header["layers"][layer]
    if where == "param" and spec["params"]:
        spec["params"][data.draw(st.sampled_from(sorted(spec["params"])))] = value
    elif where in ("kind", "params", "arrays"):
        spec[where] = value
    elif where == "new-param":
        spec["params"][data.draw(st.text(max_size=6))] = value
    elif where in ("metadata", "version", "layers"):
        header[where] = value
    _run(fuzz_dir, parser, zip_bytes(signed_members(header, arrays)), ".npz")
