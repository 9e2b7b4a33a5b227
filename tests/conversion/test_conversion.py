"""to_spiking: the converted network computes what the fully sharpened torch model computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import whetstone.runtime as rt
from whetstone.conversion import conv_padding, to_spiking
from whetstone.nn import SoftmaxDecode, SpikingBReLU, SpikingSigmoid, key_generator
from whetstone.sharpening import sharpenable_layers
from whetstone.sharpening.allocation import set_model_sharpness

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")


def _randomize_batchnorm(model: nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.2)
            if m.affine:
                m.weight.data.copy_(torch.randn(n, generator=gen))
                m.bias.data.copy_(torch.randn(n, generator=gen) * 0.5 + 0.5)


def _sharp(model: nn.Sequential, seed: int = 0) -> nn.Sequential:
    _randomize_batchnorm(model, torch.Generator().manual_seed(seed))
    set_model_sharpness(model, 1.0)
    return model.eval()


def every_layer_model() -> nn.Sequential:
    """Every supported layer type, nested Sequentials included. Input (N, 3, 12, 12)."""
    torch.manual_seed(0)
    return _sharp(nn.Sequential(
        nn.Sequential(
            nn.Conv2d(3, 8, 3, padding="same"), nn.BatchNorm2d(8), SpikingBReLU(),
            nn.Conv2d(8, 8, 4, padding="same", bias=False, groups=2), nn.BatchNorm2d(8),
            SpikingBReLU(), nn.MaxPool2d(2),  # OR
        ),
        nn.Dropout2d(0.3),
        nn.Conv2d(8, 6, (3, 2), stride=(1, 2), padding=(1, 0), dilation=(2, 1)),
        SpikingSigmoid(), nn.AvgPool2d(2),  # real-valued, exact
        nn.Conv2d(6, 6, 1), SpikingBReLU(),
        nn.Flatten(),
        nn.Linear(6 * 2 * 1, 20, bias=False), nn.BatchNorm1d(20), SpikingBReLU(), nn.Dropout(0.1),
        nn.Identity(),
        nn.Linear(20, 12), SpikingSigmoid(),
        SoftmaxDecode(key_generator(4, 12, seed=0)),
    ))


def torch_spikes(model: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits and the output of every sharpenable layer, as bool arrays."""
    outs: list[np.ndarray] = []
    hooks = [layer.register_forward_hook(lambda _m, _i, o: outs.append(o.numpy().astype(bool)))
             for layer in sharpenable_layers(model)]
    try:
        with torch.no_grad():
            logits = model(x).numpy()
    finally:
        for h in hooks:
            h.remove()
    return logits, outs


def activation_spikes(net: rt.SpikingNetwork, spikes: list[np.ndarray]) -> list[np.ndarray]:
    """The runtime's spikes of the activations only (not of the OR-pool thresholds)."""
    thresholds = [o for o, lay in zip(net.metadata["origin"], net.layers, strict=True)
                  if isinstance(lay, rt.Threshold)]
    pools = {o for o, lay in zip(net.metadata["origin"], net.layers, strict=True)
             if isinstance(lay, rt.SumPool2d)}
    return [s for o, s in zip(thresholds, spikes, strict=True) if o not in pools]


def assert_same(model: nn.Sequential, x: torch.Tensor) -> rt.SpikingNetwork:
    net = to_spiking(model)
    t_logits, t_spikes = torch_spikes(model, x)
    logits, spikes = rt.run(net, x.numpy(), record=True)
    r_spikes = activation_spikes(net, spikes)
    assert len(r_spikes) == len(t_spikes)
    for i, (a, b) in enumerate(zip(t_spikes, r_spikes, strict=True)):
        assert a.shape == b.shape, i
        assert np.array_equal(a, b), f"activation {i}: {(a != b).sum()} spikes differ"
    np.testing.assert_array_equal(logits, t_logits)
    np.testing.assert_array_equal(rt.predict(net, x.numpy()), t_logits.argmax(1))
    return net


# --------------------------------------------------------------------------- equality


def test_every_supported_layer_matches_torch():
    model = every_layer_model()
    x = torch.rand(64, 3, 12, 12, generator=torch.Generator().manual_seed(1)) * 2 - 0.5
    net = assert_same(model, x)
    kinds = [lay.kind for lay in net.layers]
    assert kinds == ["Conv2d", "Threshold", "Conv2d", "Threshold", "SumPool2d", "Threshold",
                     "Conv2d", "Threshold", "SumPool2d", "Conv2d", "Threshold", "Flatten",
                     "Affine", "Threshold", "Affine", "Threshold", "Decode"]
    assert net.metadata["origin"][:3] == ["0.0+0.1", "0.2", "0.3+0.4"]
    assert net.metadata["threshold_convention"] == ">="
    pool = net.layers[8]
    assert isinstance(pool, rt.SumPool2d) and pool.scale == 0.25


