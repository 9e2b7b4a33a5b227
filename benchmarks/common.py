"""What every benchmark records beside its numbers: machine, versions, command, date."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str = "cpu") -> dict[str, Any]:
    """Machine, device, versions, command and date of this benchmark run."""
    import numpy
    import torch

    import whetstone

    dev = device
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = f"{device} ({torch.cuda.get_device_name(0)})"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "device": dev,
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "versions": {"whetstone": whetstone.__version__, "torch": torch.__version__,
                     "numpy": numpy.__version__, "python": platform.python_version()},
        "command": "python -m benchmarks." + Path(sys.argv[0]).stem + " " + " ".join(sys.argv[1:]),
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (results are rewritten after every run), with the
    permissions the umask gives new files."""
    from whetstone.files import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
