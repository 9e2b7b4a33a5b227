"""to_spiking on models that are not an nn.Sequential: torch.fx tracing, the function table,
BatchNorm folding in graphs, and the errors that name the node."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import whetstone.runtime as rt
from whetstone.conversion import (
    FUNCTION_CONVERTERS,
    ConversionError,
    Value,
    register_function_converter,
    to_spiking,
)
from whetstone.nn import SpikingBReLU
from whetstone.sharpening.allocation import set_model_sharpness


class Wrap(nn.Module):
    """A model whose forward is ``fn(self, x)`` (modules: conv 2->4 3x3 pad 1, bn, act,
    conv 4->4 1x1, act2, fc 4*6*6 -> 5)."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = SpikingBReLU()
        self.conv2 = nn.Conv2d(4, 4, 1)
        self.act2 = SpikingBReLU()
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self, x)


def _ready(model: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.bias.data.uniform_(0.2, 0.8)
    set_model_sharpness(model, 1.0)
    return model.eval().double()


def _x(n: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 2, 6, 6, generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64) * 2


def _same(model: nn.Module, x: torch.Tensor) -> rt.SpikingNetwork:
    net = to_spiking(model, x)
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_array_equal(rt.run(net, x.numpy()), want)
    return net


FLATTENS = {
    "torch.flatten": lambda h: torch.flatten(h, 1),
    "method flatten": lambda h: h.flatten(1),
    "view size(0)": lambda h: h.view(h.size(0), -1),
    "view shape[0]": lambda h: h.view(h.shape[0], -1),
    "view -1, D": lambda h: h.view(-1, 144),
    "reshape": lambda h: h.reshape(h.size(0), 144),
    "contiguous view": lambda h: h.contiguous().view(h.size(0), -1),
}


@pytest.mark.parametrize("form", sorted(FLATTENS))
def test_flatten_forms(form: str) -> None:
    flat = FLATTENS[form]
    net = _same(_ready(Wrap(lambda m, x: m.fc(flat(m.act(m.bn(m.conv(x))))))), _x())
    assert [layer.kind for layer in net.layers] == ["Conv2d", "Threshold", "Flatten", "Affine"]
    assert net.is_chain  # a traced model without merges is still a chain
    assert net.metadata["origin"][0] == "conv+bn"


def test_residual_sum_of_spikes_feeds_the_next_threshold() -> None:
    def forward(m, x):
        s = m.act(m.bn(m.conv(x)))
        return m.fc(torch.flatten(m.act2(m.conv2(s) + s), 1))

    net = _same(_ready(Wrap(forward)), _x())
    kinds = [layer.kind for layer in net.layers]
    assert kinds == ["Conv2d", "Threshold", "Conv2d", "Add", "Threshold", "Flatten", "Affine"]
    assert net.inputs[3] == (2, 1)


@pytest.mark.parametrize("op", ["+", "torch.add", "add method", "+="])
def test_every_spelling_of_a_sum(op: str) -> None:
    def forward(m, x):
        s = m.act(m.bn(m.conv(x)))
        c = m.conv2(s)
        if op == "+":
            h = c + s
        elif op == "torch.add":
            h = torch.add(c, s)
        elif op == "add method":
            h = c.add(s)
        else:
            c += s
            h = c
        return m.fc(torch.flatten(m.act2(h), 1))

    net = _same(_ready(Wrap(forward)), _x())
    assert [layer.kind for layer in net.layers].count("Add") == 1


def test_concat_and_global_average_pooling_forms() -> None:
    def forward(m, x):
        s = m.act(m.bn(m.conv(x)))
        h = torch.cat([s, m.act2(m.conv2(s))], dim=1)  # (N, 8, 6, 6) spikes
        a = F.adaptive_avg_pool2d(h, 1).flatten(1)  # 36: not a power of two
        b = h.mean((2, 3))
        c = torch.mean(h, dim=(-1, -2), keepdim=True).view(h.size(0), -1)
        return torch.cat([a, b, c], 1)

    model = _ready(Wrap(forward))
    x = _x()
    net = to_spiking(model, x)
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("Concat") == 2 and kinds.count("SumPool2d") == 3
    assert net.readout == "concat"
    with torch.no_grad():
        want = model(x).numpy()
    got = rt.run(net, x.numpy())
    # torch divides each sum by 36, and so does the runtime (SumPool2d.divisor): exact
    np.testing.assert_array_equal(got, want)
    assert net.layers[kinds.index("SumPool2d")].kernel == (6, 6)


def test_adaptive_avg_pool_module_with_a_power_of_two_area_is_exact() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.act = SpikingBReLU()
            self.pool = nn.AdaptiveAvgPool2d((2, 1))

        def forward(self, x):
            return torch.flatten(self.pool(self.act(x)), 1)

    model = _ready(M())
    x = torch.rand(16, 3, 8, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net = _same(model, x)
    assert net.layers[1].kernel == (4, 4) and net.layers[1].scale == 1 / 16
    seq = nn.Sequential(SpikingBReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    set_model_sharpness(seq, 1.0)
    np.testing.assert_array_equal(rt.run(to_spiking(seq, x), x.numpy()),
                                  seq(x).detach().numpy())
    with pytest.raises(ConversionError, match="needs the input shape; pass example_input"):
        to_spiking(seq)
    with pytest.raises(ConversionError, match=r"output_size \(3, 1\) does not divide"):
        to_spiking(nn.Sequential(nn.AdaptiveAvgPool2d((3, 1))), x)


def test_dead_branches_are_dropped() -> None:
    def forward(m, x):
        s = m.act(m.bn(m.conv(x)))
        m.act2(m.conv2(s))  # computed, never used
        return m.fc(s.flatten(1))

    net = _same(_ready(Wrap(forward)), _x())
    assert [layer.kind for layer in net.layers] == ["Conv2d", "Threshold", "Flatten", "Affine"]
    assert net.metadata["origin"] == ["conv+bn", "act", "flatten", "fc"]


def test_batchnorm_is_not_folded_into_a_shared_output() -> None:
    def forward(m, x):
        c = m.conv(x)
        return m.act(m.bn(c)) + m.act2(c)

    with pytest.raises(ConversionError, match=r"module bn \(BatchNorm2d\): the output of conv "
                                              "is also read elsewhere"):
        to_spiking(_ready(Wrap(forward)), _x())


ERRORS = {
    "F.relu": (lambda m, x: F.relu(m.conv(x)),
               r"node 'relu' \(call_function relu\) is not supported.*not sharpenable: use a "
               r"module"),
    "clamp method": (lambda m, x: m.conv(x).clamp(0, 1), r"call_method clamp.*use a module"),
    "constant": (lambda m, x: m.conv(x) + 1.0, r"node 'add' .*only the sum of two traced"),
    "broadcast": (lambda m, x: m.conv(x) + m.conv(x)[:, :1],
                  r"node 'getitem' .*indexing Tensor|slicing"),
    "cat dim 0": (lambda m, x: torch.cat([m.conv(x), m.conv(x)]),
                  r"node 'cat' .*only dim=1"),
    "flatten 0": (lambda m, x: torch.flatten(m.conv(x)), r"flatten\(0, -1\)"),
    "view": (lambda m, x: m.conv(x).view(-1, 4, 36), r"is not a flatten"),
    "module": (lambda m, x: nn.functional.dropout(x), "call_function dropout"),
    "two outputs": (lambda m, x: (m.conv(x), m.conv(x)), "must return one tensor"),
    "control flow": (lambda m, x: m.conv(x) if x.sum() > 0 else x, "torch.fx cannot trace"),
    "param": (lambda m, x: m.conv(x) * m.conv.weight.sum(), r"parameter or buffer"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_unsupported_nodes_are_named(case: str) -> None:
    fn, match = ERRORS[case]
    with pytest.raises(ConversionError, match=match):
        to_spiking(_ready(Wrap(fn)), _x())


def test_unconvertible_modules_and_missing_example() -> None:
    model = _ready(Wrap(lambda m, x: m.relu(m.conv(x))))
    model.relu = nn.ReLU()
    with pytest.raises(ConversionError, match=r"module relu \(ReLU\): module type ReLU is not "
                                              "supported"):
        to_spiking(model, _x())
    with pytest.raises(ConversionError, match="needs example_input to convert Wrap"):
        to_spiking(model)
    train = _ready(Wrap(lambda m, x: m.act(m.bn(m.conv(x))))).train()
    with pytest.raises(ConversionError, match=r"module bn \(BatchNorm2d\): BatchNorm in "
                                              "training mode"):
        to_spiking(train, _x())
    assert train.bn.num_batches_tracked.item() == 0  # the shape pass did not run it


def test_users_register_function_converters() -> None:
    def forward(m, x):
        return torch.negative(m.act(m.conv(x)))

    model = _ready(Wrap(forward))
    with pytest.raises(ConversionError, match=r"call_function negative\) is not supported "
                                              r"by to_spiking. \(register_function_converter"):
        to_spiking(model, _x())

    @register_function_converter(torch.negative)
    def negative(node, args, kwargs, state, name):
        value = args[0]
        index = state.emit(rt.Conv2d(-np.eye(4)[:, :, None, None], np.zeros(4)), name,
                           binary=False, sources=(value.index,))
        return Value(index, False, value.shape)

    try:
        net = _same(model, _x())
        assert net.metadata["origin"][-1] == "negative"
    finally:
        del FUNCTION_CONVERTERS[torch.negative]


def test_a_sequential_of_residual_blocks_is_traced_given_an_example() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)
            self.act = SpikingBReLU()

        def forward(self, x):
            return self.act(self.conv(x) + x)

    model = _ready(nn.Sequential(SpikingBReLU(), Block(), Block(), nn.Flatten()))
    x = _x()
    net = _same(model, x)
    assert [layer.kind for layer in net.layers].count("Add") == 2
    assert net.metadata["origin"][:3] == ["0", "1.conv", "add"]
    with pytest.raises(ConversionError, match=r"module 1 \(Block\): module type Block is not "
                                              "supported.*when example_input is given"):
        to_spiking(model)
