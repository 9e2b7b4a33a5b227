"""Sharpenable modules: sharpness as a saved, changeable buffer; surrogate gradients."""

import math

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


def test_loaded_sharpness_reaches_the_forward_pass():
    """The host copy that forward reads follows load_state_dict, nested modules included."""
    src = torch.nn.Sequential(torch.nn.Linear(3, 3), ws.nn.SpikingBReLU(sharpness=1.0))
    dst = torch.nn.Sequential(torch.nn.Linear(3, 3), ws.nn.SpikingBReLU())
    dst.load_state_dict(src.state_dict())
    assert dst[1].sharpness == 1.0
    x = torch.randn(64, 3)
    assert set(dst(x).unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(dst(x), src(x))


def test_loading_an_out_of_range_sharpness_is_an_error():
    layer = ws.nn.SpikingBReLU()
    with pytest.raises(RuntimeError, match="_sharpness"):
        layer.load_state_dict({"_sharpness": torch.tensor(1.5, dtype=torch.float64)})


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


def test_arctan_surrogate_values_written_out():
    # d/dx = (alpha/2) / (1 + (pi/2 * alpha * (x - 0.5))^2); alpha = 2: 1 / (1 + (pi u)^2)
    layer = ws.nn.SpikingBReLU(1.0, surrogate=ws.nn.ArcTan(alpha=2.0))
    x = torch.tensor([0.5, 1.5, -0.5, 0.25], dtype=torch.float64, requires_grad=True)
    y = layer(x)
    assert y.tolist() == [1.0, 1.0, 0.0, 0.0]
    y.sum().backward()
    expected = [1.0, 1 / (1 + math.pi**2), 1 / (1 + math.pi**2), 1 / (1 + (math.pi / 4) ** 2)]
    assert x.grad.tolist() == pytest.approx(expected, rel=1e-12)


def test_arctan_surrogate_integrates_to_one():
    u = torch.linspace(-2000, 2000, 4_000_001, dtype=torch.float64)
    for alpha in (0.5, 2.0, 8.0):
        g = ws.nn.ArcTan(alpha).grad(u.clone())
        assert float(torch.trapezoid(g, u)) == pytest.approx(1.0, abs=2e-3)


def test_make_surrogate_by_name():
    from whetstone.nn.surrogate import make_surrogate

    assert make_surrogate("arctan") == ws.nn.ArcTan(2.0)
    assert make_surrogate("straight-through", width=0.5) == ws.nn.StraightThrough(0.5)
    assert make_surrogate(None) is None
    with pytest.raises(ValueError, match="arctan"):
        make_surrogate("sigmoid-ish")


def test_sigmoid_threshold_is_zero():
    layer = ws.nn.SpikingSigmoid(1.0)
    assert layer(torch.tensor([-1e-6, 0.0, 1e-6])).tolist() == [0.0, 1.0, 1.0]


def test_set_sharpness_is_the_setter_and_writes_the_buffer_only_on_change():
    layer = ws.nn.SpikingBReLU(0.25)
    version = layer._sharpness._version
    layer.set_sharpness(0.25)  # unchanged: no write
    assert layer._sharpness._version == version
    layer.set_sharpness(0.5)
    assert layer.sharpness == 0.5 and layer.state_dict()["_sharpness"].item() == 0.5
    layer.sharpness = 1.0
    assert layer.sharpness == 1.0 and layer.state_dict()["_sharpness"].item() == 1.0
    with pytest.raises(ValueError, match="sharpness"):
        layer.set_sharpness(1.5)
    assert layer.sharpness == 1.0


def test_failed_load_keeps_buffer_and_host_copy_equal():
    layer = ws.nn.SpikingBReLU(0.3)
    with pytest.raises(RuntimeError, match="_sharpness"):
        layer.load_state_dict({"_sharpness": torch.tensor(1.5, dtype=torch.float64)})
    assert layer.sharpness == 0.3 and layer._sharpness.item() == 0.3
    layer.set_sharpness(0.3)
    assert layer.state_dict()["_sharpness"].item() == 0.3
