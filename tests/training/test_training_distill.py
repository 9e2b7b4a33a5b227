"""Distillation: the loss against hand-computed values, its settings, and fit with a teacher."""

import math

import pytest
import torch

import whetstone as ws
from whetstone.data import ArrayLoader
from whetstone.training import Distillation, distillation_loss


def blobs(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    return torch.randn(n, 6, generator=g) + y[:, None].float(), y


def small_model(seed=0):
    """6 inputs, a hidden layer of 10, a population of 9 (3 classes x 3)."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 10), ws.nn.SpikingBReLU(),
                               torch.nn.Linear(10, 9), ws.nn.SpikingBReLU(),
                               ws.nn.SoftmaxDecode(ws.nn.key_generator(3, 9, seed=0)))


def test_distillation_loss_matches_a_hand_computed_value():
    # one sample, two classes, T = 2, w = 0.25, label loss 0.7
    # student logits (2, 0) / T = (1, 0): p_s = (e / (e + 1), 1 / (e + 1)) = (0.731059, 0.268941)
    # teacher logits (0, 2) / T = (0, 1): p_t = (0.268941, 0.731059)
    # KL(p_t || p_s) = 0.268941 ln(0.268941 / 0.731059) + 0.731059 ln(0.731059 / 0.268941)
    #                = (0.731059 - 0.268941) * ln(e) = 0.462117
    # loss = 0.75 * 0.7 + 0.25 * 4 * 0.462117 = 0.525 + 0.462117 = 0.987117
    student = torch.tensor([[2.0, 0.0]])
    teacher = torch.tensor([[0.0, 2.0]])
    loss = distillation_loss(student, teacher, torch.tensor(0.7), temperature=2.0, weight=0.25)
    assert float(loss) == pytest.approx(0.987117, abs=1e-6)
    assert float(Distillation(2.0, 0.25)(student, teacher, torch.tensor(0.7))) == pytest.approx(
        0.987117, abs=1e-6)


def test_distillation_kl_is_a_batch_mean_and_zero_for_equal_logits():
    z = torch.tensor([[1.0, -3.0, 0.5], [0.0, 0.0, 4.0]])
    assert float(distillation_loss(z, z, torch.tensor(1.0), 3.0, 1.0)) == pytest.approx(0.0,
                                                                                       abs=1e-7)
    # batch of the same sample twice: same value as the sample alone (a mean, not a sum)
    s, t = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    one = distillation_loss(s, t, torch.tensor(0.0), 1.0, 1.0)
    two = distillation_loss(s.repeat(2, 1), t.repeat(2, 1), torch.tensor(0.0), 1.0, 1.0)
    assert float(one) == pytest.approx(float(two))
    # T = 1, w = 1: exactly KL(softmax(t) || softmax(s))
    p_t, p_s = torch.softmax(t, 1)[0], torch.softmax(s, 1)[0]
    kl = sum(float(a) * math.log(float(a) / float(b)) for a, b in zip(p_t, p_s, strict=True))
    assert float(one) == pytest.approx(kl, rel=1e-6)


def test_distillation_gradient_reaches_only_the_student():
    s = torch.tensor([[2.0, 0.0]], requires_grad=True)
    t = torch.tensor([[0.0, 2.0]], requires_grad=True)
    distillation_loss(s, t, torch.tensor(0.0), 2.0, 1.0).backward()
    assert s.grad is not None and float(s.grad.abs().sum()) > 0
    assert t.grad is None


@pytest.mark.parametrize("kwargs, match", [
    ({"temperature": 0.0}, "temperature"), ({"temperature": float("inf")}, "temperature"),
    ({"weight": 1.5}, "weight"), ({"weight": -0.1}, "weight")])
def test_distillation_settings_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Distillation(**kwargs)


def test_fit_with_a_teacher_mixes_its_logits_into_the_loss():
    x, y = blobs()
    teacher = small_model(seed=1)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}

    def first_loss(**kwargs):
        model = small_model()
        history = ws.training.fit(model, ArrayLoader(x, y, 512), 1,
                                  torch.optim.SGD(model.parameters(), 0.0), progress=False,
                                  **kwargs)
        return history[0].train_loss, model

    plain, model = first_loss()
    with torch.no_grad():
        label = float(torch.nn.functional.cross_entropy(model(x), y))
        expected = float(distillation_loss(model(x), teacher(x), torch.tensor(label), 3.0, 0.4))
    mixed, _ = first_loss(teacher=teacher, distillation=Distillation(3.0, 0.4))
    assert plain == pytest.approx(label, rel=1e-5)
    assert mixed == pytest.approx(expected, rel=1e-5)
    assert mixed != pytest.approx(plain)
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert not teacher.training


def test_fit_rejects_distillation_without_a_teacher():
    x, y = blobs()
    model = small_model()
    with pytest.raises(ValueError, match="without a teacher"):
        ws.training.fit(model, ArrayLoader(x, y, 64), 1, torch.optim.SGD(model.parameters(), 0.1),
                        distillation=Distillation(), progress=False)
