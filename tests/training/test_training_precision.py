"""Mixed precision: bf16 autocast for the training step only; evaluation stays float32."""

import math

import pytest
import torch

import whetstone as ws
from whetstone.data import ArrayLoader


def blobs(n=512, seed=0):
    """Two well separated Gaussian blobs in 8 dimensions."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 8, generator=g) * 0.3 + (2.0 * y[:, None] - 1.0)
    return x, y


def small_model(seed=0):
    torch.manual_seed(seed)
    key = ws.nn.key_generator(2, 8, overlapping=False, seed=0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), ws.nn.SpikingBReLU(),
                               torch.nn.Linear(16, 8), ws.nn.SpikingBReLU(),
                               ws.nn.SoftmaxDecode(key))


class AutocastProbe(torch.nn.Module):
    """Wraps a model; records, per forward, whether CPU autocast was on and the output dtype."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = []

    def forward(self, x):
        out = self.inner(x)
        self.calls.append((self.training, torch.is_autocast_enabled("cpu"), out.dtype))
        return out


def conv_model(seed=0):
    """A small conv net with BatchNorm (the layers autocast changes most)."""
    torch.manual_seed(seed)
    key = ws.nn.key_generator(2, 8, overlapping=False, seed=0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4),
        ws.nn.SpikingBReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 8, bias=False), torch.nn.BatchNorm1d(8),
        ws.nn.SpikingBReLU(surrogate=ws.nn.StraightThrough()), ws.nn.SoftmaxDecode(key))


def images(n=256, seed=0):
    """Two classes of 8x8 images: a bright top half or a bright bottom half, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.3
    x[y == 0, :, :4] += 0.7
    x[y == 1, :, 4:] += 0.7
    return x, y


def test_bf16_training_learns_with_a_finite_loss_and_float32_parameters():
    x, y = blobs()
    model = small_model()
    history = ws.training.fit(
        model, ArrayLoader(x, y, 64, shuffle=True), epochs=4,
        optimizer=torch.optim.Adam(model.parameters(), 1e-2),
        sharpener=ws.sharpening.SimpleSharpener(start_epoch=1, steps=1),
        val_loader=ArrayLoader(x, y, 256), progress=False, precision="bf16")
    assert all(math.isfinite(r.train_loss) for r in history)
    assert history[-1].train_loss < history[0].train_loss
    assert history[-1].val_accuracy_binary > 0.95
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert {b.dtype for b in model.buffers() if b.is_floating_point()} <= {torch.float32,
                                                                          torch.float64}


def test_bf16_conv_net_with_batchnorm_and_a_teacher_trains():
    x, y = images()
    teacher = conv_model(seed=1)
    model = conv_model()
    history = ws.training.fit(
        model, ArrayLoader(x, y, 64, shuffle=True), epochs=3,
        optimizer=torch.optim.Adam(model.parameters(), 1e-2),
        sharpener=ws.sharpening.SimpleSharpener(start_epoch=1, steps=1),
        val_loader=ArrayLoader(x, y, 256), progress=False, channels_last=True,
        teacher=teacher, distillation=ws.training.Distillation(4.0, 0.5), precision="bf16")
    assert all(math.isfinite(r.train_loss) for r in history)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert {p.dtype for p in teacher.parameters()} == {torch.float32}


def test_bf16_autocast_is_on_in_training_steps_and_off_in_evaluation():
    x, y = blobs(n=128)
    model = AutocastProbe(small_model())
    teacher = AutocastProbe(small_model(seed=1))
    ws.training.fit(model, ArrayLoader(x, y, 64), 2, torch.optim.Adam(model.parameters(), 1e-2),
                    val_loader=ArrayLoader(x, y, 128), progress=False, precision="bf16",
                    teacher=teacher)
    training = [c for c in model.calls if c[0]]
    evaluation = [c for c in model.calls if not c[0]]
    assert len(training) == 4 and len(evaluation) == 4  # 2 batches; current + binary per epoch
    assert all(on and dtype == torch.bfloat16 for _, on, dtype in training)
    assert all(not on and dtype == torch.float32 for _, on, dtype in evaluation)
    assert [on for _, on, _ in teacher.calls] == [True] * 4  # the teacher's forward too


def test_float32_training_uses_no_autocast():
    x, y = blobs(n=128)
    model = AutocastProbe(small_model())
    ws.training.fit(model, ArrayLoader(x, y, 64), 1, torch.optim.Adam(model.parameters(), 1e-2),
                    val_loader=ArrayLoader(x, y, 128), progress=False)
    assert model.calls and all(not on and dtype == torch.float32 for _, on, dtype in model.calls)


def test_evaluate_turns_off_a_callers_autocast():
    x, y = blobs(n=128)
    model = AutocastProbe(small_model())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        accuracy = ws.training.evaluate(model, ArrayLoader(x, y, 64))
        assert torch.is_autocast_enabled("cpu")  # restored after evaluation
    with torch.no_grad():
        expected = ws.training.evaluate(model.inner, ArrayLoader(x, y, 64))
    assert accuracy == expected
    assert [(on, dtype) for _, on, dtype in model.calls] == [(False, torch.float32)] * 2


def test_unknown_precision_is_a_clear_error():
    model = small_model()
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        ws.training.fit(model, ArrayLoader(*blobs(), 64), 1,
                        torch.optim.SGD(model.parameters(), 0.1), progress=False,
                        precision="fp16")


def test_precision_is_a_config_field_left_out_of_to_dict_at_its_default():
    config = ws.presets.get_preset("mnist-cnn")
    assert config.precision == "float32" and "precision" not in config.to_dict()
    bf16 = config.merged({"precision": "bf16"})
    assert bf16.to_dict()["precision"] == "bf16"
    assert ws.presets.TrainConfig.from_dict(bf16.to_dict()) == bf16
    assert ws.presets.TrainConfig.from_dict(config.to_dict()) == config
