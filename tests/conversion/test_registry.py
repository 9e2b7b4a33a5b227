"""The conversion table: users register converters for their own module types."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import whetstone.runtime as rt
from whetstone.conversion import (
    CONVERTERS,
    ConversionError,
    ConversionState,
    converter_for,
    register_converter,
    to_spiking,
)
from whetstone.nn import SoftmaxDecode, SpikingBReLU, key_generator


class Shift(nn.Module):
    """``x + c``: a user's module whetstone does not know."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c


class MyBReLU(SpikingBReLU):
    """A subclass of a registered type: converts like its base."""


@pytest.fixture
def shift_registered():
    def convert_shift(m: Shift, state: ConversionState, name: str) -> None:
        prev = state.layers[-1]
        if not isinstance(prev, rt.Affine):
            raise ConversionError(f"{state.where(m, name)}: must follow a Linear")
        state.layers[-1] = rt.Affine(prev.weight, prev.bias + m.c)
        state.origin[-1] += f"+{name}"

    register_converter(Shift)(convert_shift)
    yield
    del CONVERTERS[Shift]


def _model(*middle: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 20), *middle,
                          SoftmaxDecode(key_generator(4, 20, overlapping=False)))
    for m in model:
        if isinstance(m, SpikingBReLU):
            m.sharpness = 1.0
    return model.eval()


def test_unregistered_type_is_refused_naming_it_and_the_remedy():
    with pytest.raises(ConversionError, match=r"module 1 \(Shift\).*register_converter"):
        to_spiking(_model(Shift(0.25), SpikingBReLU()))


def test_registered_type_converts_exactly(shift_registered: None):
    model = _model(Shift(0.25), SpikingBReLU())
    net = to_spiking(model)
    assert [layer.kind for layer in net.layers] == ["Affine", "Threshold", "Decode"]
    assert net.metadata["origin"][0] == "0+1"
    x = torch.randn(64, 12, dtype=torch.float64)
    with torch.no_grad():
        expected = model.double()(x).numpy()
    np.testing.assert_array_equal(rt.run(net, x.numpy(), dtype=np.float64), expected)


def test_a_subclass_converts_like_its_registered_base():
    assert converter_for(MyBReLU()) is CONVERTERS[SpikingBReLU.__mro__[1]]
    net = to_spiking(_model(MyBReLU()))
    assert isinstance(net.layers[1], rt.Threshold) and net.layers[1].theta == 0.5


def test_register_converter_takes_module_types_only():
    with pytest.raises(TypeError, match="nn.Module subclasses"):
        register_converter(int)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        register_converter()
