"""Errors of the export package."""

from __future__ import annotations


class NIRFileError(ValueError):
    """A NIR file cannot be read into a :class:`~whetstone.runtime.SpikingNetwork`: missing
    or unreadable, not HDF5, corrupted, not a NIR graph, a graph whetstone cannot represent,
    or its read did not finish within the time limit. The message names the file and the
    problem."""


class NIRExportError(ValueError):
    """A network cannot be written as a NIR graph because NIR 1.0 has no node for one of its
    primitives (nearest-neighbour upsampling, a reshape before further layers), or the
    target's importer has none (a pooling scaled by other than 1 or ``1 / (kh kw)`` for
    SpikingJelly, which maps neither ``SumPool2d`` nor ``Scale``); the message names the
    layer and the missing node."""
