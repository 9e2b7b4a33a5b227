"""The straight-through hot path: exact step forward, boxcar gradient pinned bit for bit.

The boxcar gradient is ``1[|x - theta| <= width / 2] / width`` with ``x - theta`` rounded to
the dtype of ``x``; :func:`whetstone.nn.surrogate.boxcar_spike` gets it from native ops with
open edges found once per dtype (:func:`whetstone.nn.surrogate.boxcar_window`). These tests
pin hand-computed values, points exactly on the window edges and on the threshold included,
and compare the hot path with the reference formula :meth:`StraightThrough.grad`.
"""

import math

import pytest
import torch

import whetstone as ws
from whetstone.nn import functional as F
from whetstone.nn.surrogate import StraightThrough, boxcar_window, spike


def _spike_grad(x, grad, threshold=0.5, width=1.0):
    """Forward and input gradient of ``spike`` for incoming gradient ``grad``."""
    leaf = x.clone().requires_grad_()
    y = spike(leaf, threshold, StraightThrough(width))
    y.backward(grad)
    return y.detach(), leaf.grad


def test_width_one_float32_values_written_out():
    # float32, theta 0.5: x - 0.5 is exact on [0, 1]; below 0 it rounds, and -2**-25 - 0.5
    # is a tie that rounds to -0.5 (even), so the lower edge of the window is x = -2**-25.
    x = torch.tensor([-0.2, -(2**-25 + 2**-48), -(2**-25), 0.0, 0.4999999, 0.5, 0.75, 1.0,
                      1 + 2**-23, 1.2])
    grad = torch.tensor([1.5, -2.0, 3.0, -4.0, 5.0, 6.0, -7.0, 8.0, 9.0, 10.0])
    y, g = _spike_grad(x, grad)
    assert y.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]  # ties fire: 1[x >= 0.5]
    #      outside, just outside, lower edge, |x-.5| = .5, inside, threshold, inside,
    #      upper edge, just outside, outside
    assert g.tolist() == [0.0, 0.0, 3.0, -4.0, 5.0, 6.0, -7.0, 8.0, 0.0, 0.0]


def test_width_one_float64_edges():
    # float64: the tie is at -2**-54 (half an ulp of 0.5); 1 + 2**-52 is the next double above 1
    x = torch.tensor([-(2**-54 + 2**-106), -(2**-54), 0.0, 0.5, 1.0, 1 + 2**-52],
                     dtype=torch.float64)
    y, g = _spike_grad(x, torch.full_like(x, 2.5))
    assert y.tolist() == [0, 0, 0, 1, 1, 1]
    assert g.tolist() == [0.0, 2.5, 2.5, 2.5, 2.5, 0.0]


def test_narrow_window_scales_and_keeps_both_edges():
    # width 0.5: gradient 1 / 0.5 = 2 where |x - 0.5| <= 0.25; x - 0.5 is exact from 0.25 up,
    # and 0.25 - 2**-26 - 0.5 ties to -0.25, so that point is inside too
    x = torch.tensor([0.25 - 2**-25, 0.25 - 2**-26, 0.25, 0.5, 0.75, 0.75 + 2**-24])
    grad = torch.tensor([1.0, 1.0, 1.0, 1.0, -1.5, 1.0])
    y, g = _spike_grad(x, grad, width=0.5)
    assert y.tolist() == [0, 0, 0, 1, 1, 1]
    assert g.tolist() == [0.0, 2.0, 2.0, 2.0, -3.0, 0.0]


def test_sigmoid_threshold_zero_window():
    layer = ws.nn.SpikingSigmoid(1.0, surrogate=StraightThrough())
    below = -0.5 - 2**-24  # the float32 number just below -0.5
    x = torch.tensor([below, -0.5, -1e-30, 0.0, 0.5, 0.5 + 2**-24], requires_grad=True)
    y = layer(x)
    assert y.tolist() == [0, 0, 0, 1, 1, 1]
    y.backward(torch.ones(6))
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_window_edges_pinned():
    lo, hi, scale = boxcar_window(0.5, 1.0, torch.float32)
    assert (lo, hi, scale) == (-(2**-25 + 2**-48), 1 + 2**-23, 1.0)
    lo, hi, scale = boxcar_window(0.5, 0.5, torch.float32)
    assert (lo, hi, scale) == (0.25 - 2**-25, 0.75 + 2**-24, 2.0)
    assert boxcar_window(0.0, 1.0, torch.float64) == (-0.5 - 2**-53, 0.5 + 2**-53, 1.0)


