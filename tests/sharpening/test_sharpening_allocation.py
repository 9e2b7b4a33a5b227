"""Bottom-up and uniform allocation of model sharpness (method.md §2)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import whetstone as ws
from whetstone.sharpening import bottom_up, uniform


@pytest.mark.parametrize(
    ("m", "n", "expected"),
    [
        (0.0, 3, [0.0, 0.0, 0.0]),
        (0.1, 4, [0.4, 0.0, 0.0, 0.0]),
        (0.25, 4, [1.0, 0.0, 0.0, 0.0]),
        (0.5, 3, [1.0, 0.5, 0.0]),
        (0.9, 2, [1.0, 0.8]),
        (1.0, 3, [1.0, 1.0, 1.0]),
        (2 / 3, 3, [1.0, 1.0, 0.0]),
    ],
)
def test_bottom_up(m, n, expected):
    assert bottom_up(m, n) == pytest.approx(expected)


def test_bottom_up_snaps_accumulated_float_error():
    m = 0.0
    for _ in range(5):
        m += 1 / 15  # five of fifteen steps: layer 0 must be exactly 1, not 0.9999999
    assert bottom_up(m, 3)[0] == 1.0


@given(m=st.floats(0, 1), n=st.integers(1, 12))
def test_bottom_up_properties(m, n):
    values = bottom_up(m, n)
    assert len(values) == n
    assert all(0.0 <= v <= 1.0 for v in values)
    assert values == sorted(values, reverse=True), "lower layers are never behind upper ones"
    assert sum(1 for v in values if 0.0 < v < 1.0) <= 1, "one layer sharpens at a time"
    assert sum(values) / n == pytest.approx(m, abs=1e-9)


def test_uniform():
    assert uniform(0.3, 4) == [0.3] * 4


def test_invalid_model_sharpness():
    with pytest.raises(ValueError):
        bottom_up(1.2, 3)


def _nested_model():
    inner = torch.nn.Sequential(torch.nn.Linear(4, 4), ws.nn.SpikingBReLU())
    return torch.nn.Sequential(
        torch.nn.Linear(4, 4), ws.nn.SpikingBReLU(), inner,
        torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(4, 4), ws.nn.SpikingSigmoid())),
    )


def test_sharpenable_layers_finds_nested_modules_in_order():
    model = _nested_model()
    layers = ws.sharpening.sharpenable_layers(model)
    assert [type(x).__name__ for x in layers] == ["SpikingBReLU", "SpikingBReLU", "SpikingSigmoid"]
    assert layers[1] is model[2][1]


def test_sharpenable_layers_follows_forward_order_with_example_input():
    class Reversed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.late = ws.nn.SpikingBReLU()
            self.early = ws.nn.SpikingSigmoid()

        def forward(self, x):
            return self.late(self.early(x))

    model = Reversed()
    assert ws.sharpening.sharpenable_layers(model)[0] is model.late
    assert ws.sharpening.sharpenable_layers(model, torch.zeros(1, 3))[0] is model.early


def test_set_and_get_model_sharpness():
    model = _nested_model()
    ws.sharpening.set_model_sharpness(model, 0.5)
    assert ws.sharpening.get_layer_sharpness(model) == pytest.approx([1.0, 0.5, 0.0])
    ws.sharpening.set_model_sharpness(model, 0.5, bottom_up=False)
    assert ws.sharpening.get_layer_sharpness(model) == pytest.approx([0.5, 0.5, 0.5])


def test_fully_sharpened_context_restores():
    model = _nested_model()
    ws.sharpening.set_model_sharpness(model, 0.4)
    before = ws.sharpening.get_layer_sharpness(model)
    with ws.sharpening.fully_sharpened(model):
        assert ws.sharpening.is_fully_sharp(model)
    assert ws.sharpening.get_layer_sharpness(model) == before
