"""Network builders for the presets: ordinary ``nn.Sequential`` models with sharpenable layers.

Every hidden Dense/Conv is followed (optionally through BatchNorm) by a sharpenable
activation; the output is an N-hot population of ``key.shape[1]`` sharpenable neurons
decoded by :class:`~whetstone.nn.SoftmaxDecode`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from ..nn.activations import Sharpenable, SpikingBReLU, SpikingSigmoid
from ..nn.decode import SoftmaxDecode
from ..nn.surrogate import Surrogate

ACTIVATIONS: dict[str, type[Sharpenable]] = {"brelu": SpikingBReLU, "sigmoid": SpikingSigmoid}


def activation_factory(
    name: str = "brelu", surrogate: Surrogate | None = None, plain: bool = False
) -> Callable[[], nn.Module]:
    """A zero-argument factory of the activation layer.

    ``plain=True`` gives ``nn.ReLU`` (the conventional baseline used for speed comparisons).
    """
    if plain:
        return nn.ReLU
    try:
        cls = ACTIVATIONS[name]
    except KeyError:
        choices = sorted(ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r}; choose from {choices}") from None
    return lambda: cls(surrogate=surrogate)


def dense(
    key: Tensor,
    in_features: int = 784,
    hidden: Sequence[int] = (256, 64),
    batchnorm: bool = False,
    dropout: float = 0.0,
    act: Callable[[], nn.Module] = SpikingBReLU,
) -> nn.Sequential:
    """Flatten -> [Linear -> (BatchNorm1d) -> act -> (Dropout)] * len(hidden) -> Linear(W) -> act
    -> SoftmaxDecode(key). Input ``(N, ...)`` with ``in_features`` values per sample."""
    layers: list[nn.Module] = [nn.Flatten()]
    width_in = in_features
    for width in [*hidden, key.shape[1]]:
        layers.append(nn.Linear(width_in, width))
        if batchnorm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(act())
        if dropout and width != key.shape[1]:
            layers.append(nn.Dropout(dropout))
        width_in = width
    layers.append(SoftmaxDecode(key))
    return nn.Sequential(*layers)


def _conv_block(c_in: int, c_out: int, k: int, batchnorm: bool, act: Callable[[], nn.Module]):
    block: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, padding="same", bias=not batchnorm)]
    if batchnorm:
        block.append(nn.BatchNorm2d(c_out))
    block.append(act())
    return block


def whetstone_cnn(
    key: Tensor,
    in_channels: int = 1,
    image_size: int = 28,
    batchnorm: bool = True,
    act: Callable[[], nn.Module] = SpikingBReLU,
) -> nn.Sequential:
    """The original's MNIST CNN (8 spiking layers, 'same' padding, BatchNorm before each act):

    Conv32 7x7, Conv64 7x7, MaxPool2, Conv64 5x5, Conv64 5x5, MaxPool2, Conv128 3x3,
    Conv128 3x3, Dense 256, Dense W (W = key width), SoftmaxDecode. Input ``(N, C, H, W)``.
    Max-pooling follows the activation, so over spikes it is a logical OR.
    """
    spec: list[Any] = [(32, 7), (64, 7), "pool", (64, 5), (64, 5), "pool", (128, 3), (128, 3)]
    layers: list[nn.Module] = []
    c, size = in_channels, image_size
    for item in spec:
        if item == "pool":
            layers.append(nn.MaxPool2d(2))
            size //= 2
        else:
            layers += _conv_block(c, item[0], item[1], batchnorm, act)
            c = item[0]
    layers.append(nn.Flatten())
    for f_in, f_out in ((c * size * size, 256), (256, key.shape[1])):
        layers.append(nn.Linear(f_in, f_out, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm1d(f_out))
        layers.append(act())
    layers.append(SoftmaxDecode(key))
    return nn.Sequential(*layers)


def vgg_cnn(
    key: Tensor,
    in_channels: int = 3,
    image_size: int = 32,
    widths: Sequence[int] = (64, 128, 256),
    dense_width: int = 256,
    batchnorm: bool = True,
    act: Callable[[], nn.Module] = SpikingBReLU,
) -> nn.Sequential:
    """VGG-style: per stage two Conv3x3 -> BatchNorm -> act, then MaxPool2; Dense -> BN -> act;
    Dense(W) -> BN -> act; SoftmaxDecode. Input ``(N, C, H, W)``.

    ``batchnorm=False`` drops every BatchNorm and gives the Conv/Dense layers a bias instead.
    """
    layers: list[nn.Module] = []
    c, size = in_channels, image_size
    for w in widths:
        layers += _conv_block(c, w, 3, batchnorm, act) + _conv_block(w, w, 3, batchnorm, act)
        layers.append(nn.MaxPool2d(2))
        c, size = w, size // 2
    layers.append(nn.Flatten())
    for f_in, f_out in ((c * size * size, dense_width), (dense_width, key.shape[1])):
        layers.append(nn.Linear(f_in, f_out, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm1d(f_out))
        layers.append(act())
    layers.append(SoftmaxDecode(key))
    return nn.Sequential(*layers)


ARCHITECTURES: dict[str, Callable[..., nn.Sequential]] = {
    "dense": dense,
    "whetstone-cnn": whetstone_cnn,
    "vgg-cnn": vgg_cnn,
}