def test_gradient_outside_the_window_is_positive_zero():
    """The one bit that differs from the old saved-slope product (``grad * 0`` gave -0)."""
    _, g = _spike_grad(torch.tensor([-3.0, 3.0]), torch.tensor([-1.0, -1.0]))
    assert g.tolist() == [0.0, 0.0]
    assert not torch.signbit(g).any()


def _edge_neighbourhood(dtype, threshold, width, steps=24):
    """Every number of ``dtype`` within ``steps`` ulps of the nominal and the exact edges."""
    lo, hi, _ = boxcar_window(threshold, width, dtype)
    points = []
    for centre in (lo, hi, threshold, threshold - width / 2, threshold + width / 2):
        for direction in (-math.inf, math.inf):
            t = torch.tensor(centre, dtype=dtype)
            for _ in range(steps):
                points.append(t)
                t = torch.nextafter(t, torch.tensor(direction, dtype=dtype))
    return torch.stack(points)


@pytest.mark.parametrize("width", [1.0, 0.5, 0.3, 2.0])
@pytest.mark.parametrize("threshold", [0.5, 0.0])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_hot_path_equals_reference_formula(dtype, threshold, width):
    """Forward ``1[x >= theta]`` and gradient ``grad * StraightThrough.grad(x - theta)``,
    value for value: every 16-bit number, and the edge neighbourhoods plus a random sample
    for float32 and float64."""
    if dtype in (torch.float16, torch.bfloat16):
        x = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype)
    else:
        gen = torch.Generator().manual_seed(0)
        x = torch.cat([_edge_neighbourhood(dtype, threshold, width),
                       torch.randn(20_000, generator=gen, dtype=dtype) + threshold,
                       torch.tensor([0.0, -0.0, math.inf, -math.inf], dtype=dtype)])
    x = x[~torch.isnan(x)]
    grad = torch.linspace(-3, 3, x.numel(), dtype=dtype)
    y, g = _spike_grad(x, grad, threshold, width)
    assert torch.equal(y, (x >= threshold).to(dtype))
    expected = grad * StraightThrough(width).grad(x - threshold)
    assert torch.equal(g, expected)  # -0.0 == 0.0: zero signs may differ (see above)


def test_no_gradient_needed_gives_the_plain_step():
    x = torch.tensor([0.2, 0.5, 0.9])
    y = spike(x, 0.5, StraightThrough())
    assert y.tolist() == [0, 1, 1] and not y.requires_grad
    with torch.no_grad():
        y = spike(x.clone().requires_grad_(), 0.5, StraightThrough())
    assert not y.requires_grad


def test_hot_path_keeps_channels_last_and_any_shape():
    x = torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = ws.nn.SpikingBReLU(1.0, surrogate=StraightThrough())(x)
    assert y.shape == x.shape and y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y, (x.detach() >= 0.5).float())
    y.sum().backward()
    assert torch.equal(x.grad, ((x.detach() - 0.5).abs() <= 0.5).float())


@pytest.mark.parametrize("width", [0.0, -1.0, math.inf, math.nan])
def test_width_must_be_finite_and_positive(width):
    with pytest.raises(ValueError, match="width"):
        StraightThrough(width)


def test_heaviside_is_a_non_differentiable_step_in_the_input_dtype():
    x = torch.tensor([-1.0, 0.5, math.nan, 0.7], dtype=torch.float64, requires_grad=True)
    y = F.heaviside(x, 0.5)
    assert y.dtype == torch.float64 and not y.requires_grad
    assert y.tolist() == [0.0, 1.0, 0.0, 1.0]  # NaN never fires


def test_surrogate_with_only_a_grad_takes_the_generic_path():
    """A user's strategy needs only ``grad(centred)``; its derivative reaches the input."""

    class Triangle:
        def grad(self, centred):
            return (1 - centred.abs()).clamp_(min=0)

    x = torch.tensor([0.0, 0.25, 0.5, 1.0, 2.0], requires_grad=True)
    y = spike(x, 0.5, Triangle())
    assert torch.equal(y.detach(), torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]))
    y.sum().backward()
    assert x.grad.tolist() == [0.5, 0.75, 1.0, 0.5, 0.0]
