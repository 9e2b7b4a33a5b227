"""Sinabs side of ``benchmarks.peers_sinabs``: run with the Sinabs virtual environment's python.

    .venv-sinabs/bin/python benchmarks/sinabs_worker.py JOB.json
    .venv-sinabs/bin/python benchmarks/sinabs_worker.py --versions

It imports numpy, torch, sinabs and json (and from the standard library ``sys``, ``time``,
``collections.abc`` and ``importlib.metadata``), never whetstone: the Sinabs environment pins
``nir<=1.0.4``, which the project's own ``nir`` extra does not allow, so the two live in
separate environments and talk through files. Everything it reads is plain numpy ``.npz``
(loaded without pickle):

- ``ann.npz``: ``weight0, bias0, weight1, bias1, ...`` of the ReLU ANN's Linear layers (each
  followed by a ReLU, the last one too: the output population) and ``key`` (classes x width).
- ``data.npz``: ``test_x`` (N, C, H, W) float32 in [0, 1], ``test_y`` (N,) int64 and
  ``calibration_x`` (the training images the weights are normalised on).

For every normalisation mode of the job (a percentile ``p``, ``max`` being 100):

1. the ANN is rebuilt in plain torch (``Flatten, Linear, ReLU, ..., Linear, ReLU``) and
   normalised layer by layer on the calibration images (Rueckauer et al. 2017, the
   normalisation SpikingJelly's converter applies through its voltage scalers): with
   ``lambda_l`` the ``p``-th percentile of ReLU ``l``'s output in the original ANN (over all
   elements, zeros included, as ``sinabs.utils.normalize_weights`` computes it), Linear ``l``'s
   weights are multiplied by ``lambda_(l-1) / lambda_l`` and its bias divided by ``lambda_l``
   (``lambda_0 = 1``), so every ReLU's ``p``-th percentile becomes 1 and the network computes
   the same function divided by ``lambda_L``: the same classes (every code of the key has
   ``W // C`` ones, so the decode's argmax ignores a positive scale).
   A mode ``sinabs:p`` (``sinabs:max``, ``sinabs:99.9%``) uses Sinabs's own utility as
   shipped instead, ``sinabs.utils.normalize_weights(ann, calibration_x, output_layers=ReLUs,
   param_layers=Linears, percentile=p)``: it divides each Linear's weights *and bias* by the
   percentile measured after the layers below were normalised, which keeps the function only
   for bias-free layers (a bias is not rescaled for the smaller input, so it grows relative to
   the weights by ``lambda_(l-1)``). ``normalised_ann_accuracy`` records what each
   normalisation leaves of the ANN before any spiking;
2. ``sinabs.from_model`` turns every ReLU into ``IAFSqueeze`` (threshold 1, subtractive
   reset, Sinabs's default ``min_v_mem = -1``) with the job's spike function
   (``single``: ``SingleSpike``, at most one spike per neuron and step, as an IF neuron on
   hardware; ``multi``: Sinabs's default ``MultiSpike``, ``floor(v / threshold)`` spikes);
3. the image is presented as constant input current at every time step for ``max(T)`` steps
   (in chunks of ``chunk`` steps; the membrane state carries over between chunks and is reset
   to zero for every test batch). The output population's spike counts ``c`` after T steps
   are decoded by the key, ``(2 a - 1) @ (2 K - 1)^T`` with the rate ``a = c / T``, argmax
   (T times it is the sum of the per-step decodes that ``peers_conversion`` takes).

Synaptic operations per inference, summed over the time steps, as in
``benchmarks.peers_conversion``: every nonzero input of a Linear layer costs one operation per
synapse leaving it (its ``out_features``); the first Linear receives real pixels (``mac``),
every later one spikes (``ac``; a spike count of ``k`` in one step, possible only with
``multi``, costs ``k`` operations); the decode receives the output spikes and costs the class
count per spike.

The result (JSON at the job's ``output``): versions, the ANN's accuracy as rebuilt here, and
per mode the normalisation scales, the normalised ANN's accuracy, the sweep (accuracy and
synaptic operations per T) and seconds.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from importlib import metadata

import numpy as np
import torch
from torch import nn

PACKAGES = ("sinabs", "nir", "nirtorch", "samna", "torch", "numpy")


def versions() -> dict[str, str | None]:
    """Installed versions of Sinabs, its NIR stack and samna, torch and numpy."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def build_ann(arrays: dict[str, np.ndarray]) -> nn.Sequential:
    """``Flatten, Linear, ReLU, ..., Linear, ReLU`` with the weights of ``ann.npz``."""
    layers: list[nn.Module] = [nn.Flatten()]
    i = 0
    while f"weight{i}" in arrays:
        w, b = torch.from_numpy(arrays[f"weight{i}"]), torch.from_numpy(arrays[f"bias{i}"])
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        layers += [lin, nn.ReLU()]
        i += 1
    if i == 0:
        raise ValueError("ann.npz holds no weight0")
    return nn.Sequential(*layers).eval()


