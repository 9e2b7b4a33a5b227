"""The activation formulas of method.md §1, pinned against values written out by hand."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import whetstone as ws
from whetstone.nn import functional as F

# (sharpness, x, expected) for y = clip((x - 0.5) / (1 - s + 0.001) + 0.5, 0, 1)
BRELU_CASES = [
    (0.0, 0.7, 0.6998001998001998),
    (0.0, -0.2, 0.0),
    (0.0, 1.3, 1.0),
    (0.5, 0.6, 0.6996007984031936),
    (0.5, 0.3, 0.10079840319361277),
    (0.9, 0.52, 0.6980198019801982),
    (0.9, 0.47, 0.20297029702970265),
    (0.999, 0.5004, 0.7),
]

# (sharpness, x, expected) for y = 1 / (1 + exp(-k x)), k = 4 ln(2 + sqrt 3) / (1 - s + 0.001)
SIGMOID_CASES = [
    (0.0, 0.3, 0.8290303494522111),
    (0.0, -1.0, 0.00515526058177206),
    (0.5, 0.2, 0.8911873211831424),
    (0.9, 0.05, 0.9313642825335428),
    (0.9, -3.0, 4.248354255291589e-18),
]


@pytest.mark.parametrize(("s", "x", "expected"), BRELU_CASES)
def test_brelu_values(s, x, expected):
    y = F.brelu(torch.tensor([x], dtype=torch.float64), s)
    assert y.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("s", "x", "expected"), SIGMOID_CASES)
def test_sigmoid_values(s, x, expected):
    y = F.sigmoid(torch.tensor([x], dtype=torch.float64), s)
    assert y.item() == pytest.approx(expected, rel=1e-9, abs=1e-20)


def test_sigmoid_gain_at_zero():
    assert F.sigmoid_gain(0.0) == pytest.approx(5.262569018680586, rel=1e-12)


def test_sigmoid_exponent_is_clipped():
    y = F.sigmoid(torch.tensor([-1e6, 1e6], dtype=torch.float64), 0.99)
    assert y[0].item() == pytest.approx(1 / (1 + math.exp(40)), rel=1e-12)
    assert y[1].item() == pytest.approx(1 / (1 + math.exp(-40)), rel=1e-12)


def test_steps_at_full_sharpness_tie_fires():
    x = torch.tensor([-1.0, 0.0, 0.4999999, 0.5, 0.5000001, 2.0])
    assert F.brelu(x, 1.0).tolist() == [0, 0, 0, 1, 1, 1]
    assert F.sigmoid(x, 1.0).tolist() == [0, 1, 1, 1, 1, 1]  # step at 0, not 0.5


def test_brelu_passes_through_half():
    for s in (0.0, 0.3, 0.7, 0.99):
        assert F.brelu(torch.tensor([0.5]), s).item() == pytest.approx(0.5)


def test_brelu_gradient_is_slope_inside_zero_outside():
    x = torch.tensor([0.2, 0.5, 0.55, 0.9], requires_grad=True)
    s = 0.8
    F.brelu(x, s).sum().backward()
    slope = 1 / (1 - s + 0.001)
    # inside the linear part only where |x - 0.5| < 0.5 / slope = 0.1005
    assert x.grad.tolist() == pytest.approx([0.0, slope, slope, 0.0])


@settings(max_examples=60, deadline=None)
@given(
    s=st.floats(0.0, 0.999),
    x=st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=20),
)
def test_brelu_matches_reference_formula(s, x):
    t = torch.tensor(x, dtype=torch.float64)
    reference = torch.clamp((t - 0.5) / (1 - s + 0.001) + 0.5, 0, 1)
    assert torch.allclose(F.brelu(t, s), reference, atol=1e-12)


@pytest.mark.parametrize("shape", [(7,), (4, 9), (2, 3, 5, 5)])
@pytest.mark.parametrize("cls", [ws.nn.SpikingBReLU, ws.nn.SpikingSigmoid])
def test_modules_any_shape_binary_at_one(cls, shape):
    layer = cls(sharpness=1.0)
    y = layer(torch.randn(shape))
    assert y.shape == shape
    assert set(y.unique().tolist()) <= {0.0, 1.0}


def test_brelu_gradient_exact_values():
    # s = 0.2: slope a = 1 / 0.801; y = hardtanh(b + a x), b = 0.5 - 0.5 a; the gradient is a
    # (the incoming 1 times alpha) where 0 < b + a x < 1, else 0
    a = F.brelu_slope(0.2)
    assert a == 1 / 0.801
    x = torch.tensor([0.05, 0.2, 0.5, 0.9, 0.95], dtype=torch.float64, requires_grad=True)
    F.brelu(x, 0.2).backward(torch.ones(5, dtype=torch.float64))
    assert x.grad.tolist() == [0.0, a, a, a, 0.0]
    x32 = torch.tensor([0.05, 0.5, 0.95], requires_grad=True)
    F.brelu(x32, 0.2).backward(torch.tensor([1.0, -2.0, 1.0]))
    a32 = torch.tensor(a, dtype=torch.float32).item()
    assert x32.grad.tolist() == [0.0, -2.0 * a32, 0.0]


def test_brelu_offset_is_per_dtype():
    """The cached offset tensor of one dtype is never used for another."""
    x = torch.tensor([0.3, 0.6], dtype=torch.float64)
    first = F.brelu(x.float(), 0.37)
    again = F.brelu(x, 0.37)
    slope = 1 / (1 - 0.37 + 0.001)
    assert again.dtype == torch.float64 and first.dtype == torch.float32
    assert again.tolist() == pytest.approx([(v - 0.5) * slope + 0.5 for v in (0.3, 0.6)],
                                           rel=1e-14)
