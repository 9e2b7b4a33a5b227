"""whetstone.sharpen on a ReLU network trained on real MNIST: at sharpness 0 the calibrated
network stays close to the original, every layer straddles the 0.5 threshold, and the
sharpened result trains with a sharpener and converts to an exact spiking network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import whetstone as ws
from whetstone.data import ArrayLoader
from whetstone.nn import SpikingBReLU


@pytest.fixture(scope="module")
def mnist(mnist_ready: str):
    from whetstone.runs import load_split

    train = load_split("mnist", "train", limit=12000)
    test = load_split("mnist", "test", limit=2000)
    return train, test


@pytest.fixture(scope="module")
def relu_net(mnist) -> nn.Sequential:
    """784-128-64-10 with plain ReLU, one quick epoch of Adam on 12,000 images."""
    train, _ = mnist
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64),
                          nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for x, y in ArrayLoader(train.x, train.y, 128, shuffle=True, seed=0):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def _calibration(train, n: int = 4000) -> ArrayLoader:
    return ArrayLoader(train.x[:n], train.y[:n], 500)


def test_calibrated_network_at_sharpness_0_agrees_with_the_relu_network(mnist, relu_net):
    train, test = mnist
    sharp = ws.sharpen(relu_net, test.x[:8], calibration=_calibration(train))
    with torch.no_grad():
        ours, theirs = sharp(test.x), relu_net(test.x)
    agreement = float((ours.argmax(1) == theirs.argmax(1)).float().mean())
    relative = float((ours - theirs).norm() / theirs.norm())
    assert float((theirs.argmax(1) == test.y).float().mean()) > 0.85  # the ReLU net learned
    assert agreement >= 0.98, agreement
    assert relative < 0.05, relative
    # the original network is unchanged
    assert isinstance(relu_net[2], nn.ReLU)


def test_every_calibrated_layer_straddles_the_threshold(mnist, relu_net):
    train, test = mnist
    sharp = ws.sharpen(relu_net, test.x[:8], calibration=_calibration(train))
    inputs: list[torch.Tensor] = []
    layers = [m for m in sharp.modules() if isinstance(m, SpikingBReLU)]
    hooks = [m.register_forward_pre_hook(lambda _m, a: inputs.append(a[0])) for m in layers]
    with torch.no_grad():
        sharp(test.x)
    for h in hooks:
        h.remove()
    assert len(inputs) == 2
    for z in inputs:
        above = float((z >= 0.5).float().mean())
        assert 0.01 < above < 0.99, above
        assert float((z > 1.0).float().mean()) < 0.01  # the top 0.1 % (about) is clipped
    # without calibration the raw pre-activations need not sit in [0, 1]
    raw = ws.sharpen(relu_net, test.x[:8])
    assert not torch.equal(raw[1].weight, sharp[1].weight)


def test_sharpened_head_trains_to_binary_and_converts_exactly(mnist, relu_net):
    train, test = mnist
    sharp = ws.sharpen(relu_net, test.x[:8], calibration=_calibration(train), classes=10,
                       width=40, surrogate=ws.nn.StraightThrough())
    assert all(m.surrogate == ws.nn.StraightThrough()
               for m in ws.sharpening.sharpenable_layers(sharp))
    loader = ArrayLoader(train.x[:6000], train.y[:6000], 128, shuffle=True, seed=0)
    # the new head learns for one epoch, then the layers sharpen bottom-up, half an epoch each
    sharpener = ws.sharpening.ScheduledSharpener(start=1, duration=0.5, intermission=0,
                                                 mode="batch")
    ws.training.fit(sharp, loader, epochs=4, sharpener=sharpener, progress=False,
                    optimizer=torch.optim.Adam(sharp.parameters(), lr=1e-3))
    assert ws.sharpening.is_fully_sharp(sharp)
    test_loader = ArrayLoader(test.x, test.y, 1000)
    accuracy = ws.training.evaluate(sharp, test_loader)
    assert accuracy > 0.6, accuracy  # far above chance after 4 short epochs (about 0.77)
    net = ws.conversion.to_spiking(sharp, test.x[:2])
    with torch.no_grad():
        torch_pred = sharp(test.x).argmax(1).numpy()
    assert net.readout == "decode"
    assert np.array_equal(ws.runtime.predict(net, test.x.numpy()), torch_pred)


def test_thresholded_without_training_converts_exactly_with_an_affine_readout(mnist, relu_net):
    """Sharpness 1 straight after sharpen (no head): hidden layers spike at lambda_l / 2, the
    final Linear stays a real-valued readout, and the spiking network matches torch."""
    train, test = mnist
    calibrated = ws.sharpen(relu_net, test.x[:8], calibration=_calibration(train))
    ws.sharpening.set_model_sharpness(calibrated, 1.0)
    net = ws.conversion.to_spiking(calibrated, test.x[:2])
    assert net.readout == "affine"
    with torch.no_grad():
        expected = calibrated(test.x).argmax(1).numpy()
    assert np.array_equal(ws.runtime.predict(net, test.x.numpy()), expected)
