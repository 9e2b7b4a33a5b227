"""Network builders for the presets: ordinary ``nn.Sequential`` models with sharpenable layers.

Every hidden Dense/Conv is followed (optionally through BatchNorm) by a sharpenable
activation. A classifier's output is an N-hot population of ``key.shape[1]`` sharpenable
neurons decoded by :class:`~whetstone.nn.SoftmaxDecode`; the other tasks end in a *readout*,
a Linear or 1x1 Conv2d whose real values are the result (:data:`ARCHITECTURE_TASKS`).
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


AUTOENCODER_OUTPUTS = ("readout", "binary")
"""Endings of :func:`autoencoder`: a real-valued Linear readout, or binary output pixels."""


def autoencoder(
    in_features: int = 784,
    hidden: Sequence[int] = (256,),
    code: int = 64,
    batchnorm: bool = False,
    output: str = "readout",
    act: Callable[[], nn.Module] = SpikingBReLU,
) -> nn.Sequential:
    """A dense autoencoder whose every hidden layer, the code included, is sharpenable:

    Flatten -> [Linear -> (BatchNorm1d) -> act] for ``hidden``, then ``code``, then
    ``reversed(hidden)`` -> Linear(``in_features``) and, with ``output="binary"``, one more
    act (binary output pixels, ``1[x >= 0.5]``). Input ``(N, ...)`` with ``in_features``
    values per sample, output ``(N, in_features)``: with ``output="readout"`` a real-valued
    reconstruction from the binary code, ``(N, code)`` spikes per image.
    """
    if output not in AUTOENCODER_OUTPUTS:
        raise ValueError(f"unknown autoencoder output {output!r}; choose from "
                         f"{AUTOENCODER_OUTPUTS}")
    layers: list[nn.Module] = [nn.Flatten()]
    width_in = in_features
    for width in [*hidden, code, *reversed(hidden)]:
        layers.append(nn.Linear(width_in, width, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(act())
        width_in = width
    layers.append(nn.Linear(width_in, in_features))
    if output == "binary":
        layers.append(act())
    return nn.Sequential(*layers)


def segmentation_cnn(
    in_channels: int = 1,
    image_size: int = 64,
    classes: int = 11,
    widths: Sequence[int] = (8, 16, 32),
    middle: int = 32,
    decoder: Sequence[int] = (32, 16),
    batchnorm: bool = True,
    act: Callable[[], nn.Module] = SpikingBReLU,
) -> nn.Sequential:
    """A fully convolutional encoder-decoder (no skip connections: a chain of spiking layers).

    Encoder, per width ``w`` of ``widths``: Conv3x3(w) -> (BatchNorm) -> act -> MaxPool2 (an
    OR of spikes); a middle Conv3x3(``middle``) -> (BatchNorm) -> act; decoder, per width of
    ``decoder``: nearest Upsample x2 (copies spikes) -> Conv3x3(w) -> (BatchNorm) -> act; then
    the readout, a 1x1 Conv2d to ``classes`` per-pixel scores, and, when the decoder has
    ``k`` fewer stages than the encoder, a nearest Upsample by ``2^k`` of those scores (each
    score covers a ``2^k x 2^k`` block of pixels). Input ``(N, C, H, W)`` with ``H`` and ``W``
    divisible by ``2^len(widths)``, output ``(N, classes, H, W)``.
    """
    if len(decoder) > len(widths):
        raise ValueError(f"{len(decoder)} decoder stages for {len(widths)} encoder stages")
    layers: list[nn.Module] = []
    c = in_channels
    for w in widths:
        layers += _conv_block(c, w, 3, batchnorm, act)
        layers.append(nn.MaxPool2d(2))
        c = w
    layers += _conv_block(c, middle, 3, batchnorm, act)
    c = middle
    for w in decoder:
        layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        layers += _conv_block(c, w, 3, batchnorm, act)
        c = w
    layers.append(nn.Conv2d(c, classes, 1))
    remaining = 2 ** (len(widths) - len(decoder))
    if remaining > 1:
        layers.append(nn.Upsample(scale_factor=remaining, mode="nearest"))
    return nn.Sequential(*layers)


ARCHITECTURES: dict[str, Callable[..., nn.Sequential]] = {
    "dense": dense,
    "whetstone-cnn": whetstone_cnn,
    "vgg-cnn": vgg_cnn,
    "autoencoder": autoencoder,
    "segmentation-cnn": segmentation_cnn,
}
"""The builders by ``model.arch``; a classifier's takes the class key first."""

ARCHITECTURE_TASKS: dict[str, str] = {
    "dense": "classification",
    "whetstone-cnn": "classification",
    "vgg-cnn": "classification",
    "autoencoder": "reconstruction",
    "segmentation-cnn": "segmentation",
}
"""The task (:data:`whetstone.tasks.TASKS`) each architecture's output serves."""
