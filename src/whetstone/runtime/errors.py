"""Errors of the spiking runtime."""

from __future__ import annotations


class NetworkFileError(ValueError):
    """A saved spiking network cannot be read: not a network file, truncated, corrupted,
    tampered with (checksum mismatch) or of an unknown format version. The message names the
    file and the problem."""
