"""Readouts and nearest upsampling: the converted network equals the float64 torch model.

Small float64 models of the shapes issue 12's tasks use (an autoencoder with a real-valued
or a spiking output, a Q-network, an encoder-decoder segmenter with a 1x1-convolution
readout) are converted and run by the runtime in float64; real-valued readouts agree with
torch to 1e-9, spikes and per-pixel argmaxes exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import whetstone.runtime as rt
from whetstone.conversion import ConversionError, to_spiking
from whetstone.nn import SpikingBReLU
from whetstone.sharpening.allocation import set_model_sharpness


def _sharp64(model: nn.Sequential, seed: int = 0) -> nn.Sequential:
    """float64, random BatchNorm statistics, every sharpenable layer at 1, eval mode."""
    gen = torch.Generator().manual_seed(seed)
    model = model.double()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen, dtype=torch.float64) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=gen, dtype=torch.float64) + 0.2)
            m.weight.data.copy_(torch.randn(n, generator=gen, dtype=torch.float64))
            m.bias.data.copy_(torch.randn(n, generator=gen, dtype=torch.float64) * 0.5 + 0.5)
    set_model_sharpness(model, 1.0)
    return model.eval()


def autoencoder(binary_output: bool = False, unflatten: bool = True) -> nn.Sequential:
    """Flatten, 64 -> 32, BReLU, 32 -> 8 + BN (binary code), 8 -> 32, BReLU, 32 -> 64 readout
    (or a spiking output), Unflatten to (1, 8, 8). Input (N, 1, 8, 8)."""
    torch.manual_seed(0)
    layers: list[nn.Module] = [
        nn.Flatten(), nn.Linear(64, 32), SpikingBReLU(), nn.Linear(32, 8), nn.BatchNorm1d(8),
        SpikingBReLU(), nn.Linear(8, 32), SpikingBReLU(), nn.Linear(32, 64),
    ]
    if binary_output:
        layers.append(SpikingBReLU())
    if unflatten:
        layers.append(nn.Unflatten(1, (1, 8, 8)))
    model = nn.Sequential(*layers)
    for m in model:
        if isinstance(m, nn.Linear):
            m.weight.data.mul_(3.0)
    return _sharp64(model)


def policy() -> nn.Sequential:
    """4 -> 64, BReLU, 64 -> 64, BReLU, 64 -> 2 Q-values."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 64), SpikingBReLU(), nn.Linear(64, 64), SpikingBReLU(),
                          nn.Linear(64, 2))
    model[0].weight.data.mul_(2.0)
    return _sharp64(model)


def segmenter(classes: int = 11) -> nn.Sequential:
    """Conv/BN/BReLU, MaxPool (OR), Conv/BN/BReLU, nearest Upsample x2, Conv/BReLU, 1x1 Conv
    readout with ``classes`` channels. Input (N, 1, 8, 8), output (N, classes, 8, 8)."""
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), SpikingBReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), SpikingBReLU(),
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(8, 6, 3, padding=1), SpikingBReLU(),
        nn.Conv2d(6, classes, 1),
    )
    for m in model:
        if isinstance(m, nn.Conv2d):
            m.weight.data.mul_(2.0)
    return _sharp64(model)


def _spikes(model: nn.Sequential, x: torch.Tensor) -> tuple[np.ndarray, list[np.ndarray]]:
    """The model's output and the output of every SpikingBReLU (bool), in float64."""
    out: list[np.ndarray] = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: out.append(o.detach().numpy() != 0))
             for m in model.modules() if isinstance(m, SpikingBReLU)]
    with torch.no_grad():
        y = model(x).numpy()
    for h in hooks:
        h.remove()
    return y, out


def _check_spikes(torch_spikes: list[np.ndarray], ours: list[np.ndarray],
                  or_pools: tuple[int, ...] = ()) -> None:
    """Every SpikingBReLU's spikes equal the runtime's (skipping the OR-pool thresholds) and
    the test is not vacuous (neurons fire and stay silent)."""
    ours = [s for i, s in enumerate(ours) if i not in or_pools]
    assert len(ours) == len(torch_spikes)
    for a, b in zip(torch_spikes, ours, strict=True):
        np.testing.assert_array_equal(b, a)
    density = np.mean(np.concatenate([s.reshape(-1) for s in ours]))
    assert 0.05 < density < 0.95


@pytest.mark.parametrize("unflatten", [True, False])
def test_autoencoder_affine_readout_equals_torch(unflatten: bool) -> None:
    model = autoencoder(unflatten=unflatten)
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref, ref_spikes = _spikes(model, x)
    net = to_spiking(model)
    assert net.readout == "affine" and net.metadata["readout"] == "affine"
    assert net.readout_index == 7  # the last Affine (after Flatten, 3 Affine + 3 Threshold)
    assert isinstance(net.layers[-1], rt.Unflatten) == unflatten
    out, spikes = rt.run(net, x.numpy(), record=True, dtype=np.float64)
    assert out.shape == ref.shape == ((64, 1, 8, 8) if unflatten else (64, 64))
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-9)
    assert np.abs(ref).max() > 1.0  # real values, not spikes
    _check_spikes(ref_spikes, spikes)


