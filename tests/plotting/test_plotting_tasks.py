"""Task figures: written atomically as PNG, shapes checked."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from whetstone.plotting.tasks import plot_reconstructions, plot_segmentation  # noqa: E402


def test_reconstruction_grid_is_written(tmp_path):
    originals = np.random.default_rng(0).random((4, 8, 8))
    path = plot_reconstructions(originals, {"binary": originals * 0.5}, tmp_path / "r.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.png"]  # no temporary file left
    with pytest.raises(ValueError, match="shape"):
        plot_reconstructions(originals, {"binary": originals[:2]}, tmp_path / "bad.png")


def test_segmentation_figure_is_written(tmp_path):
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 11, (3, 16, 16))
    path = plot_segmentation(rng.random((3, 16, 16)), masks, {"spiking": masks},
                             tmp_path / "s.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
