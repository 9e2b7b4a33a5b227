"""Sharpenable modules: sharpness as a saved, changeable buffer; surrogate gradients."""

import pytest
import torch

import whetstone as ws


def test_sharpness_is_a_float_property_backed_by_a_buffer():
    layer = ws.nn.SpikingBReLU(sharpness=0.25)
    assert isinstance(layer.sharpness, float)
    assert layer.sharpness == 0.25
    layer.sharpness = 0.75
    assert layer.state_dict()["_sharpness"].item() == 0.75


def test_sharpness_is_saved_and_restored():
    a = torch.nn.Sequential(torch.nn.Linear(3, 3), ws.nn.SpikingBReLU(0.6))
    b = torch.nn.Sequential(torch.nn.Linear(3, 3), ws.nn.SpikingBReLU(0.0))
    b.load_state_dict(a.state_dict())
    assert b[1].sharpness == pytest.approx(0.6)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_sharpness_out_of_range_is_rejected(bad):
    with pytest.raises(ValueError, match="sharpness"):
        ws.nn.SpikingBReLU(sharpness=bad)


def test_module_equals_functional():
    x = torch.linspace(-1, 2, 101)
    for s in (0.0, 0.4, 0.95):
        assert torch.equal(ws.nn.SpikingBReLU(s)(x), ws.nn.functional.brelu(x, s))
        assert torch.equal(ws.nn.SpikingSigmoid(s)(x), ws.nn.functional.sigmoid(x, s))


def test_full_sharpness_without_surrogate_has_no_gradient_path():
    x = torch.randn(10, requires_grad=True)
    y = ws.nn.SpikingBReLU(1.0)(x)
    assert not y.requires_grad


def test_straight_through_keeps_forward_binary_and_passes_a_boxcar_gradient():
    layer = ws.nn.SpikingBReLU(1.0, surrogate=ws.nn.StraightThrough(width=1.0))
    x = torch.tensor([-0.2, 0.1, 0.5, 0.9, 1.2], requires_grad=True)
    y = layer(x)
    assert y.tolist() == [0, 0, 1, 1, 0 + 1]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_sigmoid_threshold_is_zero():
    layer = ws.nn.SpikingSigmoid(1.0)
    assert layer(torch.tensor([-1e-6, 0.0, 1e-6])).tolist() == [0.0, 1.0, 1.0]
