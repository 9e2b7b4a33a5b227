"""ws.sharpen on models whose forward calls functional activations (F.relu, torch.relu,
x.relu(), F.relu6, F.hardtanh): the torch.fx rewrite into sharpenable submodules, a projection
residual (a sum of two producers feeding an activation), calibration, fine-tuning to
sharpness 1 with a sharpener, and exact conversion with to_spiking; refusals of models
torch.fx cannot trace."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

import whetstone as ws
import whetstone.runtime as rt
from whetstone.data import ArrayLoader
from whetstone.nn import SpikingBReLU, StraightThrough
from whetstone.sharpening import SharpenError, sharpen, sharpenable_layers
from whetstone.sharpening.calibration import plan_sites
from whetstone.sharpening.swap import functional_to_modules


class FunctionalResidual(nn.Module):
    """``h = F.relu(bn1(fc1(x)))``; ``r = torch.relu(fc2(h) + short(h))`` (a projection
    residual: the sum of two producers); ``o = fc3(r).relu()``; ``out(o)``: 20 -> 4."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(20, 32)
        self.bn1 = nn.BatchNorm1d(32)
        self.fc2 = nn.Linear(32, 32)
        self.short = nn.Linear(32, 32)
        self.fc3 = nn.Linear(32, 24)
        self.out = nn.Linear(24, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.fc1(x)))
        r = torch.relu(self.fc2(h) + self.short(h))
        return self.out(self.fc3(r).relu())


def _data(n: int = 768, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(n, 20)`` and the classes of a fixed random linear teacher (4 classes)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=gen)
    teacher = torch.randn(20, 4, generator=gen)
    return x, (x @ teacher).argmax(1)


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The ReLU model trained 150 full-batch Adam steps on the teacher's classes."""
    torch.manual_seed(0)
    model = FunctionalResidual()
    x, y = _data()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() > 0.85
    return model, x, y


def test_functional_calls_become_named_modules_of_a_graph_module(trained):
    model, x, _ = trained
    rewritten, added = functional_to_modules(model, x[:4])
    assert isinstance(rewritten, fx.GraphModule) and added == ["relu", "relu_1", "relu_2"]
    assert all(isinstance(rewritten.get_submodule(n), nn.ReLU) for n in added)
    assert not hasattr(model, "relu") and rewritten.fc1 is model.fc1  # shared, not changed
    with torch.no_grad():
        torch.testing.assert_close(rewritten(x), model(x), rtol=0, atol=0)
    sites = plan_sites(rewritten, lambda m: isinstance(m, nn.ReLU))
    # the residual sum's activation has two producers, scaled alike
    assert [(s.name, s.producers, sorted(s.consumers)) for s in sites] == [
        ("relu", ["bn1"], ["fc2", "short"]), ("relu_1", ["fc2", "short"], ["fc3"]),
        ("relu_2", ["fc3"], ["out"])]
    # a model without functional activations comes back as it is
    plain = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    assert functional_to_modules(plain, torch.rand(2, 3)) == (plain, [])


def test_sharpness_zero_stays_close_to_the_relu_model(trained):
    model, x, _ = trained
    sharp = sharpen(model, x[:8], calibration=[x], percentile=100.0)
    assert isinstance(sharp, fx.GraphModule) and type(sharp).__name__ == "FunctionalResidual"
    assert [type(sharp.get_submodule(n)) for n in ("relu", "relu_1", "relu_2")] == \
        [SpikingBReLU] * 3
    assert len(sharpenable_layers(sharp)) == 3
    assert not any(isinstance(m, SpikingBReLU) for m in model.modules())  # model untouched
    with torch.no_grad():
        out, ref = sharp(x), model(x)
    assert float((out - ref).norm() / ref.norm()) < 3e-3
    assert (out.argmax(1) == ref.argmax(1)).float().mean() > 0.99


def test_fine_tuned_to_sharpness_one_and_converted_exactly(trained):
    model, x, y = trained
    sharp = sharpen(model, x[:8], calibration=[x], classes=4, width=16,
                    surrogate=StraightThrough())
    assert len(sharpenable_layers(sharp)) == 4  # three swapped calls and the head's
    torch.manual_seed(0)
    sharpener = ws.sharpening.ScheduledSharpener(start=0, duration=1.0, intermission=0,
                                                 mode="batch")
    ws.training.fit(sharp, ArrayLoader(x, y, 64, shuffle=True, seed=0), 6,
                    torch.optim.Adam(sharp.parameters(), lr=3e-3), sharpener=sharpener,
                    progress=False)
    assert ws.sharpening.is_fully_sharp(sharp)
    sharp = sharp.double().eval()
    xd = x.double()
    with torch.no_grad():
        want = sharp(xd).numpy()
    assert (want.argmax(1) == y.numpy()).mean() > 0.6  # it learnt something binary
    net = ws.conversion.to_spiking(sharp, xd[:4])
    assert "Add" in [layer.kind for layer in net.layers]
    logits = rt.run(net, xd.numpy(), dtype=np.float64)
    np.testing.assert_array_equal(rt.predict(net, xd.numpy(), dtype=np.float64),
                                  want.argmax(1))
    np.testing.assert_allclose(logits, want, rtol=0, atol=1e-9)


def test_relu6_and_hardtanh_calls_keep_their_ceiling_and_bad_hardtanh_is_refused():
    class Bounded(nn.Module):
        def __init__(self, low: float) -> None:
            super().__init__()
            self.low = low
            self.a, self.b, self.c = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c(F.hardtanh(self.b(F.relu6(self.a(x))), self.low, 0.5))

    torch.manual_seed(0)
    x = torch.randn(64, 4) * 10
    sharp = sharpen(Bounded(0.0).eval(), x[:4], calibration=[x])
    assert isinstance(sharp.relu6, SpikingBReLU) and isinstance(sharp.hardtanh, SpikingBReLU)
    with pytest.raises(SharpenError, match=r"F\.hardtanh.*min_val=-1"):
        sharpen(Bounded(-1.0).eval(), x[:4], calibration=[x])


def test_an_untraceable_model_with_functional_relu_is_refused_naming_the_call():
    class Branching(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.a(x)
            if h.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                h = F.relu(h)
            else:
                h = h.relu()
            return self.b(h)

    with pytest.raises(SharpenError, match=r"calls F\.relu.*cannot trace|calls x\.relu\(\)"):
        sharpen(Branching(), torch.rand(2, 4))
