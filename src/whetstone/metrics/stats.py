"""``network_stats``: activity, operations and energy estimates of a spiking network in one
pass, as a JSON-serialisable dict; ``plot_stats`` draws its per-layer density and Gini."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..runtime import SpikingNetwork, Threshold
from .activity import gini
from .energy import ENERGY_PRESETS, ESTIMATE_NOTE, estimate_energy
from .synops import SYNAPTIC, _synops_from, trace

if TYPE_CHECKING:
    from ..progress import Progress


def network_stats(net: SpikingNetwork, x: np.ndarray, y: np.ndarray | None = None,
                  batch_size: int = 256,
                  presets: tuple[str, ...] = tuple(ENERGY_PRESETS),
                  progress: Progress | None = None) -> dict[str, Any]:
    """Per-layer and total cost metrics of ``net`` on ``x`` ``(N, ...)`` (per sample).

    For every ``Threshold`` ``l`` with ``M_l`` neurons and spikes ``z`` ``(N, M_l)``:

    - ``density = (1 / (N M_l)) sum_{n,m} z[n, m]`` (fraction of neurons firing per sample,
      averaged over samples), with ``density_std`` its standard deviation over samples;
    - ``gini``: :func:`~whetstone.metrics.gini` of the per-neuron firing rates
      ``r[m] = (1 / N) sum_n z[n, m]`` (0: all neurons equally active).

    For every ``Affine`` / ``Conv2d`` / ``Decode``: ``ac``, ``mac``, ``synops``,
    ``dense_mac`` as in :func:`~whetstone.metrics.synaptic_ops`. The readout (the decode or
    a real-valued affine / 1x1-convolution readout) is counted like any synaptic layer and
    flagged ``"readout": True``; being real-valued it has no density or Gini.

    Returns::

        {"samples": N, "accuracy": float | None,
         "readout": {"kind": net.readout, "index": net.readout_index},
         "layers": [{"index", "kind", "origin", "output_shape", "readout": bool, "neurons",
                     "density", "density_std", "gini",            # Threshold only
                     "input", "input_density", "ac", "mac", "synops",
                     "dense_mac"}, ...],                           # synaptic layers only
         "total": {"density_mean": mean of the layer densities,
                   "density_overall": spikes / neuron evaluations (all layers),
                   "gini": Gini of all neurons' rates together,
                   "ac", "mac", "synops", "dense_mac", "neuron_updates",
                   "synops_per_dense_mac": synops / dense_mac,
                   "neurons": spiking neurons (all Threshold layers),
                   "spikes": spikes per sample (all layers)},
         "energy": {preset: estimate_energy(...)},    # estimates, labelled
         "note": ...}

    Keys that do not apply to a primitive are ``None``. ``y`` (optional) adds the accuracy
    of the argmax of the last output over axis 1: ``y`` ``(N,)`` class indices for outputs
    ``(N, C)``, or ``(N, H, W)`` per-pixel classes for outputs ``(N, C, H, W)`` (then the
    accuracy is the pixel accuracy, the mean over all ``N H W`` pixels). A network whose
    readout is ``"spikes"`` or ``"identity"`` has no scores to rank: its accuracy is
    ``None`` whatever ``y`` is. ``progress`` (a :class:`whetstone.progress.Progress`) shows
    a bar over the batches.
    """
    tr = trace(net, x, batch_size, progress)
    ops = _synops_from(net, tr)
    by_index = {e["index"]: e for e in ops["layers"]}
    origin = net.metadata.get("origin") if isinstance(net.metadata, dict) else None
    layers: list[dict[str, Any]] = []
    densities: list[float] = []
    rates_all: list[np.ndarray] = []
    for i, (layer, acc) in enumerate(zip(net.layers, tr.layers, strict=True)):
        entry: dict[str, Any] = {
            "index": i, "kind": layer.kind,
            "origin": origin[i] if isinstance(origin, list) and i < len(origin) else None,
            "output_shape": list(acc.output_shape),
            "readout": i == net.readout_index,
            "neurons": None, "density": None, "density_std": None, "gini": None,
            "input": None, "input_density": None, "ac": None, "mac": None, "synops": None,
            "dense_mac": None,
        }
        if isinstance(layer, Threshold):
            assert acc.neuron_spikes is not None
            per_sample = np.concatenate(acc.sample_density)
            rates = acc.neuron_spikes / tr.samples
            rates_all.append(rates)
            entry.update(neurons=int(rates.size), density=float(per_sample.mean()),
                         density_std=float(per_sample.std()), gini=gini(rates))
            densities.append(entry["density"])
        elif isinstance(layer, SYNAPTIC):
            syn = by_index[i]
            entry.update({k: syn[k] for k in ("input", "input_density", "ac", "mac",
                                              "synops", "dense_mac")})
        layers.append(entry)
    total = dict(ops["total"])
    all_rates = np.concatenate(rates_all) if rates_all else np.zeros(0)
    total.update(
        density_mean=float(np.mean(densities)) if densities else None,
        density_overall=float(all_rates.mean()) if all_rates.size else None,
        gini=gini(all_rates) if all_rates.size else None,
        neuron_updates=ops["neuron_updates"],
        synops_per_dense_mac=(total["synops"] / total["dense_mac"]
                              if total["dense_mac"] else None),
        neurons=int(all_rates.size),
        spikes=float(all_rates.sum()),
    )
    accuracy = None
    if y is not None and net.readout not in ("spikes", "identity"):
        y = np.asarray(y)
        out = tr.outputs if tr.outputs.ndim >= 2 else tr.outputs.reshape(tr.samples, -1)
        pred = out.argmax(axis=1)
        if y.shape != pred.shape:
            raise ValueError(f"y must have shape {pred.shape} (the argmax over axis 1 of the "
                             f"outputs {out.shape}), got {y.shape}")
        accuracy = float((pred == y).mean())
    energy = {p: estimate_energy(total["ac"], total["mac"], total["neuron_updates"],
                                 total["dense_mac"], p) for p in presets}
    return {"samples": tr.samples, "accuracy": accuracy, "readout": ops["readout"],
            "layers": layers, "total": total, "energy": energy, "note": ESTIMATE_NOTE}


def _pyplot():  # noqa: ANN202
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plot_stats needs matplotlib: pip install 'whetstone[plot]'") from exc
    return plt


def plot_stats(stats: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Bar charts of the per-layer spike density and Gini coefficient of ``stats``
    (from :func:`network_stats`), one bar per ``Threshold``; saved to ``path`` (PNG).

    Raises:
        ImportError: matplotlib is not installed (``pip install 'whetstone[plot]'``).
        ValueError: ``stats`` has no spiking layer.
    """
    spiking = [e for e in stats["layers"] if e.get("density") is not None]
    if not spiking:
        raise ValueError("stats has no spiking (Threshold) layer to plot")
    plt = _pyplot()
    labels = [f"#{e['index']}" + (f"\n({e['origin']})" if e.get("origin") not in
                                  (None, str(e["index"])) else "") for e in spiking]
    pos = np.arange(len(spiking))
    fig, axes = plt.subplots(2, 1, figsize=(max(5.0, 0.8 * len(spiking) + 2), 6), sharex=True)
    axes[0].bar(pos, [e["density"] for e in spiking],
                yerr=[e.get("density_std") or 0.0 for e in spiking], color="tab:blue",
                capsize=3)
    axes[0].set_ylabel("spike density")
    axes[0].set_ylim(0, 1)
    mean = stats["total"].get("density_mean")
    if mean is not None:
        axes[0].axhline(mean, color="black", lw=0.8, ls="--", label=f"mean {mean:.3f}")
        axes[0].legend(fontsize=8)
    axes[1].bar(pos, [e["gini"] for e in spiking], color="tab:orange")
    axes[1].set_ylabel("Gini of firing rates")
    axes[1].set_ylim(0, 1)
    axes[1].set_xticks(pos, labels, fontsize=7)
    axes[1].set_xlabel("Threshold layer (index, origin)")
    for ax in axes:
        ax.grid(alpha=0.3, axis="y")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