def test_small_cnn_matches_torch():
    torch.manual_seed(3)
    model = _sharp(nn.Sequential(
        nn.Conv2d(1, 6, 5, padding="same", bias=False), nn.BatchNorm2d(6), SpikingBReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(6 * 7 * 7, 30), nn.BatchNorm1d(30), SpikingBReLU(),
        nn.Linear(30, 20), SpikingBReLU(),
        SoftmaxDecode(key_generator(10, 20, overlapping=False, seed=1)),
    ), seed=3)
    x = torch.rand(200, 1, 14, 14, generator=torch.Generator().manual_seed(4))
    assert_same(model, x)


def test_conv_padding_resolution_matches_torch():
    for k, d in [(3, 1), (4, 1), (4, 2), (2, 3)]:
        conv = nn.Conv2d(1, 1, (k, 3), padding="same", dilation=(d, 1))
        top, bottom, left, right = conv_padding(conv)
        assert top + bottom == d * (k - 1) and top == d * (k - 1) // 2
        assert (left, right) == (1, 1)
        x = torch.randn(2, 1, 9, 7)
        net = rt.SpikingNetwork([rt.Conv2d(conv.weight.detach().numpy(),
                                           conv.bias.detach().numpy(),
                                           padding=conv_padding(conv), dilation=(d, 1))])
        with torch.no_grad():
            np.testing.assert_allclose(rt.run(net, x.numpy()), conv(x).numpy(), atol=1e-5)
    assert conv_padding(nn.Conv2d(1, 1, 3, padding="valid")) == (0, 0, 0, 0)
    assert conv_padding(nn.Conv2d(1, 1, 3, padding=(2, 1))) == (2, 2, 1, 1)


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_batchnorm_folding_is_exact(kind: str):
    """Folded pre-activations equal BN(layer(x)) (float64 torch: to 1e-12; float32: 1e-5)."""
    torch.manual_seed(5)
    if kind == "linear":
        layer, bn, x = nn.Linear(10, 7), nn.BatchNorm1d(7, eps=1e-3), torch.randn(50, 10)
    else:
        layer, bn = nn.Conv2d(3, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5, eps=0.1)
        x = torch.randn(8, 3, 6, 6)
    model = _sharp(nn.Sequential(layer, bn, SpikingBReLU()), seed=6)
    net = to_spiking(model)
    pre = rt.SpikingNetwork(net.layers[:1])  # the folded layer alone: its pre-activations
    folded = rt.run(pre, x.numpy())
    with torch.no_grad():
        reference64 = model[:2].double()(x.double()).numpy()
        model.float()
        reference32 = model[:2](x).numpy()
    np.testing.assert_allclose(folded, reference64, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(folded, reference32, rtol=1e-5, atol=1e-5)
    # the formula, with the BatchNorm's own eps
    s = (bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)).detach().numpy()
    w = layer.weight.detach().double().numpy()
    np.testing.assert_allclose(net.layers[0].weight, w * s.reshape((-1,) + (1,) * (w.ndim - 1)),
                               rtol=1e-15)


def test_tie_at_threshold_fires_in_both():
    """A neuron whose input is exactly its threshold fires in torch and in the runtime."""
    lin1, lin2 = nn.Linear(2, 2), nn.Linear(2, 4)
    with torch.no_grad():
        lin1.weight.zero_()
        lin1.bias.copy_(torch.tensor([0.5, np.nextafter(np.float32(0.5), np.float32(0))]))
        lin2.weight.zero_()
        lin2.bias.copy_(torch.tensor([0.0, -1e-30, 0.0, 1.0]))
    key = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 1]])
    model = _sharp(nn.Sequential(lin1, SpikingBReLU(), lin2, SpikingSigmoid(),
                                 SoftmaxDecode(key)))
    x = torch.zeros(3, 2)
    net = assert_same(model, x)
    _, spikes = rt.run(net, x.numpy(), record=True)
    np.testing.assert_array_equal(spikes[0][0], [True, False])
    np.testing.assert_array_equal(spikes[1][0], [True, False, True, True])


# ------------------------------------------------------------------------------ refusals


def test_refuses_a_model_that_is_not_fully_sharp():
    model = every_layer_model()
    layers = sharpenable_layers(model)
    layers[2].sharpness = 0.25
    layers[4].sharpness = 0.0
    with pytest.raises(ValueError, match=r"not fully sharpened") as info:
        to_spiking(model)
    msg = str(info.value)
    assert "module 3 (SpikingSigmoid) at sharpness 0.25" in msg
    assert "module 10 (SpikingBReLU) at sharpness 0." in msg  # the 5th, index 10 of the model
    assert "module 0.2 (SpikingBReLU)" not in msg
    assert "force=True" in msg
    with pytest.warns(UserWarning, match="not fully sharpened"):
        net = to_spiking(model, force=True)
    assert net.metadata["forced"] is True
    assert net.metadata["sharpness"][2] == 0.25
    set_model_sharpness(model, 1.0)
    x = torch.rand(8, 3, 12, 12)
    with torch.no_grad():  # the forced network is the model at sharpness 1
        np.testing.assert_array_equal(rt.run(net, x.numpy()), model(x).numpy())