def decode(counts: torch.Tensor, steps: int, key: torch.Tensor) -> torch.Tensor:
    """Class indices from output spike counts after ``steps`` steps: argmax of the key's
    decode ``(2 a - 1) @ (2 K - 1)^T`` of the rate ``a = counts / steps``."""
    rate = counts / steps
    return ((2.0 * rate - 1.0) @ (2.0 * key - 1.0).T).argmax(dim=1)


def parse_mode(mode: str) -> tuple[bool, float]:
    """``"max"`` -> (False, 100), ``"99.9%"`` -> (False, 99.9), ``"sinabs:99.9%"`` ->
    (True, 99.9): whether Sinabs's ``normalize_weights`` is used, and the percentile."""
    utility = mode.lower().startswith("sinabs:")
    text = mode.split(":", 1)[1] if utility else mode
    if text.lower() == "max":
        return utility, 100.0
    p = float(text.rstrip("%"))
    if not 0.0 < p <= 100.0:
        raise ValueError(f"percentile mode must be max or in (0, 100], got {mode!r}")
    return utility, p


def _pairs(ann: nn.Sequential) -> list[tuple[str, str]]:
    """(Linear, following ReLU) child names."""
    names = [name for name, _ in ann.named_children()]
    return [(n, names[names.index(n) + 1]) for n, m in ann.named_children()
            if isinstance(m, nn.Linear)]


@torch.no_grad()
def normalise(ann: nn.Sequential, calibration: torch.Tensor, percentile: float) -> list[float]:
    """Exact layer-wise normalisation of ``ann`` in place (Linear ``l``: weights times
    ``lambda_(l-1) / lambda_l``, bias over ``lambda_l``); returns the ``lambda_l``, the
    ``percentile``-th percentile of each ReLU's output in the original ANN on ``calibration``."""
    scales: list[float] = []
    h = calibration
    for lin_name, relu_name in _pairs(ann):
        h = ann.get_submodule(relu_name)(ann.get_submodule(lin_name)(h.flatten(1)))
        scales.append(float(np.percentile(h.numpy(), percentile)))
    previous = 1.0
    for (lin_name, _), scale in zip(_pairs(ann), scales, strict=True):
        lin = ann.get_submodule(lin_name)
        lin.weight.mul_(previous / scale)
        lin.bias.div_(scale)
        previous = scale
    return scales


@torch.no_grad()
def normalise_sinabs(ann: nn.Sequential, calibration: torch.Tensor,
                     percentile: float) -> list[float]:
    """``sinabs.utils.normalize_weights`` on ``ann`` in place, as shipped; returns the factor
    each Linear's weights and bias were divided by (the percentile of its ReLU's output,
    measured after the layers below were normalised)."""
    from sinabs.utils import normalize_weights

    pairs = _pairs(ann)
    before = [float(ann.get_submodule(n).weight.abs().sum()) for n, _ in pairs]
    normalize_weights(ann, calibration, output_layers=[r for _, r in pairs],
                      param_layers=[n for n, _ in pairs], percentile=percentile)
    after = [float(ann.get_submodule(n).weight.abs().sum()) for n, _ in pairs]
    return [b / a for b, a in zip(before, after, strict=True)]


@torch.no_grad()
def ann_accuracy(ann: nn.Sequential, key: torch.Tensor, x: torch.Tensor,
                 y: torch.Tensor) -> float:
    """Accuracy of the ANN's key decode (argmax) on ``x``."""
    pred = torch.cat([decode(ann(x[i:i + 1000]), 1, key) for i in range(0, len(x), 1000)])
    return float((pred == y).double().mean())


