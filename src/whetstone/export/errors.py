"""Errors of the export package."""

from __future__ import annotations


class NIRFileError(ValueError):
    """A NIR file cannot be read into a :class:`~whetstone.runtime.SpikingNetwork`: missing
    or unreadable, not HDF5, corrupted, not a NIR graph, a graph whetstone cannot represent,
    or its read did not finish within the time limit. The message names the file and the
    problem."""