@pytest.mark.parametrize(
    "modules,match",
    [
        ([nn.Linear(4, 4), nn.ReLU()], r"module 1 \(ReLU\).*not supported"),
        ([nn.Sequential(nn.Linear(4, 4), nn.Tanh())], r"module 0\.1 \(Tanh\)"),
        ([nn.Linear(4, 4), SpikingBReLU(), nn.BatchNorm1d(4)],
         r"module 2 \(BatchNorm1d\).*follows"),
        ([nn.BatchNorm1d(4)], r"must directly follow a Linear"),
        ([nn.Conv2d(1, 2, 3), nn.BatchNorm1d(2)], r"must directly follow a Linear"),
        ([nn.Linear(4, 3), nn.BatchNorm1d(4)], r"4 features.*3 outputs"),
        ([nn.Conv2d(1, 2, 3), nn.MaxPool2d(2)], r"max-pooling of real values"),
        ([nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")], r"padding_mode"),
        ([nn.Conv2d(1, 2, 3), SpikingBReLU(), nn.MaxPool2d(2, ceil_mode=True)], "ceil_mode"),
        ([nn.Flatten(0)], r"Flatten\(start_dim=1"),
    ],
)
def test_unsupported_or_misplaced_modules(modules: list[nn.Module], match: str):
    model = nn.Sequential(*modules).eval()
    set_model_sharpness(model, 1.0)
    with pytest.raises(ValueError, match=match):
        to_spiking(model)


def test_batchnorm_must_be_in_eval_mode_and_model_sequential():
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), SpikingBReLU())
    set_model_sharpness(model, 1.0)
    with pytest.raises(ValueError, match=r"training mode.*eval\(\)"):
        to_spiking(model.train())
    to_spiking(model.eval())

    class Net(nn.Module):
        def forward(self, x):  # pragma: no cover
            return x

    with pytest.raises(ValueError, match="nn.Sequential"):
        to_spiking(Net())


# ------------------------------------------------------------------------------ real data


@pytest.mark.slow
def test_trained_mnist_dense_predictions_equal(tmp_path: Path, tiny_dense_run: Path):
    """A quickly trained, fully sharpened mnist-dense: same class for every test image, also
    after a save / load round trip."""
    from whetstone.runs import load_run, load_split

    model = load_run(tiny_dense_run).model
    test = load_split("mnist", "test", limit=500)
    with torch.no_grad():
        expected = model(test.x).argmax(1).numpy()
    net = to_spiking(model)
    net.save(tmp_path / "net.npz")
    net = rt.SpikingNetwork.load(tmp_path / "net.npz")
    got = rt.predict(net, test.x.numpy())
    np.testing.assert_array_equal(got, expected)
    assert (got == test.y.numpy()).mean() > 0.5  # it learned something
    t_logits, t_spikes = torch_spikes(model, test.x)
    logits, spikes = rt.run(net, test.x.numpy(), record=True)
    np.testing.assert_array_equal(logits, t_logits)


def test_example_input_records_the_input_shape(tmp_path: Path):
    """``to_spiking(model, x)`` records x's batch-free shape; it survives save / load, and a
    CNN's NIR export then needs no shape from the user."""
    torch.manual_seed(5)
    model = _sharp(nn.Sequential(
        nn.Conv2d(1, 4, 3), SpikingBReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 20),
        SpikingBReLU(), SoftmaxDecode(key_generator(10, 20, overlapping=False, seed=1))))
    x = torch.rand(3, 1, 8, 8)
    assert to_spiking(model).input_shape is None
    net = to_spiking(model, x)
    assert net.input_shape == (1, 8, 8)
    assert to_spiking(model, example_input=x.numpy()).input_shape == (1, 8, 8)
    net.save(tmp_path / "net.npz")
    assert rt.SpikingNetwork.load(tmp_path / "net.npz").input_shape == (1, 8, 8)
    pytest.importorskip("nir", reason="the 'nir' package (extra 'nir') is not installed")
    from whetstone.export import to_graph

    graph = to_graph(net)
    assert tuple(graph.nodes["input"].input_type["input"]) == (1, 8, 8)


@pytest.mark.parametrize("example, match", [
    (torch.rand(2, 1, 9, 9), r"shape \(2, 1, 9, 9\) does not fit"),
    (torch.rand(5), r"shape \(N, \.\.\.\)"),
    (True, "must be a batch"),
])
def test_an_example_the_network_cannot_take_is_refused(example: object, match: str):
    model = _sharp(nn.Sequential(nn.Flatten(), nn.Linear(64, 20), SpikingBReLU(),
                                 SoftmaxDecode(key_generator(10, 20, overlapping=False))))
    with pytest.raises(ValueError, match=match):
        to_spiking(model, example)


def test_a_file_with_a_malformed_input_shape_is_refused(tmp_path: Path):
    net = rt.SpikingNetwork([rt.Threshold(0.5)], {"input_shape": [3, -1]})
    net.save(tmp_path / "net.npz")
    with pytest.raises(rt.NetworkFileError, match="input_shape"):
        rt.SpikingNetwork.load(tmp_path / "net.npz")
