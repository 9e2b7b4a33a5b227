"""Graph networks per target: exported only where the importer computes them right."""

from __future__ import annotations

import numpy as np
import pytest

import whetstone.runtime as rt
from whetstone.export import TARGETS, NIRExportError, to_graph

pytest.importorskip("nir", reason="the 'nir' package (extra 'nir') is not installed")


def _affine(rng: np.random.Generator) -> rt.Affine:
    return rt.Affine(rng.normal(size=(6, 6)), rng.normal(size=6) * 0.3)


def identity_shortcut() -> rt.SpikingNetwork:
    """x -> A0 -> T1 -> A2 -> Add(A2, T1) -> T4: the shortcut T1 precedes A2."""
    rng = np.random.default_rng(0)
    layers = [_affine(rng), rt.Threshold(0.5), _affine(rng), rt.Add(), rt.Threshold(0.5)]
    return rt.SpikingNetwork(layers, {"input_shape": [6]},
                             [(-1,), (0,), (1,), (2, 1), (3,)])


def projection_shortcut() -> rt.SpikingNetwork:
    """x -> A0 -> T1 -> A2 and T1 -> A3 (a second branch with its own layer), Add(A2, A3)."""
    rng = np.random.default_rng(1)
    layers = [_affine(rng), rt.Threshold(0.5), _affine(rng), _affine(rng), rt.Add(),
              rt.Threshold(0.5)]
    return rt.SpikingNetwork(layers, {"input_shape": [6]},
                             [(-1,), (0,), (1,), (1,), (2, 3), (4,)])


def test_targets_declare_their_graph_support():
    assert TARGETS["generic"].graphs == "any"
    assert TARGETS["norse"].graphs == "ordered-sums"
    assert {TARGETS[t].graphs for t in ("snntorch", "spikingjelly", "sinabs")} == {"chains"}


def test_norse_takes_an_identity_shortcut_and_refuses_a_projection():
    graph = to_graph(identity_shortcut(), target="norse")
    assert sorted(a for a, b in graph.edges if b == "4_if") == ["1_if", "2_affine"]
    with pytest.raises(NIRExportError, match=r"layer 4 \(Add of layers \[2, 3\]\).*"
                                             r"depth-first.*target 'generic'"):
        to_graph(projection_shortcut(), target="norse")
    to_graph(projection_shortcut(), target="generic")  # whetstone's reader takes any graph


@pytest.mark.parametrize("target", ["snntorch", "spikingjelly", "sinabs"])
def test_unverified_importers_refuse_graphs_but_not_chains(target: str):
    with pytest.raises(NIRExportError, match=f"target '{target}': graph networks"):
        to_graph(identity_shortcut(), target=target)
    rng = np.random.default_rng(2)
    to_graph(rt.SpikingNetwork([_affine(rng), rt.Threshold(0.5)], {"input_shape": [6]}),
             target=target)
