"""Cost metrics of spiking networks, the way the field counts them (numpy only, no torch).

- :mod:`.activity`: :func:`spike_density` (fraction of neurons firing per sample, per layer
  and mean), :func:`firing_rates` and :func:`gini`
  (``G = sum_i sum_j |x_i - x_j| / (2 n^2 mean(x))``, ``O(n log n)``).
- :mod:`.synops`: :func:`synaptic_ops`: effective synaptic operations (input spikes times
  fan-out), split into accumulates (AC, binary inputs) and multiply-accumulates (MAC, real
  inputs), beside the dense-ANN MAC count of the same network.
- :mod:`.energy`: :func:`estimate_energy` with labelled presets (:data:`ENERGY_PRESETS`:
  ``"45nm-fp32"``, ``"loihi-like"``). Estimates, not measurements.
- :mod:`.segmentation`: :func:`confusion_matrix` and :func:`segmentation_scores` (pixel
  accuracy, per-class and mean IoU); :mod:`.probe`: :func:`linear_probe` (how much of the
  class a representation keeps).
- :mod:`.stats`: :func:`network_stats` (all of the above, per layer and total, as JSON-ready
  dict) and :func:`plot_stats` (needs matplotlib).
"""

from .activity import firing_rates, gini, spike_density
from .energy import ENERGY_PRESETS, ESTIMATE_NOTE, EnergyPreset, estimate_energy
from .probe import ProbeResult, linear_probe
from .segmentation import confusion_matrix, segmentation_scores
from .stats import network_stats, plot_stats
from .synops import conv_fanout, conv_reads, dense_macs, synaptic_ops, trace

__all__ = [
    "ENERGY_PRESETS",
    "ESTIMATE_NOTE",
    "EnergyPreset",
    "ProbeResult",
    "conv_fanout",
    "confusion_matrix",
    "conv_reads",
    "dense_macs",
    "estimate_energy",
    "firing_rates",
    "gini",
    "linear_probe",
    "network_stats",
    "segmentation_scores",
    "plot_stats",
    "spike_density",
    "synaptic_ops",
    "trace",
]
