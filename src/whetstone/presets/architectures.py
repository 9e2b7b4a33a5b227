"""Network builders for the presets: ``nn.Sequential`` chains, and a residual network
(:class:`ResNet`, an ``nn.Module`` converted through ``torch.fx``), with sharpenable layers.

Every hidden Dense/Conv is followed (optionally through BatchNorm) by a sharpenable
activation. A classifier's output is an N-hot population of ``key.shape[1]`` sharpenable
neurons decoded by :class:`~whetstone.nn.SoftmaxDecode`; the other tasks end in a *readout*,
a Linear or 1x1 Conv2d whose real values are the result (:data:`ARCHITECTURE_TASKS`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
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


SHORTCUTS = ("projection", "identity")
"""How a :class:`BasicBlock` that changes the shape makes its shortcut: ``"projection"`` (a
strided 1x1 convolution and BatchNorm of the block's input, the classic ResNet) or
``"identity"`` (the spikes of the block's own strided first convolution: every shortcut is
an identity, which the NIR importers that execute a graph in depth-first order, Norse's
included, compute right)."""


class BasicBlock(nn.Module):
    """A residual basic block: ``act(BN(conv3x3(s)) + shortcut)`` with
    ``s = act(BN(conv3x3(x)))``.

    The first convolution has ``stride``. The shortcut is ``x`` when the shape is kept; when
    it changes, a strided 1x1 convolution and BatchNorm of ``x`` (``shortcut =
    "projection"``) or ``s`` itself (``"identity"``). The sum feeds the second activation,
    so once sharp the block's output is ``1[a + b >= theta]`` of the two terms (the
    converted graph's ``Add`` then ``Threshold``).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1,
                 act: Callable[[], nn.Module] = SpikingBReLU,
                 shortcut: str = "identity") -> None:
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise ValueError(f"unknown shortcut {shortcut!r}; choose from {SHORTCUTS}")
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = act()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.changes = stride != 1 or c_in != c_out
        self.from_inner = self.changes and shortcut == "identity"
        self.shortcut: nn.Module = nn.Identity()
        if self.changes and shortcut == "projection":
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))
        self.act2 = act()

    def forward(self, x: Tensor) -> Tensor:
        """The block's spike map (sharp) or bounded activations (sharpness below 1)."""
        y = self.act1(self.bn1(self.conv1(x)))
        skip = y if self.from_inner else self.shortcut(x)
        return self.act2(self.bn2(self.conv2(y)) + skip)


class ResNet(nn.Module):
    """A small residual network for images (ResNet-8 style with the defaults), not a chain:

    stem Conv3x3(``widths[0]``) -> BN -> act; per stage ``i`` ``blocks[i]`` basic blocks
    (:class:`BasicBlock`) of width ``widths[i]``, the first of every stage after the first
    with stride 2 and the ``shortcut`` of :data:`SHORTCUTS`; global sum pooling
    (``AvgPool2d`` over the whole last map with ``divisor_override=1``: how many of each
    channel's neurons spiked, an integer),
    ``torch.flatten(x, 1)``, Linear(W) -> BatchNorm1d -> act, SoftmaxDecode(key). Input
    ``(N, C, H, W)``.

    The Linear after the pooling is an affine function of spike counts, so the converted
    network (a graph :class:`~whetstone.runtime.SpikingNetwork` with ``Add`` layers, through
    ``torch.fx``) computes exactly what the model computes. A sum rather than an average:
    it converts to ``SumPool2d`` with scale 1, which NIR importers without an average
    pooling (Norse) read; the BatchNorm after the Linear makes the scale immaterial to
    training.
    """

    def __init__(self, key: Tensor, in_channels: int = 3, image_size: int = 32,
                 widths: Sequence[int] = (16, 32, 64), blocks: Sequence[int] | None = None,
                 act: Callable[[], nn.Module] = SpikingBReLU,
                 shortcut: str = "identity") -> None:
        super().__init__()
        blocks = (1,) * len(widths) if blocks is None else blocks
        if len(blocks) != len(widths):
            raise ValueError(f"blocks gives {len(blocks)} stages, widths {len(widths)}: one "
                             f"block count per stage")
        self.stem = nn.Sequential(*_conv_block(in_channels, widths[0], 3, True, act))
        stages: list[nn.Module] = []
        c = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
            layers = [BasicBlock(c if j == 0 else w, w, 2 if (i > 0 and j == 0) else 1, act,
                                 shortcut) for j in range(n)]
            stages.append(nn.Sequential(*layers))
            c = w
        self.stages = nn.Sequential(*stages)
        side = int(image_size)
        for _ in widths[1:]:  # 3x3, stride 2, padding 1
            side = (side - 1) // 2 + 1
        self.pool = nn.AvgPool2d(side, divisor_override=1)
        self.fc = nn.Linear(c, key.shape[1], bias=False)
        self.bn = nn.BatchNorm1d(key.shape[1])
        self.act = act()
        self.decode = SoftmaxDecode(key)

    def forward(self, x: Tensor) -> Tensor:
        """Class scores of :class:`~whetstone.nn.SoftmaxDecode` for images ``x``."""
        h = self.pool(self.stages(self.stem(x)))
        return self.decode(self.act(self.bn(self.fc(torch.flatten(h, 1)))))


