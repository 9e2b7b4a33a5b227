"""``whetstone stats`` for people: every figure with its unit, per layer and in total, and the
energy estimates labelled with their per-operation figures and sources
(:mod:`whetstone.metrics.energy`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _count(value: float | None) -> str:
    """A count per sample: ``12,345`` (``1.5`` below 10), ``n/a`` for ``None``."""
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.3g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _pj(value: float | None) -> str:
    """Picojoules in the unit that reads best: pJ, nJ, uJ or mJ."""
    if value is None:
        return "n/a"
    for unit, scale in (("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} pJ"


def stats_lines(stats: dict[str, Any], what: str, plot: Path | str | None = None) -> list[str]:
    """The text of ``whetstone stats``: ``stats`` is :func:`whetstone.metrics.network_stats`'
    result on ``what`` (e.g. ``"mnist test"``); every count is per sample, averaged over
    the samples."""
    total = stats["total"]
    lines = [f"{what}, {stats['samples']} samples; every count is per sample, averaged over "
             f"the samples" + (f" (plot: {plot})" if plot else "")]
    if stats.get("accuracy") is not None:
        lines.append(f"accuracy (argmax of the readout): {_pct(stats['accuracy'])}")
    neurons = total.get("neurons")
    lines += [
        f"spikes per sample: {_count(total.get('spikes'))} of {_count(neurons)} spiking "
        f"neurons; spike density {_pct(total.get('density_mean'))} (mean of the layers), "
        f"{_pct(total.get('density_overall'))} (all neurons together); Gini of firing rates "
        f"{'n/a' if total.get('gini') is None else format(total['gini'], '.3f')} "
        f"(0: all neurons equally active)",
        f"synaptic operations (SynOps) per sample: {_count(total.get('synops'))} "
        f"({_count(total.get('ac'))} accumulates on spikes, AC; {_count(total.get('mac'))} "
        f"multiply-accumulates on real inputs, MAC)",
        f"the same layers as a dense network: {_count(total.get('dense_mac'))} MACs per "
        f"sample; SynOps / dense MACs "
        f"{'n/a' if total.get('synops_per_dense_mac') is None else format(total['synops_per_dense_mac'], '.4f')}",  # noqa: E501
        f"neuron updates per sample: {_count(total.get('neuron_updates'))}",
        "per layer:",
    ]
    for layer in stats["layers"]:
        origin = layer.get("origin")
        name = f"  #{layer['index']} {layer['kind']}" + (
            f" (module {origin})" if origin not in (None, str(layer["index"])) else "")
        if layer.get("density") is not None:
            lines.append(f"{name}: {layer['neurons']:,} neurons, spike density "
                         f"{_pct(layer['density'])} (std over samples "
                         f"{_pct(layer.get('density_std'))}), Gini {layer['gini']:.3f}")
        elif layer.get("synops") is not None:
            role = ", readout" if layer.get("readout") else ""
            lines.append(f"{name}{role}: {layer['input']} input, input density "
                         f"{_pct(layer.get('input_density'))}, {_count(layer['synops'])} "
                         f"SynOps per sample, {_count(layer.get('dense_mac'))} dense MACs")
    lines.append("energy estimates per sample (from the operation counts and per-operation "
                 "energies; estimates, not measurements):")
    for preset, energy in stats.get("energy", {}).items():
        ann = energy.get("dense_ann_pj")
        ratio = energy.get("ratio")
        dense = ("" if ann is None else
                 f"; the dense network {_pj(ann)}"
                 + ("" if ratio is None else f" ({ratio:.3g}x the spiking estimate)"))
        figures = (f"{energy['ac_pj']:g} pJ per AC, {energy['mac_pj']:g} pJ per MAC"
                   + (f", {energy['neuron_pj']:g} pJ per neuron update"
                      if energy.get("neuron_pj") else ""))
        lines.append(f"  {preset}: spiking network {_pj(energy.get('spiking_pj'))}{dense}")
        lines.append(f"    ({figures}; source: {energy.get('source', 'n/a')})")
    return lines
