"""NIR export targets: what each importer needs from a file to run it exactly.

A whetstone network runs for **one** time step from ``v = 0``; every neuron node must give
``v = x`` after that step and fire where whetstone fires (``x >= theta``). NIR's neuron
nodes are continuous-time ODEs that an importer discretises with its own time step ``dt``
(some fix it, some ignore it), and the importers differ in the nodes they map, in how they
compare ``v`` with the threshold and in how they treat the batch. :data:`TARGETS` maps
each target name to the :class:`Target` that :func:`~whetstone.export.to_nir` writes for
it; the graph metadata records the target, its ``dt`` and the loading call below.

Parametrisation of the neuron forms by the file's ``dt`` (one forward-Euler step from
``v = 0``, as NIR defines the nodes):

- ``"if"``: ``IF(r = 1 / dt, v_threshold)``: ``v = dt r x = x``.
- ``"lif"``: ``LIF(tau = dt, r = 1, v_leak = 0, v_threshold)``:
  ``v = (dt / tau) (v_leak - 0 + r x) = x`` (snnTorch: ``beta = 1 - dt / tau = 0``).
- ``"threshold"``: ``Threshold(threshold)``, no dynamics (no importer maps it).

``v_reset`` (0, NIR's default) is left out of the file: nir 1.0.4 (Sinabs 3.1.3, Rockpool)
rejects the field, and nir >= 1.0.6 fills in 0 when it is absent.

Threshold. ``fires_on`` is the importer's comparison. For ``">"`` (NIR's own rule, Norse,
snnTorch) the file holds ``v_threshold = nextafter(float32(theta), -inf)``, so
``v > v_threshold`` iff ``v >= theta`` for float32 ``v``; for ``">="`` (SpikingJelly's
heaviside and Sinabs's ``SingleSpike``, both ``v - threshold >= 0``) it holds
``float32(theta)`` itself. The exact ``theta`` is kept in the node metadata either way.

The table (versions verified by ``tests/interop``; ``x`` is a float32 tensor of real MNIST
digits, ``(B, *input_shape)`` batched, every call from zero state):

===============  ============  ==============================================  ========
target           forms (dt)    loading call that works                         batching
===============  ============  ==============================================  ========
``generic``      if (1), lif   any NIR reader; ``whetstone.export.from_nir``     --
                 (1),          reads every form back exactly
                 threshold
``norse``        if (1), lif   ``m = norse.torch.from_nir(nir.read(path))``;   batched
                 (1e-3)        ``out, _ = m(x)`` (Norse's default
                               ``dt = 1e-3``; its IF ignores ``dt``)
``snntorch``     lif (1e-4)    ``m = snntorch.import_nir.import_from_nir(      batched
                               nir.read(path))``; reset every
                               ``snntorch.SpikingNeuron``'s ``mem``
                               (``reset_mem()``) before each batch;
                               ``out, _ = m(x)``
``spikingjelly`` if (1e-4)     ``m = spikingjelly.activation_based.            batched
                               nir_exchange.import_from_nir(nir.read(path))``
                               (its default ``dt = 1e-4``); ``out, _ = m(x)``
``sinabs``       if (1)        ``m = sinabs.from_nir(nir.read(path),           batched
                               num_timesteps=1)``; set ``spike_fn =
                               sinabs.activation.SingleSpike`` on every
                               ``sinabs.layers.IAFSqueeze``; before each
                               batch ``reset_states()`` on every
                               ``sinabs.layers.StatefulLayer``;
                               ``out, _ = m(x)``
===============  ============  ==============================================  ========

Every target writes ``Flatten(start_dim=-n, end_dim=-1)`` for an ``n``-d batch-free input
(the same node as ``start_dim=0`` in NIR's batch-free shapes): the importers map it to
``torch.nn.Flatten(-n, -1)``, which keeps a leading batch dimension, so batches run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

PoolForm = Literal["sumpool", "conv"]
FiresOn = Literal[">", ">="]
GraphSupport = Literal["any", "ordered-sums", "chains"]


@dataclass(frozen=True)
class Target:
    """How :func:`~whetstone.export.to_nir` writes a file for one importer.

    Attributes:
        name: the target name (a key of :data:`TARGETS`).
        importer: the importer and the version the settings were verified with.
        neuron: the neuron form written when ``to_nir`` gets no ``neuron``.
        dt: for every form the importer reads right, the time step the file assumes
            (``IF`` gets ``r = 1 / dt``, ``LIF`` ``tau = dt``; recorded as the graph
            metadata ``dt``).
        refused: for every form the importer reads wrong or not at all, why (the message
            of the error ``to_nir`` raises).
        fires_on: the importer's spike condition, ``">"`` (``v > v_threshold``) or
            ``">="``; decides the written ``v_threshold`` (module doc).
        pool: how a sum pooling (``SumPool2d`` with scale 1) is written: ``"sumpool"``
            (NIR's ``SumPool2d``) or ``"conv"`` (a ``Conv2d`` with a diagonal ones kernel,
            exact on spikes, for importers without ``SumPool2d``).
        loading: the exact loading call that works in the importer.
        batching: whether the imported module runs a batch ``(B, *input_shape)`` as is.
        graphs: which graph networks (:attr:`~whetstone.runtime.SpikingNetwork.is_chain`
            false) the importer computes right: ``"any"``; ``"ordered-sums"``: only those
            where every sum has one source that all its other sources precede (an identity
            shortcut: Norse 1.1.0 evaluates nodes depth-first, so a sum of two branches
            that both have layers, such as a projection shortcut, is taken before one branch
            is computed: silently wrong; so no ``Concat`` either, whose export is a sum of
            one weighted node per part); ``"chains"``: none (graphs not verified there:
            :func:`~whetstone.export.to_nir` refuses them).
    """

    name: str
    importer: str
    neuron: str
    dt: Mapping[str, float]
    refused: Mapping[str, str]
    fires_on: FiresOn
    pool: PoolForm
    loading: str
    batching: str
    notes: tuple[str, ...] = field(default=())
    graphs: GraphSupport = "chains"

    def dt_for(self, neuron: str) -> float:
        """The file's ``dt`` for ``neuron``, or :class:`ValueError` saying why the importer
        cannot take that form."""
        if neuron in self.refused:
            raise ValueError(f"neuron={neuron!r} cannot be exported for target "
                             f"{self.name!r}: {self.refused[neuron]}")
        if neuron not in self.dt:
            raise ValueError(f"neuron must be one of {tuple(self.dt)} for target "
                             f"{self.name!r}, got {neuron!r}")
        return self.dt[neuron]


_NO_THRESHOLD_NODE = ("no framework imports NIR's Threshold node; use neuron='if' or 'lif' "
                      "(or target='generic' for whetstone's own reader)")

TARGETS: Mapping[str, Target] = MappingProxyType({
    "generic": Target(
        name="generic", importer="any NIR 1.0.4-1.0.8 reader (and whetstone.from_nir)",
        neuron="if", dt=MappingProxyType({"if": 1.0, "lif": 1.0, "threshold": 1.0}),
        refused=MappingProxyType({}), fires_on=">", pool="sumpool",
        loading="graph = nir.read(path); one forward-Euler step of dt = "
                "graph.metadata['dt'] from v = 0 (IF: v = dt r x, LIF: v = dt / tau r x); "
                "whetstone.export.from_nir(path) reads every form back exactly",
        batching="the importer's (Flatten keeps a leading batch dimension)", graphs="any"),
    "norse": Target(
        name="norse", importer="Norse 1.1.0 (nirtorch 2.6)",
        neuron="if", dt=MappingProxyType({"if": 1.0, "lif": 1e-3}),
        refused=MappingProxyType({"threshold": _NO_THRESHOLD_NODE}),
        fires_on=">", pool="sumpool",
        loading="module = norse.torch.from_nir(nir.read(path)); out, state = module(x) "
                "(state None: from rest; the lif form assumes Norse's default dt = 1e-3, "
                "pass dt=graph.metadata['dt'] if you change it)",
        batching="batched", graphs="ordered-sums"),
    "snntorch": Target(
        name="snntorch", importer="snnTorch 1.0.0 (nirtorch 2.6)",
        neuron="lif", dt=MappingProxyType({"lif": 1e-4}),
        refused=MappingProxyType({
            "if": "snnTorch 1.0.0 maps IF to a Leaky neuron with init_hidden=False whose "
                  "(spikes, membrane) tuple breaks the imported graph (TypeError); "
                  "use neuron='lif' (beta = 1 - dt / tau = 0 at snnTorch's fixed dt = 1e-4)",
            "threshold": _NO_THRESHOLD_NODE}),
        fires_on=">", pool="sumpool",
        loading="module = snntorch.import_nir.import_from_nir(nir.read(path)); before each "
                "batch call reset_mem() on every snntorch.SpikingNeuron in module.modules() "
                "(init_hidden keeps membranes between calls); out, state = module(x)",
        batching="batched"),
    "spikingjelly": Target(
        name="spikingjelly", importer="SpikingJelly 2.0.0",
        neuron="if", dt=MappingProxyType({"if": 1e-4}),
        refused=MappingProxyType({
            "lif": "SpikingJelly 2.0.0 requires LIF tau / dt > 1, so it cannot express the "
                   "one-step LIF (tau = dt, beta = 0); use neuron='if'",
            "threshold": _NO_THRESHOLD_NODE}),
        fires_on=">=", pool="conv",
        loading="module = spikingjelly.activation_based.nir_exchange.import_from_nir("
                "nir.read(path)) (default dt = 1e-4, the file's: IF r = 1 / dt); "
                "out, state = module(x) (state None: from rest)",
        batching="batched",
        notes=("SpikingJelly 2.0.0 maps no SumPool2d: sum pooling is written as a Conv2d "
               "with a ones kernel on the channel diagonal (marked whetstone_primitive "
               "SumPool2d, read back as the pooling)",
               "SpikingJelly's heaviside fires on v - v_threshold >= 0: the file holds theta "
               "itself, not the nextafter value")),
    "sinabs": Target(
        name="sinabs", importer="Sinabs 3.1.3 (nir 1.0.4, nirtorch 2.0.2)",
        neuron="if", dt=MappingProxyType({"if": 1.0}),
        refused=MappingProxyType({
            "lif": "Sinabs 3.1.3's LIF import tests any(node.v_leak) != 0, which raises "
                   "ValueError on the multi-dimensional v_leak of a convolutional layer; use "
                   "neuron='if'",
            "threshold": _NO_THRESHOLD_NODE}),
        fires_on=">=", pool="sumpool",
        loading="module = sinabs.from_nir(nir.read(path), num_timesteps=1); for every "
                "sinabs.layers.IAFSqueeze m in module.modules(): m.spike_fn = "
                "sinabs.activation.SingleSpike (the default MultiSpike emits floor(v / "
                "threshold) spikes); before each batch reset_states() on every "
                "sinabs.layers.StatefulLayer in module.modules() (the executor has no "
                "reset_states of its own); out, state = module(x)",
        batching="batched",
        notes=("Sinabs's SingleSpike fires on v - threshold >= 0: the file holds theta "
               "itself, not the nextafter value",)),
})
"""Target name -> :class:`Target` (see the module doc's table)."""

TARGET_NAMES: tuple[str, ...] = tuple(TARGETS)


def get_target(name: str) -> Target:
    """The :class:`Target` called ``name``, or :class:`ValueError` listing the targets."""
    try:
        return TARGETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"target must be one of {TARGET_NAMES}, got {name!r}") from None