def resnet(key: Tensor, in_channels: int = 3, image_size: int = 32,
           widths: Sequence[int] = (16, 32, 64), blocks: Sequence[int] | None = None,
           shortcut: str = "identity",
           act: Callable[[], nn.Module] = SpikingBReLU) -> ResNet:
    """The :class:`ResNet` of ``widths`` (channels per stage) and ``blocks`` (basic blocks
    per stage, default one each); the defaults are ResNet-8 style (stem, three stages of one
    block); ``shortcut`` (:data:`SHORTCUTS`) where a block changes the shape."""
    return ResNet(key, in_channels, image_size, widths, blocks, act, shortcut)


def import_function(spec: str) -> Callable[[], nn.Module]:
    """The function ``package.module:function`` names, imported from the current directory
    or ``PYTHONPATH`` (the current directory is searched first, as ``python -m`` does).

    Raises :class:`~whetstone.presets.ConfigError` (field ``model.function``) naming the spec
    when the module cannot be imported or has no such callable.
    """
    import importlib
    import os
    import sys

    from .schema import ConfigError

    module_name, _, name = spec.partition(":")
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module may raise anything while it is imported
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"cannot import {module_name!r} for {spec!r} ({type(exc).__name__}: "
                          f"{why}); run from the folder that holds it or add that folder to "
                          f"PYTHONPATH", "model.function") from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(f"module {module_name!r} ({getattr(module, '__file__', '?')}) has no "
                          f"function {name!r}", "model.function")
    return function


def custom(key: Tensor | None = None, function: str = "",
           act: Callable[[], nn.Module] | None = None) -> nn.Module:
    """The model returned by the user's ``function`` (``package.module:function``, called
    without arguments after torch is seeded with the run's seed).

    For classification its output is the class scores ``(N, classes)``: end it in
    :class:`~whetstone.nn.SoftmaxDecode` for a network whose converted form decides by the
    N-hot key (an ``nn.Linear`` readout also converts, as an affine readout). The whetstone
    ``key`` and ``act`` are not used: the function builds its own layers.
    """
    from .schema import ConfigError

    model = import_function(function)()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{function} returned {type(model).__name__}, not a torch "
                          f"nn.Module", "model.function")
    return model


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


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "dense": dense,
    "whetstone-cnn": whetstone_cnn,
    "vgg-cnn": vgg_cnn,
    "resnet": resnet,
    "custom": custom,
    "autoencoder": autoencoder,
    "segmentation-cnn": segmentation_cnn,
}
"""The builders by ``model.arch``; a classifier's takes the class key first."""

ARCHITECTURE_INPUTS: dict[str, tuple[str, ...]] = {
    "dense": ("in_features",),
    "whetstone-cnn": ("in_channels", "image_size"),
    "vgg-cnn": ("in_channels", "image_size"),
    "resnet": ("in_channels", "image_size"),
    "custom": (),
    "autoencoder": ("in_features",),
    "segmentation-cnn": ("in_channels", "image_size", "classes"),
}
"""The keywords of each builder that the data sets (input size, classes per pixel)."""

ARCHITECTURE_TASKS: dict[str, str] = {
    "dense": "classification",
    "whetstone-cnn": "classification",
    "vgg-cnn": "classification",
    "resnet": "classification",
    "custom": "classification",
    "autoencoder": "reconstruction",
    "segmentation-cnn": "segmentation",
}
"""The task (:data:`whetstone.tasks.TASKS`) each architecture's output serves."""