class Counter:
    """Synaptic operations per time step of every Linear (forward hooks on the squeezed
    ``(batch * steps, features)`` input): nonzero pixels for the first, spike counts for the
    rest, times ``out_features``. ``steps`` is set before each chunk."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
        self.steps = 1
        self.last: list[torch.Tensor] = [torch.zeros(0)] * len(self.layers)
        self.handles = [layer.register_forward_hook(self._hook(i))
                        for i, layer in enumerate(self.layers)]

    def _hook(self, i: int) -> Callable[..., None]:
        fanout = self.layers[i].out_features

        def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
            x = inputs[0].reshape(-1, self.steps, inputs[0].shape[-1])
            events = (x != 0).sum(dim=(0, 2)) if i == 0 else x.sum(dim=(0, 2))
            self.last[i] = events.double() * fanout
        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


@torch.no_grad()
def simulate(snn: nn.Module, key: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
             steps: list[int], batch_size: int, chunk: int) -> list[dict[str, object]]:
    """Accuracy and synaptic operations per inference at every T of ``steps`` (the first T
    steps of one ``max(steps)``-step simulation are the simulation of T steps)."""
    from sinabs.layers import SqueezeMixin, StatefulLayer

    squeeze = [m for m in snn.modules() if isinstance(m, SqueezeMixin)]
    stateful = [m for m in snn.modules() if isinstance(m, StatefulLayer)]
    counter = Counter(snn)
    classes = int(key.shape[0])
    t_max = max(steps)
    checkpoints = set(steps)
    correct = dict.fromkeys(steps, 0)
    # per time step, per layer (the Linears, then the decode): operations summed over samples
    ops = torch.zeros(t_max, len(counter.layers) + 1, dtype=torch.float64)
    try:
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            for m in stateful:
                m.reset_states()
            counts = torch.zeros(len(xb), key.shape[1])
            t0 = 0
            while t0 < t_max:
                n = min(chunk, t_max - t0)
                for m in squeeze:
                    m.num_timesteps = n
                counter.steps = n
                inp = xb.unsqueeze(1).expand(len(xb), n, *xb.shape[1:]).reshape(-1, *xb.shape[1:])
                out = snn(inp).reshape(len(xb), n, -1)
                for i, layer_ops in enumerate(counter.last):
                    ops[t0:t0 + n, i] += layer_ops
                ops[t0:t0 + n, -1] += out.sum(dim=(0, 2)).double() * classes
                for j in range(n):
                    counts += out[:, j]
                    t = t0 + j + 1
                    if t in checkpoints:
                        correct[t] += int((decode(counts, t, key) == yb).sum())
                t0 += n
    finally:
        counter.remove()
    total = len(x)
    cumulative = ops.cumsum(dim=0) / total
    rows: list[dict[str, object]] = []
    for t in steps:
        per = [float(v) for v in cumulative[t - 1]]
        rows.append({"T": t, "accuracy": correct[t] / total, "mac": per[0], "ac": sum(per[1:]),
                     "synops": sum(per), "synops_first_layer_once": per[0] / t + sum(per[1:]),
                     "per_layer": per})
    return rows


def load_npz(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def run(job: dict[str, object]) -> dict[str, object]:
    """Every mode of ``job``: normalise, convert, simulate; the result dictionary."""
    import sinabs
    from sinabs.activation import MembraneSubtract, MultiSpike, SingleSpike

    torch.set_num_threads(int(job.get("threads") or torch.get_num_threads()))
    arrays = load_npz(str(job["ann"]))
    data = load_npz(str(job["data"]))
    key = torch.from_numpy(arrays["key"]).float()
    x, y = torch.from_numpy(data["test_x"]), torch.from_numpy(data["test_y"]).long()
    calibration = torch.from_numpy(data["calibration_x"])
    steps = [int(t) for t in job["steps"]]  # type: ignore[attr-defined]
    batch_size, chunk = int(job["batch_size"]), int(job["chunk"])  # type: ignore[arg-type]
    spike_fn = {"single": SingleSpike, "multi": MultiSpike}[str(job["spike_fn"])]

    result: dict[str, object] = {
        "versions": versions(), "torch_threads": torch.get_num_threads(),
        "ann_accuracy": ann_accuracy(build_ann(arrays), key, x, y),
        "test_samples": len(x), "calibration_samples": len(calibration),
        "spike_fn": spike_fn.__name__, "modes": {}}
    print(f"sinabs {sinabs.__version__}: ANN rebuilt, accuracy {result['ann_accuracy']:.4f}",
          flush=True)
    for mode in job["modes"]:  # type: ignore[attr-defined]
        t_start = time.perf_counter()
        utility, percentile = parse_mode(str(mode))
        net = build_ann(arrays)
        scales = (normalise_sinabs if utility else normalise)(net, calibration, percentile)
        normalised_accuracy = ann_accuracy(net, key, x, y)
        network = sinabs.from_model(net, spike_threshold=torch.tensor(1.0), spike_fn=spike_fn,
                                    reset_fn=MembraneSubtract(), num_timesteps=chunk)
        snn = network.spiking_model.eval()
        sweep = simulate(snn, key, x, y, steps, batch_size, chunk)
        result["modes"][str(mode)] = {  # type: ignore[index]
            "percentile": percentile,
            "normalisation": "sinabs.utils.normalize_weights" if utility else "layer-wise exact",
            "scales": scales, "normalised_ann_accuracy": normalised_accuracy,
            "min_v_mem": _min_v_mem(snn), "sweep": sweep,
            "seconds": time.perf_counter() - t_start}
        print(f"  {mode}: scales {[round(v, 3) for v in scales]}, normalised ANN "
              f"{normalised_accuracy:.4f}", flush=True)
        for row in sweep:
            print(f"  {mode} T={row['T']:>3}: {row['accuracy']:.4f}, {row['synops']:.0f} synops",
                  flush=True)
    return result


def _min_v_mem(snn: nn.Module) -> float | None:
    from sinabs.layers import StatefulLayer

    for m in snn.modules():
        if isinstance(m, StatefulLayer):
            v = getattr(m, "min_v_mem", None)
            return None if v is None else float(v)
    return None


def main(argv: list[str]) -> int:
    if argv == ["--versions"]:
        print(json.dumps(versions()))
        return 0
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        job = json.load(f)
    result = run(job)
    with open(str(job["output"]), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
