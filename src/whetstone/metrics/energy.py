"""Energy **estimates** from operation counts (labelled presets; not measurements).

``E = e_ac * AC + e_mac * MAC + e_neuron * neuron_updates`` (picojoules per sample), and for
the dense ANN baseline ``E_ann = e_ann_mac * dense_MAC`` where the preset defines one.

Presets (:data:`ENERGY_PRESETS`):

- ``"45nm-fp32"``: 32-bit float add 0.9 pJ, multiply-add 4.6 pJ (3.7 pJ multiply +
  0.9 pJ add) in a 45 nm process, after M. Horowitz, "Computing's energy problem (and what
  we can do about it)", ISSCC 2014. Spiking: ``0.9 AC + 4.6 MAC``; dense ANN:
  ``4.6 dense_MAC``. Memory access (the dominant cost on real chips) is not included.
- ``"loihi-like"``: about 27 pJ per synaptic operation (AC or MAC alike) plus 81 pJ per
  neuron update, the order of magnitude reported for Intel Loihi (Davies et al., IEEE Micro
  2018, and figures quoted after it). No dense-ANN figure (``None``): an ANN does not run there.

These are the field's back-of-the-envelope conventions: report them as estimates, beside the
operation counts they come from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ESTIMATE_NOTE = ("energy values are estimates from operation counts and per-operation "
                 "energies of the named preset, not measurements")


@dataclass(frozen=True)
class EnergyPreset:
    """Per-operation energies in picojoules (``None``: the preset has no dense-ANN figure)."""

    name: str
    ac_pj: float
    mac_pj: float
    neuron_pj: float
    ann_mac_pj: float | None
    source: str


ENERGY_PRESETS: dict[str, EnergyPreset] = {
    "45nm-fp32": EnergyPreset(
        "45nm-fp32", ac_pj=0.9, mac_pj=4.6, neuron_pj=0.0, ann_mac_pj=4.6,
        source="Horowitz, ISSCC 2014: 45 nm, fp32 add 0.9 pJ, mult+add 4.6 pJ"),
    "loihi-like": EnergyPreset(
        "loihi-like", ac_pj=27.0, mac_pj=27.0, neuron_pj=81.0, ann_mac_pj=None,
        source="Loihi-like: ~27 pJ per synaptic op, ~81 pJ per neuron update "
               "(after Davies et al., IEEE Micro 2018)"),
}


def estimate_energy(ac: float, mac: float, neuron_updates: float = 0.0,
                    dense_mac: float | None = None,
                    preset: str | EnergyPreset = "45nm-fp32") -> dict[str, Any]:
    """Energy estimate (pJ per sample) of the spiking network and of the dense ANN.

    ``spiking_pj = ac_pj * ac + mac_pj * mac + neuron_pj * neuron_updates``;
    ``dense_ann_pj = ann_mac_pj * dense_mac`` (``None`` without ``dense_mac`` or when the
    preset has no ANN figure); ``ratio = dense_ann_pj / spiking_pj`` when both exist and
    ``spiking_pj > 0``.

    Returns a JSON-serialisable dict: ``preset``, ``estimate`` (always ``True``), ``note``,
    ``source``, ``unit`` (``"pJ per sample"``), the per-operation energies, ``spiking_pj``,
    ``dense_ann_pj`` and ``ratio``.

    Raises:
        KeyError: an unknown preset name (the known ones are listed).
        ValueError: a negative count.
    """
    if isinstance(preset, str):
        if preset not in ENERGY_PRESETS:
            raise KeyError(f"unknown energy preset {preset!r}; known: {sorted(ENERGY_PRESETS)}")
        preset = ENERGY_PRESETS[preset]
    counts = (ac, mac, neuron_updates, 0.0 if dense_mac is None else dense_mac)
    if any(c < 0 for c in counts):
        raise ValueError(f"operation counts must be >= 0, got {counts}")
    spiking = preset.ac_pj * ac + preset.mac_pj * mac + preset.neuron_pj * neuron_updates
    ann = (None if dense_mac is None or preset.ann_mac_pj is None
           else preset.ann_mac_pj * dense_mac)
    return {
        "preset": preset.name,
        "estimate": True,
        "note": ESTIMATE_NOTE,
        "unit": "pJ per sample",
        **{k: v for k, v in asdict(preset).items() if k != "name"},
        "spiking_pj": float(spiking),
        "dense_ann_pj": None if ann is None else float(ann),
        "ratio": None if ann is None or spiking <= 0 else float(ann / spiking),
    }
