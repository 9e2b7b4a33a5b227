"""Export of spiking networks to other tools.

- :mod:`.nir_graph`: :func:`to_nir` writes a :class:`~whetstone.runtime.SpikingNetwork` as
  a NIR graph (HDF5 that nir 1.0.4 to 1.0.8 read) for an importer ``target``: ``generic``,
  ``norse``, ``snntorch``, ``spikingjelly``, ``sinabs``; :func:`from_nir` reads it back.
- :mod:`.writers` / :mod:`.readers`: the tables from runtime primitive to NIR node(s)
  (:data:`NIR_WRITERS`, :func:`register_nir_writer`) and from NIR node type to primitive
  (:data:`NIR_READERS`, :func:`register_nir_reader`), so a user's primitive or node type
  needs no edit of whetstone.
- :mod:`.targets`: :data:`TARGETS`, target name -> :class:`Target` (neuron form, time step,
  threshold comparison, pooling node, refused forms and the loading call that works in
  that importer). Whetstone's ``z = 1[x >= theta]`` is exported as NIR's
  ``z = 1[v > theta']`` with ``theta' = nextafter(float32(theta), -inf)``, so ties still
  fire. Needs the ``nir`` extra (``pip install 'whetstone[nir]'``).
- :class:`NIRExportError` (a ``ValueError``): :func:`to_nir` refuses a network with a layer
  NIR 1.0 cannot express (``Upsample2d``: nearest upsampling; an ``Unflatten`` that is not
  the network's last primitive; ``Concat``), naming the layer. Graph networks export with
  their edges (an ``Add`` is several edges into its reader: NIR sums a node's inputs).
  Readouts (a decode, a real-valued ``Affine`` / ``Conv2d``, spikes) export as ordinary
  nodes marked with their kind.
- :mod:`.onnx`: :func:`~whetstone.export.onnx.to_onnx` writes a network (float, or integer
  with exact integer operators) as an ONNX model, and
  :func:`~whetstone.export.onnx.run_onnx` runs it in onnxruntime (the ``"onnxruntime"``
  engine of :func:`whetstone.runtime.run`); needs the ``onnx`` extra.
- :class:`NIRFileError` (a ``ValueError``): every failure of :func:`from_nir` (missing,
  corrupted or foreign file, unsupported graph, or a read past its time limit: the HDF5 file
  is read in a child process that is killed when it takes too long); the message names the
  file.
"""

from .errors import NIRExportError, NIRFileError
from .nir_graph import (
    THRESHOLD_CONVENTION,
    from_graph,
    from_nir,
    resolve,
    to_graph,
    to_nir,
    write_graph,
)
from .readers import NIR_READERS, NodeContext, register_nir_reader, restored_threshold
from .targets import TARGET_NAMES, TARGETS, Target, get_target
from .writers import (
    NEURON_FORMS,
    NIR_WRITERS,
    NOT_EXPORTABLE,
    GraphBuilder,
    NodeSpec,
    exported_threshold,
    register_nir_writer,
)

__all__ = [
    "NEURON_FORMS",
    "NIRExportError",
    "NIRFileError",
    "NIR_READERS",
    "NIR_WRITERS",
    "NOT_EXPORTABLE",
    "GraphBuilder",
    "NodeContext",
    "NodeSpec",
    "TARGETS",
    "TARGET_NAMES",
    "THRESHOLD_CONVENTION",
    "Target",
    "exported_threshold",
    "from_graph",
    "from_nir",
    "get_target",
    "register_nir_reader",
    "register_nir_writer",
    "resolve",
    "restored_threshold",
    "to_graph",
    "to_nir",
    "write_graph",
]
