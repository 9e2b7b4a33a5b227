"""The separate environment of the Sinabs / nir 1.0.4 interop tests, ``.venv-sinabs``.

Sinabs 3.1.3 pins ``nir<=1.0.4``; the project's environment has nir 1.0.8, so Sinabs (and
the oldest nir reader the project supports) live in their own virtual environment, the one
``benchmarks.peers_sinabs`` also uses (same pins). ``make test-interop`` builds it:

    python tests/interop/sinabs_env.py build [--torch-pin torch==2.13.0]

creates the venv, installs the torch pin alone (pip's cache holds the CPU build), then
Sinabs and the stack it pins *with the same torch pin* (pip fails rather than replace
torch, so it never pulls a CUDA build). On success it writes :data:`READY` (the pins); on
failure :data:`ERROR` (the failing command and the end of pip's output, verbatim), which the
tests print as their skip reason. It exits 0 either way: a failed install skips the Sinabs
tests, loudly, and nothing else.

The tests run ``sinabs_worker.py`` with that environment's python (:func:`run_worker`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("WHETSTONE_SINABS_VENV", ROOT / ".venv-sinabs"))
PYTHON = VENV / "bin" / "python"
WORKER = Path(__file__).resolve().with_name("sinabs_worker.py")
READY = VENV / ".interop-ready.json"
ERROR = VENV / ".interop-install-error.txt"
TORCH_PIN = "torch==2.13.0"
PINS = ("sinabs==3.1.3", "nir==1.0.4", "nirtorch==2.0.2", "samna==0.48.6")
TAIL_LINES = 30


def commands(torch_pin: str = TORCH_PIN) -> list[list[str]]:
    """The install commands, in order (see the module doc)."""
    python = str(PYTHON)
    return [[sys.executable, "-m", "venv", str(VENV)],
            [python, "-m", "pip", "install", "-q", torch_pin],
            [python, "-m", "pip", "install", "-q", torch_pin, *PINS]]


def build(torch_pin: str = TORCH_PIN) -> bool:
    """Build (or keep) the environment; True when it is ready. A failure is written to
    :data:`ERROR` and printed."""
    wanted = {"torch": torch_pin, "packages": list(PINS)}
    if READY.is_file() and json.loads(READY.read_text()) == wanted and PYTHON.is_file():
        print(f"{VENV}: ready ({', '.join(PINS)})")
        return True
    VENV.mkdir(parents=True, exist_ok=True)
    ERROR.unlink(missing_ok=True)
    for cmd in commands(torch_pin):
        if cmd[1:3] == ["-m", "venv"] and PYTHON.is_file():
            continue
        text = " ".join(cmd)
        print(f"$ {text}", flush=True)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            failed, output = proc.returncode != 0, proc.stderr + proc.stdout
            code: int | None = proc.returncode
        except OSError as exc:
            failed, output, code = True, str(exc), None
        if failed:
            tail = "\n".join(output.rstrip().splitlines()[-TAIL_LINES:])
            ERROR.write_text(f"$ {text}\n(exit status {code})\n{tail}\n")
            print(ERROR.read_text(), file=sys.stderr)
            return False
    READY.write_text(json.dumps(wanted) + "\n")
    return True


def missing_reason() -> str | None:
    """Why the Sinabs tests cannot run (None when the environment is ready): the recorded
    install error verbatim, or the missing environment and the command that builds it."""
    if ERROR.is_file():
        return f"the Sinabs environment {VENV} failed to install:\n{ERROR.read_text()}"
    if not PYTHON.is_file():
        return (f"the Sinabs environment {VENV} is missing (sinabs 3.1.3 pins nir<=1.0.4, so "
                "it has its own venv): build it with `make test-interop` or "
                "`python tests/interop/sinabs_env.py build`")
    if not READY.is_file():
        proc = subprocess.run([str(PYTHON), str(WORKER), "--versions"], capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            return f"{PYTHON} {WORKER} --versions failed:\n{proc.stderr[-2000:]}"
        found = json.loads(proc.stdout)
        if found.get("sinabs") is None or found.get("nir") != "1.0.4":
            return (f"the environment {VENV} has sinabs {found.get('sinabs')} and nir "
                    f"{found.get('nir')}, not {', '.join(PINS)}: rebuild it with "
                    "`make test-interop`")
    return None


def run_worker(job: dict[str, Any], folder: Path, timeout: float = 600.0) -> dict[str, Any]:
    """Run the worker on ``job`` (see ``sinabs_worker.py``) with the environment's python
    and whetstone's source on its path; its JSON result. Raises ``RuntimeError`` with the
    worker's stderr when it fails as a whole."""
    path = folder / "job.json"
    path.write_text(json.dumps(job))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    proc = subprocess.run([str(PYTHON), str(WORKER), str(path)], capture_output=True,
                          text=True, check=False, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"the Sinabs worker failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["build", "check"])
    parser.add_argument("--torch-pin", default=TORCH_PIN)
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.torch_pin)
        return 0
    reason = missing_reason()
    print(reason or f"{VENV}: ready")
    return 0 if reason is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
