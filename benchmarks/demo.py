"""Time `make demo` as a new user meets it: a fresh clone, no .venv, an empty data cache.

    python -m benchmarks.demo
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from .common import RESULTS, environment, write_json

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "whetstone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = {**os.environ, "WHETSTONE_DATA": str(Path(tmp) / "data")}
        env.pop("VIRTUAL_ENV", None)
        steps: dict[str, float] = {}
        t0 = time.perf_counter()
        subprocess.run(["make", ".venv/.installed"], cwd=clone, env=env, check=True)
        steps["create .venv and install"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        done = subprocess.run(["make", "demo"], cwd=clone, env=env, check=True,
                              capture_output=True, text=True)
        steps["fetch MNIST, train, sharpen, evaluate"] = time.perf_counter() - t1
        total = time.perf_counter() - t0
    lines = [ln for ln in done.stdout.splitlines() if "accuracy" in ln]
    result = {
        "study": "demo",
        "environment": environment(),
        "total_seconds": total,
        "steps": steps,
        "result": " ".join(lines),
    }
    write_json(RESULTS / "demo.json", result)
    print(f"make demo on a fresh clone: {total:.0f} s")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