def test_autoencoder_binary_output_equals_torch() -> None:
    model = autoencoder(binary_output=True)
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref, ref_spikes = _spikes(model, x)
    net = to_spiking(model)
    assert net.readout == "spikes" and net.metadata["readout"] == "spikes"
    out = rt.run(net, x.numpy(), dtype=np.float64)
    np.testing.assert_array_equal(out, ref)
    assert set(np.unique(out)) == {0.0, 1.0}
    _, spikes = rt.run(net, x.numpy(), record=True)
    _check_spikes(ref_spikes, spikes)
    with pytest.raises(ValueError, match="readout is 'spikes'.*use run"):
        rt.predict(net, x.numpy())


def test_policy_q_values_and_actions_equal_torch() -> None:
    model = policy()
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ref, ref_spikes = _spikes(model, x)
    net = to_spiking(model)
    assert net.readout == "affine" and net.num_classes is None
    q = rt.run(net, x.numpy(), dtype=np.float64)
    np.testing.assert_allclose(q, ref, rtol=0, atol=1e-9)
    actions = rt.predict(net, x.numpy())
    np.testing.assert_array_equal(actions, ref.argmax(axis=1))
    assert 0 < actions.mean() < 1  # both actions are chosen
    _, spikes = rt.run(net, x.numpy(), record=True)
    _check_spikes(ref_spikes, spikes)


def test_segmenter_per_pixel_scores_and_argmax_equal_torch() -> None:
    model = segmenter()
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ref, ref_spikes = _spikes(model, x)
    net = to_spiking(model)
    assert [layer.kind for layer in net.layers] == [
        "Conv2d", "Threshold", "SumPool2d", "Threshold", "Conv2d", "Threshold", "Upsample2d",
        "Conv2d", "Threshold", "Conv2d"]
    assert net.readout == "conv2d" and net.metadata["readout"] == "conv2d"
    scores = rt.run(net, x.numpy(), dtype=np.float64)
    assert scores.shape == (16, 11, 8, 8)
    np.testing.assert_allclose(scores, ref, rtol=0, atol=1e-9)
    pred = rt.predict(net, x.numpy())
    assert pred.shape == (16, 8, 8)
    np.testing.assert_array_equal(pred, ref.argmax(axis=1))
    assert len(np.unique(pred)) > 2  # several classes win somewhere
    _, spikes = rt.run(net, x.numpy(), record=True)
    _check_spikes(ref_spikes, spikes, or_pools=(1,))


def test_segmenter_float32_torch_same_argmax() -> None:
    """The float32 torch model (how models are trained) and the float64 runtime agree."""
    model = segmenter().float()
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = model(x).numpy()
    net = to_spiking(model)
    scores = rt.run(net, x.numpy())
    np.testing.assert_allclose(scores, ref, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(scores.argmax(1), ref.argmax(1))


# ---------------------------------------------------------------- upsampling exactness


@pytest.mark.parametrize("module", [
    nn.Upsample(scale_factor=2, mode="nearest"),
    nn.Upsample(scale_factor=(2, 3), mode="nearest"),
    nn.Upsample(scale_factor=3.0, mode="nearest-exact"),
    nn.UpsamplingNearest2d(scale_factor=2),
], ids=["x2", "x2x3", "nearest-exact-x3", "UpsamplingNearest2d"])
def test_upsampling_of_spikes_is_exact(module: nn.Module) -> None:
    """Spikes upsampled by torch and by the runtime are identical, bit for bit."""
    torch.manual_seed(6)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    conv.weight.data.mul_(4.0)
    conv.bias.data.fill_(0.3)
    model = _sharp64(nn.Sequential(conv, SpikingBReLU(), module))
    x = torch.rand(8, 2, 5, 7, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        ref = model(x).numpy()
    net = to_spiking(model)
    assert isinstance(net.layers[-1], rt.Upsample2d) and net.readout == "spikes"
    out = rt.run(net, x.numpy())
    assert out.shape == ref.shape
    np.testing.assert_array_equal(out, ref)
    assert 0.1 < ref.mean() < 0.9
    # the upsampled map is still spikes: an OR pool may follow it
    pooled = to_spiking(_sharp64(nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), SpikingBReLU(),
                                               module, nn.MaxPool2d(2))))
    assert pooled.layers[-1].kind == "Threshold"


@pytest.mark.parametrize("module, message", [
    (nn.Upsample(scale_factor=2, mode="bilinear"), "mode 'bilinear'"),
    (nn.Upsample(size=(16, 16), mode="nearest"), "size=.*without scale_factor"),
    (nn.Upsample(scale_factor=1.5, mode="nearest"), "scale_factor 1.5"),
    (nn.Unflatten(2, (2, 2)), "only Unflatten\\(dim=1"),
    (nn.Unflatten(1, (-1, 2)), "-1 size"),
])
def test_unsupported_upsampling_and_unflatten_refused(module: nn.Module, message: str) -> None:
    model = _sharp64(nn.Sequential(nn.Conv2d(1, 4, 3), SpikingBReLU(), module))
    with pytest.raises(ConversionError, match=f"module 2 \\({type(module).__name__}\\).*"
                                              f"{message}"):
        to_spiking(model)


def test_decode_is_a_readout() -> None:
    from whetstone.nn import SoftmaxDecode, key_generator

    model = _sharp64(nn.Sequential(nn.Linear(4, 12), SpikingBReLU(),
                                   SoftmaxDecode(key_generator(3, 12, seed=0))))
    net = to_spiking(model)
    assert net.readout == "decode" and net.metadata["readout"] == "decode"
    assert net.readout_index == 2 and net.num_classes == 3
