"""The Sinabs / nir 1.0.4 side of ``tests/interop``: run with the Sinabs environment's python.

    .venv-sinabs/bin/python tests/interop/sinabs_worker.py JOB.json
    .venv-sinabs/bin/python tests/interop/sinabs_worker.py --versions

The environment (built by ``make test-interop``, see ``sinabs_env.py``) holds Sinabs 3.1.3
and the ``nir<=1.0.4`` it pins, which the project's own environment (nir 1.0.8) cannot
hold. The worker imports whetstone from the source tree (``PYTHONPATH=src``: only numpy
and nir are needed for :mod:`whetstone.export`), and talks to the test through files (JSON
job, ``.npz`` arrays loaded without pickle).

The job is ``{"cases": [{"nir": path, "x": npz, "out": npz, "rewrite": path | null}]}``.
For each case the worker:

1. reads the NIR file with this environment's ``nir.read`` (nir 1.0.4);
2. if ``x`` is given (``x.npz`` holding ``x``, a batch ``(B, *input_shape)``): loads it as the
   target table says, ``sinabs.from_nir(graph, num_timesteps=1)`` with every
   ``IAFSqueeze`` switched to ``SingleSpike``, runs the batch once, resets every
   ``StatefulLayer`` and runs the whole batch again for one step (the output kept); writes
   ``single`` (that output) and ``default`` (the same with Sinabs's default ``MultiSpike``,
   for the record) to ``out``;
3. if ``rewrite`` is given: rebuilds the network with whetstone's ``from_graph`` and writes
   it again with ``to_graph`` / ``write_graph`` under nir 1.0.4, to the path ``rewrite``
   (with the file's ``target`` and ``neuron``), so the test can check that the exporter
   itself works with the oldest nir the project declares.

It prints one JSON object: ``versions`` and per case ``ok`` or ``error`` (the exception,
verbatim).
"""

from __future__ import annotations

import json
import sys
import traceback
from importlib import metadata
from typing import Any

PACKAGES = ("sinabs", "nir", "nirtorch", "torch", "numpy")


def versions() -> dict[str, str | None]:
    """Installed versions of Sinabs, its NIR stack, torch and numpy."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _run_sinabs(graph: Any, x_path: str, out_path: str) -> None:
    import numpy as np
    import sinabs
    import torch
    from sinabs.activation import MultiSpike, SingleSpike
    from sinabs.layers import IAFSqueeze, StatefulLayer

    with np.load(x_path, allow_pickle=False) as f:
        x = torch.from_numpy(np.ascontiguousarray(f["x"], dtype=np.float32))
    outputs: dict[str, np.ndarray] = {}
    for name, spike_fn in (("single", SingleSpike), ("default", MultiSpike)):
        module = sinabs.from_nir(graph, num_timesteps=1)
        for m in module.modules():
            if isinstance(m, IAFSqueeze):
                m.spike_fn = spike_fn
        with torch.no_grad():
            module(x)  # a first batch leaves membranes behind ...
            for m in module.modules():
                if isinstance(m, StatefulLayer):  # ... which the table's reset clears
                    m.reset_states()
            out, _ = module(x)
        outputs[name] = out.numpy()
    np.savez(out_path, **outputs)


def _rewrite(graph: Any, path: str) -> None:
    from whetstone.export.nir_graph import from_graph, to_graph, write_graph

    meta = graph.metadata
    net = from_graph(graph)
    shape = tuple(int(s) for s in meta["input_shape"])
    target = str(meta.get("target", "generic"))
    neuron = str(meta.get("neuron", "if"))
    write_graph(path, to_graph(net, neuron=neuron, input_shape=shape, target=target))


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Every case of ``job`` (see the module doc); the result dictionary."""
    import nir

    result: dict[str, Any] = {"versions": versions(), "cases": []}
    for case in job["cases"]:
        entry: dict[str, Any] = {"nir": case["nir"]}
        try:
            graph = nir.read(case["nir"])
            if case.get("x"):
                _run_sinabs(graph, case["x"], case["out"])
            if case.get("rewrite"):
                _rewrite(graph, case["rewrite"])
            entry["ok"] = True
        except Exception as exc:  # noqa: BLE001 - reported to the test verbatim
            entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["traceback"] = traceback.format_exc(limit=6)
        result["cases"].append(entry)
    return result


def main(argv: list[str]) -> int:
    if argv == ["--versions"]:
        print(json.dumps(versions()))
        return 0
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        job = json.load(f)
    print(json.dumps(run(job)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
