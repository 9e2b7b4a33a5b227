"""The NIR mappings are tables: a user's writer or reader replaces or adds one entry."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import whetstone.runtime as rt
from whetstone.export import (
    NIR_READERS,
    NIR_WRITERS,
    NIRExportError,
    from_graph,
    register_nir_reader,
    register_nir_writer,
    to_graph,
)

pytest.importorskip("nir", reason="the 'nir' package (extra 'nir') is not installed")


def _net() -> rt.SpikingNetwork:
    rng = np.random.default_rng(0)
    return rt.SpikingNetwork([rt.Affine(rng.normal(size=(6, 4)), rng.normal(size=6)),
                              rt.Threshold(0.5)])


@pytest.fixture
def restore_tables() -> Iterator[None]:
    writers, readers = dict(NIR_WRITERS), dict(NIR_READERS)
    yield
    NIR_WRITERS.clear()
    NIR_WRITERS.update(writers)
    NIR_READERS.clear()
    NIR_READERS.update(readers)


def test_every_exportable_primitive_has_a_writer_and_a_reader():
    for kind in (rt.Affine, rt.Decode, rt.Conv2d, rt.SumPool2d, rt.Flatten, rt.Threshold):
        assert kind in NIR_WRITERS
    assert {"Affine", "Linear", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten", "IF", "LIF",
            "Threshold"} <= set(NIR_READERS)


def test_a_registered_writer_and_reader_are_used(restore_tables: None):
    default = NIR_WRITERS[rt.Affine]
    seen: list[int] = []

    @register_nir_writer(rt.Affine)
    def marked(builder, spec):  # noqa: ANN001, ANN202
        seen.append(spec.index)
        entry, exit_ = default(builder, spec)
        builder.nodes[entry].metadata["mine"] = 1
        return entry, exit_

    graph = to_graph(_net())
    assert seen == [0] and graph.nodes["0_affine"].metadata["mine"] == 1

    @register_nir_reader("Affine")
    def doubled(node, ctx):  # noqa: ANN001, ANN202
        return rt.Affine(2 * np.asarray(node.weight), 2 * np.asarray(node.bias))

    back = from_graph(graph)
    np.testing.assert_array_equal(back.layers[0].weight, 2 * _net().layers[0].weight)


def test_a_primitive_without_writer_is_refused_naming_the_remedy(restore_tables: None):
    del NIR_WRITERS[rt.Affine]
    with pytest.raises(NIRExportError, match=r"layer 0 \(Affine\): no NIR writer.*"
                                             r"register_nir_writer"):
        to_graph(_net())


def test_registration_checks_its_arguments():
    with pytest.raises(TypeError, match="Primitive subclasses"):
        register_nir_writer(int)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="node type names"):
        register_nir_reader()
