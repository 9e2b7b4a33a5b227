"""Presets build the original's networks; configuration files and overrides merge correctly."""

import pytest
import torch

import whetstone as ws
from whetstone.presets import TrainConfig, build_model, get_preset, read_toml
from whetstone.presets.build import DATASET_SHAPES


@pytest.mark.parametrize(("name", "layers", "width", "disjoint"), [
    ("mnist-dense", 3, 100, False), ("fashion-dense", 3, 100, False),
    ("mnist-cnn", 8, 40, True), ("fashion-cnn", 8, 40, True), ("cifar10-cnn", 8, 40, True),
    ("cifar10-vgg-wide", 8, 40, True),
])
def test_preset_architectures(name, layers, width, disjoint):
    config = get_preset(name)
    model = build_model(config)
    assert len(ws.sharpening.sharpenable_layers(model)) == layers
    decode = model[-1]
    assert isinstance(decode, ws.nn.SoftmaxDecode)
    assert decode.key.shape == (10, width)
    assert (decode.key.sum(0).max().item() == 1.0) == disjoint
    assert model(torch.rand(2, *DATASET_SHAPES[config.dataset])).shape == (2, 10)


def test_mnist_dense_matches_the_original_example():
    config = get_preset("mnist-dense")
    model = build_model(config)
    linear = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(784, 256), (256, 64), (64, 100)]
    assert config.optimizer["name"] == "adadelta" and config.optimizer["lr"] == 4.0
    assert config.epochs == 21 and config.batch_size == 128


def test_cnn_has_batchnorm_before_every_activation():
    model = build_model(get_preset("mnist-cnn"))
    mods = list(model)
    for i, m in enumerate(mods):
        if isinstance(m, ws.nn.SpikingBReLU):
            assert isinstance(mods[i - 1], torch.nn.BatchNorm1d | torch.nn.BatchNorm2d)
    convs = [m for m in mods if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [
        (32, 7), (64, 7), (64, 5), (64, 5), (128, 3), (128, 3)]


@pytest.mark.parametrize("batchnorm", [True, False])
def test_vgg_cnn_batchnorm_switch(batchnorm):
    config = get_preset("cifar10-cnn").merged(
        {"model": {"widths": [4, 8], "dense_width": 16, "batchnorm": batchnorm}})
    model = build_model(config)
    norms = [m for m in model if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d)]
    weighted = [m for m in model if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    assert len(norms) == (len(weighted) if batchnorm else 0) == (6 if batchnorm else 0)
    # a layer followed by BatchNorm needs no bias; without BatchNorm each keeps its own
    assert all((m.bias is None) == batchnorm for m in weighted)
    assert len(ws.sharpening.sharpenable_layers(model)) == 6
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_clip_grad_norm_is_the_loops_not_the_optimizers():
    config = get_preset("mnist-dense").merged(
        {"optimizer": {"name": "sgd", "lr": 0.05, "clip_grad_norm": 1.0}})
    optimizer = ws.presets.build_optimizer(config, build_model(config))
    assert isinstance(optimizer, torch.optim.SGD) and "clip_grad_norm" not in optimizer.defaults
    assert ws.presets.build.gradient_clip(config) == 1.0
    assert ws.presets.build.gradient_clip(get_preset("mnist-dense")) is None


def test_same_seed_same_model():
    a = build_model(get_preset("mnist-dense"))
    b = build_model(get_preset("mnist-dense"))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(),
                                                strict=True))


def test_schedule_switch_uses_the_presets_arguments():
    config = get_preset("mnist-cnn").with_schedule("adaptive")
    assert config.schedule == {"name": "adaptive", "min_init_epochs": 10}
    sharpener = ws.presets.build_sharpener(config)
    assert isinstance(sharpener, ws.sharpening.AdaptiveSharpener)
    assert ws.presets.build_sharpener(get_preset("mnist-dense").merged(
        {"schedule": {"name": "none"}})) is None


def test_optimizer_override_does_not_inherit_old_arguments():
    config = get_preset("mnist-dense").merged({"optimizer": {"name": "adam", "lr": 1e-3}})
    assert config.optimizer == {"name": "adam", "lr": 1e-3}
    ws.presets.build_optimizer(config, build_model(config))


def test_toml_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('preset = "mnist-dense"\nepochs = 3\n[optimizer]\nlr = 2.0\n')
    values = read_toml(path)
    config = get_preset(values.pop("preset")).merged(values)
    assert config.epochs == 3 and config.optimizer["lr"] == 2.0
    assert config.optimizer["name"] == "adadelta"


def test_bad_configuration_is_named(tmp_path):
    with pytest.raises(ValueError, match="epochz"):
        get_preset("mnist-dense").merged({"epochz": 3})
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("nope")
    broken = tmp_path / "broken.toml"
    broken.write_text("epochs = = 3")
    with pytest.raises(ValueError, match="TOML"):
        read_toml(broken)


def test_config_round_trip(tmp_path):
    config = get_preset("fashion-cnn")
    config.save(tmp_path / "config.json")
    assert TrainConfig.load(tmp_path / "config.json") == config


def test_cifar10_vgg_wide_doubles_every_convolution_of_cifar10_cnn():
    base, wide = get_preset("cifar10-cnn"), get_preset("cifar10-vgg-wide")
    convs = [[m.out_channels for m in build_model(c) if isinstance(m, torch.nn.Conv2d)]
             for c in (base, wide)]
    assert convs == [[64, 64, 128, 128, 256, 256], [128, 128, 256, 256, 512, 512]]
    assert base.merged({"name": "cifar10-vgg-wide", "model": wide.model}) == wide
