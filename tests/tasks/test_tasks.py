"""The task protocol: losses, per-batch scores and meters against hand-computed values, the
agreement of two networks' outputs, and fit with a non-classification task."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from whetstone.nn import SpikingBReLU
from whetstone.sharpening import SimpleSharpener
from whetstone.tasks import (
    TASKS,
    Agreement,
    Classification,
    Reconstruction,
    Segmentation,
    psnr,
)
from whetstone.training import fit
from whetstone.training.loop import check_divergence, evaluate_metrics


def test_registry_names_the_tasks():
    assert set(TASKS) == {"classification", "reconstruction", "segmentation"}
    for name, cls in TASKS.items():
        assert cls.name == name


def test_classification_score_and_meter():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [4.0, 0.0, 0.0]])
    labels = torch.tensor([0, 1, 0, 1])
    task = Classification()
    assert int(task.score(logits, labels)) == 2
    meter = task.meter()
    meter.update(logits[:2], labels[:2])
    meter.update(logits[2:], labels[2:])
    assert meter.compute() == {"accuracy": 0.5}
    assert torch.equal(task.decision(logits), torch.tensor([0, 1, 2, 0]))
    assert task.chance(logits) == pytest.approx(1 / 3)
    smooth = Classification(label_smoothing=0.1)
    expected = nn.CrossEntropyLoss(label_smoothing=0.1)(logits, labels)
    assert torch.allclose(smooth.loss(logits, labels), expected)


def test_reconstruction_scores_by_hand():
    target = torch.tensor([[0.0, 1.0, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0]])
    output = torch.tensor([[0.1, 0.9, 0.5, 0.5], [1.0, 1.0, 1.0, 0.0]])
    # per-image MSE: (0.01 + 0.01) / 4 = 0.005 and 1 / 4 = 0.25
    per_image = psnr(output, target)
    assert per_image.tolist() == pytest.approx([-10 * math.log10(0.005), -10 * math.log10(0.25)])
    task = Reconstruction()
    x = target.reshape(2, 1, 2, 2)
    assert torch.equal(task.target(x, torch.tensor([3, 4])), target)
    assert float(task.score(output, target)) == pytest.approx(float(per_image.sum()))
    assert float(task.loss(output, target)) == pytest.approx((0.005 + 0.25) / 2)
    meter = task.meter()
    meter.update(output[:1], target[:1])
    meter.update(output[1:], target[1:])
    scores = meter.compute()
    assert scores["mse"] == pytest.approx(0.1275)
    assert scores["psnr"] == pytest.approx(float(per_image.mean()))
    assert scores["psnr_of_mse"] == pytest.approx(-10 * math.log10(0.1275))
    perfect = task.meter()
    perfect.update(target, target)
    assert perfect.compute()["psnr"] == pytest.approx(100.0)  # the MSE floor 1e-10


def test_reconstruction_meter_refuses_other_shapes():
    meter = Reconstruction().meter()
    with pytest.raises(ValueError, match="shape"):
        meter.update(torch.zeros(2, 3), torch.zeros(2, 4))


def test_segmentation_scores_by_hand():
    # 1 image, 2x3 pixels, 3 classes; scores one-hot at the predicted class
    pred = torch.tensor([[[0, 1, 1], [2, 2, 0]]])
    mask = torch.tensor([[[0, 1, 2], [2, 2, 0]]])
    scores = torch.nn.functional.one_hot(pred, 3).permute(0, 3, 1, 2).float()
    task = Segmentation(classes=3)
    assert float(task.score(scores, mask)) == pytest.approx(5 / 6)
    meter = task.meter()
    meter.update(scores, mask)
    result = meter.compute()
    assert result["pixel_accuracy"] == pytest.approx(5 / 6)
    # IoU: class 0: 2/2; class 1: 1 / (1 + 2 - 1) = 1/2; class 2: 2 / (3 + 2 - 2) = 2/3
    assert result["iou"] == pytest.approx([1.0, 0.5, 2 / 3])
    assert result["mean_iou"] == pytest.approx((1.0 + 0.5 + 2 / 3) / 3)
    with pytest.raises(ValueError, match="mask values"):
        meter.update(scores, mask + 5)


def test_agreement_of_labels_and_of_values():
    cls = Agreement(Classification())
    cls.update(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[2.0, 0.0], [1.0, 0.0]]))
    assert cls.compute() == {"agreement": 0.5}
    values = Agreement(Reconstruction())
    a = torch.tensor([[0.25, 0.5], [1.0, 0.0]], dtype=torch.float64)
    b = a.clone()
    b[1, 1] = 1e-12
    values.update(a, b)
    result = values.compute()
    assert result["agreement"] == 0.75 and result["max_abs_difference"] == pytest.approx(1e-12)
    with pytest.raises(ValueError, match="different shapes"):
        values.update(a, b[:1])


def test_divergence_needs_a_chance_level():
    from whetstone.training.history import EpochRecord, History

    history = History([EpochRecord(0, 0.3, 0.9, None, None, [0.0], 1.0)])
    check_divergence(history, 100.0, 0.0, None, 1)  # no chance level: never
    with pytest.raises(Exception, match="diverged"):
        check_divergence(history, 100.0, 0.0, 0.5, 1)


def test_fit_trains_a_binary_autoencoder_with_the_reconstruction_task():
    torch.manual_seed(0)
    # 64 binary 16-pixel patterns built from 4 prototypes: a 4-neuron code can hold them
    prototypes = (torch.rand(4, 16) > 0.5).float()
    x = prototypes[torch.arange(64) % 4].reshape(64, 1, 4, 4)
    y = torch.zeros(64, dtype=torch.long)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), SpikingBReLU(), nn.Linear(32, 8),
                          SpikingBReLU(), nn.Linear(8, 16))
    task = Reconstruction()
    loader = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    before = evaluate_metrics(model, loader, task=task)["mse"]
    history = fit(model, loader, 60, torch.optim.Adam(model.parameters(), 1e-2),
                  sharpener=SimpleSharpener(start_epoch=20, steps=2, mode="epoch"),
                  val_loader=loader, task=task, progress=False)
    assert history[-1].metric == "psnr" and history[-1].val_metric == "psnr"
    assert history[-1].sharpness == [1.0, 1.0]
    after = evaluate_metrics(model, loader, task=task)
    assert after["mse"] < before / 4
    assert history[-1].val_accuracy == pytest.approx(after["psnr"])


def test_segmentation_background_weight_by_hand():
    scores = torch.zeros(1, 2, 1, 2)
    scores[0, 1, 0, 0] = math.log(3.0)  # pixel 0: p(class 1) = 3/4; pixel 1: 1/2 each
    mask = torch.tensor([[[0, 1]]])
    ce0, ce1 = -math.log(1 / 4), -math.log(1 / 2)
    weighted = Segmentation(classes=2, background_weight=0.25).loss(scores, mask)
    assert float(weighted) == pytest.approx((0.25 * ce0 + ce1) / 1.25)
    assert float(Segmentation(classes=2).loss(scores, mask)) == pytest.approx((ce0 + ce1) / 2)
    with pytest.raises(ValueError, match="background_weight"):
        Segmentation(background_weight=0.0)


def test_task_options_are_checked_per_task():
    from whetstone.presets import ConfigError, get_preset
    from whetstone.presets.build import build_task

    seg = get_preset("digits-segmentation")
    assert build_task(seg).background_weight == seg.task_options["background_weight"]
    with pytest.raises(ConfigError, match="task_options.background_weight"):
        seg.merged({"task_options": {"background_weight": 2.0}})
    with pytest.raises(ConfigError, match="task_options.background_weight"):
        get_preset("mnist-autoencoder").merged({"task_options": {"background_weight": 0.5}})
