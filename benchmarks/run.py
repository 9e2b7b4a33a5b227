"""Run one benchmark study by name: ``python -m benchmarks.run STUDY [its options...]``.

    python -m benchmarks.run --list
    python -m benchmarks.run encoding --quick
    python -m benchmarks.run optimizers --seeds 0 1 2
"""

from __future__ import annotations

import importlib
import sys

STUDIES: dict[str, str] = {
    "accuracy": "benchmarks.accuracy",
    "tuning": "benchmarks.tuning",
    "encoding": "benchmarks.encoding",
    "optimizers": "benchmarks.optimizers",
    "schedules": "benchmarks.schedules",
    "activity": "benchmarks.activity",
    "precision": "benchmarks.precision",
    "peers-direct": "benchmarks.peers_direct",
    "peers-conversion": "benchmarks.peers_conversion",
    "peers-sinabs": "benchmarks.peers_sinabs",
    "sharpen": "benchmarks.sharpen",
    "tasks": "benchmarks.tasks",
    "rl": "benchmarks.rl",
    "spiking": "benchmarks.spiking",
    "engines": "benchmarks.engines",
}
"""Study name -> module; each module has ``main(argv)``."""

USAGE = "usage: python -m benchmarks.run STUDY [options...] | --list | STUDY --help"


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the study's ``main`` with the remaining arguments; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip() if args else USAGE)
        print(f"studies: {', '.join(STUDIES)}")
        return 0 if args else 2
    if args[0] == "--list":
        for name, module in STUDIES.items():
            print(f"{name:18s} {module}")
        return 0
    name, rest = args[0], args[1:]
    if name not in STUDIES:
        print(f"unknown study {name!r}; choose from {', '.join(STUDIES)}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(STUDIES[name])
    except ModuleNotFoundError as exc:
        if exc.name != STUDIES[name]:
            raise
        print(f"study {name!r}: module {STUDIES[name]} does not exist (yet)", file=sys.stderr)
        return 2
    module.main(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
