"""The original Whetstone examples as named presets (method.md §5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import TrainConfig
from .schema import check_name

_CNN_SCHEDULES = {
    "scheduled": {"start": 30, "duration": 4, "intermission": 2},
    "adaptive": {"min_init_epochs": 10},
    "simple": {"start_epoch": 5, "steps": 4},
}
_DENSE_SCHEDULES = {
    "simple": {"start_epoch": 5, "steps": 5},
    "adaptive": {"min_init_epochs": 4},
    "scheduled": {"start": 5, "duration": 4, "intermission": 1},
}


def _dense(name: str, dataset: str) -> TrainConfig:
    """The original dense example (21 epochs, Simple(5, 5), Adadelta 4.0, batch 128) with
    recipe improvements: the schedule's steps spread over batches, a straight-through gradient
    through fully sharpened layers, 10 fine-tuning epochs once every layer is at 1, cosine
    learning-rate decay and random shifts of up to 1 pixel. The architecture is the original's;
    the recipe ``mnist-dense-original`` (:mod:`whetstone.presets.recipes`) is the example
    exactly as shipped."""
    return TrainConfig(
        name=name,
        dataset=dataset,
        model={"arch": "dense", "hidden": [256, 64]},
        key={"classes": 10, "width": 100, "overlapping": True},
        # eps 1e-7 is Keras's Adadelta default, which the original example ran with
        optimizer={"name": "adadelta", "lr": 4.0, "rho": 0.95, "eps": 1e-7},
        schedule={"name": "simple", "mode": "batch", **_DENSE_SCHEDULES["simple"]},
        surrogate="straight-through",
        epochs=21,
        finetune_epochs=10,
        lr_schedule="cosine",
        augment="shift-1",
        batch_size=128,
        schedule_alternatives=_DENSE_SCHEDULES,
    )


def _dense_fast() -> TrainConfig:
    """Time to accuracy on a CPU: the dense preset's network (784-256-64-100, key 10x100
    overlapping) and optimizer (Adadelta 4.0) trained for 8 epochs at batch 512 with cosine
    decay and random 1-pixel shifts. Each layer sharpens bottom-up over half an epoch from
    epoch 2 (fully binary after 3.5 epochs), then the binary network trains through the arctan
    surrogate; one validation pass, at the end. Chosen on the validation split as the
    best-scoring candidate whose training time fits the 12-second budget on 2 cores
    (``benchmarks/results/tuning-mnist-dense-fast.json``)."""
    return TrainConfig(
        name="mnist-dense-fast",
        dataset="mnist",
        model={"arch": "dense", "hidden": [256, 64]},
        key={"classes": 10, "width": 100, "overlapping": True},
        optimizer={"name": "adadelta", "lr": 4.0, "rho": 0.95, "eps": 1e-7},
        schedule={"name": "scheduled", "start": 2.0, "duration": 0.5, "intermission": 0.0,
                  "mode": "batch"},
        surrogate="arctan",
        epochs=8,
        lr_schedule="cosine",
        augment="shift-1",
        batch_size=512,
        val_every=8,
        schedule_alternatives=_DENSE_SCHEDULES,
    )


def _cnn(name: str, dataset: str) -> TrainConfig:
    return TrainConfig(
        name=name,
        dataset=dataset,
        model={"arch": "whetstone-cnn"},
        key={"classes": 10, "width": 40, "overlapping": False},
        optimizer={"name": "adadelta", "lr": 4.0, "rho": 0.95, "eps": 1e-7},
        schedule={"name": "scheduled", **_CNN_SCHEDULES["scheduled"]},
        epochs=77,
        batch_size=32,
        schedule_alternatives=_CNN_SCHEDULES,
    )


def _cifar10_cnn() -> TrainConfig:
    """A VGG-style network with BatchNorm for CIFAR-10 (issue 4; not one of the original's
    examples): 3 stages of two Conv3x3 64/128/256 then MaxPool, Dense 256, Dense 40, key 10x40
    disjoint. Adam with cosine decay, random 4-pixel shifts and mirroring, every layer sharpened
    bottom-up over 4 epochs from epoch 10 (fully binary at epoch 42), a straight-through
    gradient at sharpness 1, 18 more epochs of the binary network. Sized for a GPU."""
    return TrainConfig(
        name="cifar10-cnn",
        dataset="cifar10",
        model={"arch": "vgg-cnn", "widths": [64, 128, 256], "dense_width": 256},
        key={"classes": 10, "width": 40, "overlapping": False},
        optimizer={"name": "adam", "lr": 1e-3},
        schedule={"name": "scheduled", "start": 10, "duration": 4, "intermission": 0,
                  "mode": "batch"},
        surrogate="straight-through",
        epochs=60,
        lr_schedule="cosine",
        augment="shift-4+flip",
        batch_size=128,
        schedule_alternatives=_CNN_SCHEDULES,
    )


def _cifar10_vgg_wide() -> TrainConfig:
    """``cifar10-cnn`` with every convolution twice as wide: 3 stages of two Conv3x3
    128/256/512 then MaxPool, Dense 256, Dense 40, key 10x40 disjoint (6.7M weights, about 4x
    the multiply-adds of ``cifar10-cnn``); same training recipe. For a GPU: the binary
    ``cifar10-cnn`` underfits (80 % training accuracy at the end), so this row asks what
    width buys."""
    config = _cifar10_cnn()
    config.name = "cifar10-vgg-wide"
    config.model = {"arch": "vgg-cnn", "widths": [128, 256, 512], "dense_width": 256}
    return config


def _cifar10_resnet() -> TrainConfig:
    """A small residual network for CIFAR-10 (issue 14; a graph, not a chain: it converts
    through ``torch.fx``): a Conv3x3 stem and three stages of one basic block each, widths
    64/128/256 (stride 2 from the second stage; where the shape changes the shortcut is the
    block's own strided convolution's spikes, so every shortcut is an identity and Norse's
    importer runs the graph right), global sum pooling, Dense 40 -> BatchNorm, key 10x40
    disjoint
    (:class:`~whetstone.presets.architectures.ResNet`). Adam with cosine decay, random
    4-pixel shifts and mirroring; each of the 8 sharpenable layers sharpened bottom-up over 2
    epochs from epoch 6 (fully binary after epoch 22), a straight-through gradient at
    sharpness 1, 18 more epochs of the binary network. Sized for a GPU (40 epochs)."""
    return TrainConfig(
        name="cifar10-resnet",
        dataset="cifar10",
        model={"arch": "resnet", "widths": [64, 128, 256], "blocks": [1, 1, 1],
               "shortcut": "identity"},
        key={"classes": 10, "width": 40, "overlapping": False},
        optimizer={"name": "adam", "lr": 1e-3},
        schedule={"name": "scheduled", "start": 6, "duration": 2, "intermission": 0,
                  "mode": "batch"},
        surrogate="straight-through",
        epochs=40,
        lr_schedule="cosine",
        augment="shift-4+flip",
        batch_size=128,
        val_every=2,
        schedule_alternatives=_CNN_SCHEDULES,
    )


def _autoencoder(name: str, dataset: str, output: str = "readout") -> TrainConfig:
    """A dense autoencoder 784-512-128-512-784 (issue 12) trained beside its conventional
    twin: every hidden layer sharpenable, the 128-neuron code included (a binary code per
    image), BatchNorm before each activation, and a real-valued Linear readout
    (``output="binary"``: binary output pixels instead). Adam with cosine decay; each layer
    sharpens bottom-up over one epoch from epoch 3, then the binary network trains on through
    the straight-through gradient, 16 epochs in all. Chosen on MNIST's validation split among
    8 candidates (``benchmarks/results/tuning-mnist-autoencoder.json``: code width, hidden
    width, sharpening pace, surrogate, length)."""
    return TrainConfig(
        name=name,
        dataset=dataset,
        task="reconstruction",
        twin=True,
        model={"arch": "autoencoder", "hidden": [512], "code": 128, "batchnorm": True,
               "output": output},
        optimizer={"name": "adam", "lr": 1e-3},
        schedule={"name": "scheduled", "start": 3, "duration": 1, "intermission": 0,
                  "mode": "batch"},
        surrogate="straight-through",
        epochs=16,
        lr_schedule="cosine",
        batch_size=128,
        val_every=1,
    )


def _digits_segmentation() -> TrainConfig:
    """Binary segmentation of MNIST digits on 64x64 canvases (issue 12;
    :mod:`whetstone.data.segmentation`) trained beside its conventional twin: a fully
    convolutional encoder-decoder of sharpenable layers ending in a 1x1 readout to 11 classes
    (:func:`~whetstone.presets.architectures.segmentation_cnn`), BatchNorm before each
    activation, Adam with cosine decay, each layer sharpened bottom-up over half an epoch from
    epoch 2, the binary network trained on through the straight-through gradient."""
    return TrainConfig(
        name="digits-segmentation",
        dataset="mnist-segmentation",
        task="segmentation",
        task_options={"background_weight": 0.1},
        twin=True,
        model={"arch": "segmentation-cnn", "widths": [8, 16, 32], "middle": 32,
               "decoder": [32, 16], "batchnorm": True},
        optimizer={"name": "adam", "lr": 3e-3},
        schedule={"name": "scheduled", "start": 2, "duration": 0.5, "intermission": 0,
                  "mode": "batch"},
        surrogate="straight-through",
        epochs=6,
        lr_schedule="cosine",
        batch_size=64,
        val_every=1,
    )


PRESETS: dict[str, TrainConfig] = {
    "mnist-dense": _dense("mnist-dense", "mnist"),
    "fashion-dense": _dense("fashion-dense", "fashion-mnist"),
    "mnist-dense-fast": _dense_fast(),
    "mnist-cnn": _cnn("mnist-cnn", "mnist"),
    "fashion-cnn": _cnn("fashion-cnn", "fashion-mnist"),
    "cifar10-cnn": _cifar10_cnn(),
    "cifar10-vgg-wide": _cifar10_vgg_wide(),
    "cifar10-resnet": _cifar10_resnet(),
    "mnist-autoencoder": _autoencoder("mnist-autoencoder", "mnist"),
    "fashion-autoencoder": _autoencoder("fashion-autoencoder", "fashion-mnist"),
    "mnist-autoencoder-binary": _autoencoder("mnist-autoencoder-binary", "mnist", "binary"),
    "digits-segmentation": _digits_segmentation(),
}


def _cartpole_dqn() -> Any:
    """DQN on gymnasium's CartPole-v1 (issue 12) with the step-based sharpener: the defaults of
    :class:`whetstone.rl.DQNConfig` trained for 80,000 environment steps instead of 40,000 (the
    snapshot-selection episodes, whose reset seeds are apart from the evaluation's, scored the
    selected binary policies higher: ``benchmarks/results/rl-cartpole*.json``)."""
    from ..rl.config import DQNConfig

    return DQNConfig(total_steps=80_000)


POLICY_PRESETS: dict[str, Callable[[], Any]] = {"cartpole-dqn": _cartpole_dqn}
"""Reinforcement-learning presets (``whetstone train --preset NAME``): each gives a
:class:`whetstone.rl.DQNConfig`; their runs are policy run folders
(:mod:`whetstone.runs.policy`)."""


def custom_base() -> TrainConfig:
    """The recipe for the user's own ``--model``/``--data`` when no preset is named: Adam
    (1e-3) with cosine decay, 10 epochs at batch 128, one epoch at sharpness 0, then each
    sharpenable layer sharpened bottom-up over half an epoch, a straight-through gradient at
    sharpness 1 (``--epochs`` scales the schedule to fit, ``--schedule-fit``)."""
    return TrainConfig(
        name="custom",
        optimizer={"name": "adam", "lr": 1e-3},
        schedule={"name": "scheduled", "start": 1.0, "duration": 0.5, "intermission": 0.0,
                  "mode": "batch"},
        surrogate="straight-through",
        epochs=10,
        lr_schedule="cosine",
        batch_size=128,
        schedule_alternatives=_DENSE_SCHEDULES,
    )


def get_preset(name: str) -> TrainConfig:
    """A fresh copy of the named preset; an unknown name raises
    :class:`~whetstone.presets.ConfigError` (field ``preset``) naming the closest preset."""
    check_name(name, "preset", PRESETS, "preset")
    return TrainConfig.from_dict(PRESETS[name].to_dict())
