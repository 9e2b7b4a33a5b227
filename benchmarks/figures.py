"""Figures for the README: the activations at several sharpness levels.

    python -m benchmarks.figures
"""

from pathlib import Path

from whetstone.plotting.sharpening import plot_activations

if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "docs" / "activations.png"
    print(plot_activations(out))
