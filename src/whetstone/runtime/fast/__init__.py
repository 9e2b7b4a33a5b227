"""The fast engine: a spiking network compiled into numba kernels (``whetstone[fast]``).

``run(net, x, engine="fast")`` (see :mod:`whetstone.runtime.simulate`) or directly
``compile_network(net)(x)``. Spike-driven and fused: an affine layer over spikes adds the
weight rows of the inputs that fired, a convolution over spikes adds, for every output
pixel, the kernel rows of the active inputs in its window (channels last), and each is
fused with the ``Threshold`` after it. Float networks run in float32 (default) or float64;
integer networks (:func:`whetstone.quantization.to_integer`) exactly in integers (int32
accumulators where the layer's bound allows, else int64). Details in :mod:`.engine`.
"""

from .engine import FastNetwork, compile_network, fast_engine, is_integer_network

__all__ = ["FastNetwork", "compile_network", "fast_engine", "is_integer_network"]
