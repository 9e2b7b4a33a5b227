"""Figures (need the ``plot`` extra: matplotlib)."""
