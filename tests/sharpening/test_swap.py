"""whetstone.sharpen on small synthetic networks: the swap table, the calibration equations,
producers and consumers through pooling / flatten / dropout / BatchNorm, torch.fx models,
refusals, and the population head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import whetstone as ws
from whetstone.nn import SoftmaxDecode, SpikingBReLU, key_generator
from whetstone.nn.functional import brelu
from whetstone.sharpening import ACTIVATIONS, SharpenError, register_activation, sharpen
from whetstone.sharpening.calibration import measure_scales, plan_sites
from whetstone.sharpening.swap import activation_rule


def _mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(20, 16), nn.ReLU(),
                         nn.Sequential(nn.Linear(16, 12), nn.ReLU()), nn.Linear(12, 5)).eval()


def _cnn(seed: int = 0) -> nn.Sequential:
    """Conv -> BN -> ReLU -> MaxPool -> Conv -> ReLU6 -> AvgPool -> BN -> Flatten -> Dropout
    -> Linear -> Hardtanh(0, 3) -> Linear, with non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3), nn.ReLU6(), nn.AvgPool2d(2), nn.BatchNorm2d(8), nn.Flatten(),
        nn.Dropout(0.3), nn.Linear(8 * 2 * 2, 16), nn.Hardtanh(0.0, 3.0), nn.Linear(16, 4))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ---------------------------------------------------------------- swap table


def test_table_swaps_relu_relu6_hardtanh_in_nested_modules_and_copies_the_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(),
                          nn.Sequential(nn.Linear(4, 4), nn.ReLU6()),
                          nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.Hardtanh(0.0, 2.0))),
                          nn.Linear(4, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(256, 4)
    sharp = sharpen(model, x, calibration=[x])
    assert [type(m) for m in sharp.modules() if isinstance(m, SpikingBReLU)] == [SpikingBReLU] * 3
    assert isinstance(sharp[2][1], SpikingBReLU) and isinstance(sharp[3][0][1], SpikingBReLU)
    # the user's model is untouched
    assert isinstance(model[1], nn.ReLU) and isinstance(model[2][1], nn.ReLU6)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(m.sharpness == 0.0 for m in sharp.modules() if isinstance(m, SpikingBReLU))


def test_inplace_modifies_the_given_model():
    model = _mlp()
    x = torch.rand(8, 20)
    out = sharpen(model, x, calibration=[x], inplace=True)
    assert out is model and isinstance(model[2], SpikingBReLU)


def test_ws_sharpen_is_the_sharpening_function():
    assert ws.sharpen is sharpen


def test_hardtanh_not_starting_at_zero_is_refused_by_name():
    model = nn.Sequential(nn.Linear(4, 4), nn.Hardtanh(), nn.Linear(4, 2))
    with pytest.raises(SharpenError, match=r"Hardtanh\(min_val=-1.0"):
        sharpen(model, torch.rand(2, 4))


def test_registered_activation_is_swapped_and_its_ceiling_bounds_lambda():
    class Clamp3(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.clamp(0.0, 3.0)

    register_activation(Clamp3, lambda _m: SpikingBReLU(), ceiling=lambda _m: 3.0)
    try:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), Clamp3(), nn.Linear(8, 2)).eval()
        with torch.no_grad():
            model[0].weight.mul_(20.0)  # pre-activations far above the ceiling
        x = torch.rand(64, 4)
        scales = measure_scales(model, ["1"], [x], ceilings={"1": 3.0})
        assert scales == {"1": 3.0}
        sharp = sharpen(model, x, calibration=[x], percentile=100.0)
        assert isinstance(sharp[1], SpikingBReLU)
        torch.testing.assert_close(sharp(x), model(x), rtol=0, atol=5e-3)
    finally:
        del ACTIVATIONS[Clamp3]


def test_subclass_uses_its_parents_rule_and_relu6_its_own():
    class MyReLU(nn.ReLU):
        pass

    assert activation_rule(MyReLU()) is ACTIVATIONS[nn.ReLU]
    assert activation_rule(nn.ReLU6()) is ACTIVATIONS[nn.ReLU6]  # ReLU6 subclasses Hardtanh
    assert activation_rule(nn.Tanh()) is None


def test_register_activation_needs_a_module_type():
    with pytest.raises(TypeError, match="nn.Module subclass"):
        register_activation(int, lambda _m: SpikingBReLU())  # type: ignore[arg-type]


# ---------------------------------------------------------------- calibration equations


def test_lambda_is_the_percentile_of_each_activations_input():
    model = _mlp()
    x = torch.randn(300, 20)
    z1 = model[1](x)
    z2 = model[3][0](model[2](z1))
    for p in (99.9, 90.0, 100.0):
        scales = measure_scales(model, ["2", "3.1"], [x[:100], (x[100:], None)], percentile=p)
        assert scales["2"] == pytest.approx(float(np.percentile(z1.detach().numpy(), p)),
                                            rel=1e-6)
        assert scales["3.1"] == pytest.approx(float(np.percentile(z2.detach().numpy(), p)),
                                              rel=1e-6)


def test_weights_follow_the_equations_producer_over_lambda_consumer_times_lambda():
    model = _mlp()
    x = torch.randn(300, 20)
    scales = measure_scales(model, ["2", "3.1"], [x])
    l1, l2 = scales["2"], scales["3.1"]
    sharp = sharpen(model, x, calibration=[x])
    torch.testing.assert_close(sharp[1].weight, model[1].weight / l1)
    torch.testing.assert_close(sharp[1].bias, model[1].bias / l1)
    torch.testing.assert_close(sharp[3][0].weight, model[3][0].weight * l1 / l2)
    torch.testing.assert_close(sharp[3][0].bias, model[3][0].bias / l2)
    torch.testing.assert_close(sharp[4].weight, model[4].weight * l2)
    torch.testing.assert_close(sharp[4].bias, model[4].bias)
    # and the network is clip(z / lambda, 0, 1) at sharpness 0, layer by layer
    with torch.no_grad():
        h1 = brelu(model[1](x) / l1, 0.0)
        h2 = brelu(model[3][0](h1 * l1) / l2, 0.0)
        torch.testing.assert_close(sharp(x), model[4](h2 * l2), rtol=1e-5, atol=1e-5)


def test_with_the_maximum_as_lambda_the_network_is_unchanged_up_to_the_brelu_slope():
    """p = 100 on the evaluated data clips nothing: the only difference is bReLU's slope
    1 / 1.001 at sharpness 0 (and its clip at 1 exactly at the maximum)."""
    model = _mlp()
    x = torch.randn(300, 20)
    sharp = sharpen(model, x, calibration=[x], percentile=100.0)
    with torch.no_grad():
        assert _relative_error(sharp(x), model(x)) < 3e-3


def test_cnn_batchnorm_pooling_flatten_dropout_are_scaled_through():
    model = _cnn()
    x = torch.rand(200, 1, 14, 14)
    sites = plan_sites(model, lambda m: activation_rule(m) is not None)
    assert [(s.name, s.producer, s.consumers) for s in sites] == [
        ("2", "1", ["4"]), ("5", "4", ["7"]), ("11", "10", ["12"])]
    sharp = sharpen(model, x, calibration=[x], percentile=100.0)
    scales = measure_scales(model, ["2", "5", "11"], [x], percentile=100.0,
                            ceilings={"5": 6.0, "11": 3.0})
    # BatchNorm producer: its affine over lambda; BatchNorm consumer: statistics and eps
    torch.testing.assert_close(sharp[1].weight, model[1].weight / scales["2"])
    torch.testing.assert_close(sharp[0].weight, model[0].weight)  # the conv before BN
    torch.testing.assert_close(sharp[7].running_mean, model[7].running_mean / scales["5"])
    torch.testing.assert_close(sharp[7].running_var, model[7].running_var / scales["5"] ** 2)
    assert sharp[7].eps == pytest.approx(model[7].eps / scales["5"] ** 2)
    with torch.no_grad():
        assert _relative_error(sharp(x), model(x)) < 3e-3


def test_percentile_clips_the_top_of_the_range_and_the_threshold_sits_in_it():
    model = _mlp()
    x = torch.randn(1000, 20)
    sharp = sharpen(model, x, calibration=[x], percentile=99.0)
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_pre_hook(lambda _m, a: seen.append(a[0]))
             for m in sharp.modules() if isinstance(m, SpikingBReLU)]
    with torch.no_grad():
        sharp(x)
    for h in hooks:
        h.remove()
    for z in seen:
        assert float((z > 1.0).float().mean()) == pytest.approx(0.01, abs=2e-3)
        above = float((z >= 0.5).float().mean())
        assert 0.01 < above < 0.99


def test_calibration_none_swaps_without_rescaling():
    model = _mlp()
    x = torch.rand(8, 20)
    sharp = sharpen(model, x)
    torch.testing.assert_close(sharp[1].weight, model[1].weight)
    assert isinstance(sharp[2], SpikingBReLU)


def test_training_mode_is_kept_and_batchnorm_statistics_are_not_updated_by_calibration():
    model = _cnn().train()
    x = torch.rand(50, 1, 14, 14)
    sharp = sharpen(model, x[:2], calibration=[x], percentile=100.0)
    assert sharp.training and model.training
    assert int(sharp[1].num_batches_tracked) == int(model[1].num_batches_tracked)


# ---------------------------------------------------------------- torch.fx models, refusals


class _Net(nn.Module):
    """A non-Sequential model: functional flatten, pooling and view between layers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.act1 = nn.ReLU()
        self.fc = nn.Linear(4 * 3 * 3, 10)
        self.act2 = nn.ReLU()
        self.out = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.max_pool2d(self.act1(self.conv(x)), 2)
        h = self.act2(self.fc(h.view(h.size(0), -1)))
        return self.out(h)


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 6)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)) + x)


def test_a_traceable_custom_module_is_calibrated_through_fx():
    torch.manual_seed(0)
    model = _Net().eval()
    x = torch.rand(100, 1, 8, 8)
    sharp = sharpen(model, x, calibration=[x], percentile=100.0)
    assert isinstance(sharp.act1, SpikingBReLU) and isinstance(sharp.act2, SpikingBReLU)
    assert isinstance(model.act1, nn.ReLU)
    with torch.no_grad():
        assert _relative_error(sharp(x), model(x)) < 3e-3


def test_a_residual_add_is_refused_naming_the_node():
    with pytest.raises(SharpenError, match=r"activation 'act'.*'add'.*residual"):
        sharpen(_Residual(), torch.rand(2, 6), calibration=[torch.rand(8, 6)])


def test_an_activation_on_the_model_input_is_refused():
    model = nn.Sequential(nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(SharpenError, match="producer is the model input"):
        sharpen(model, torch.rand(2, 4))


def test_a_producer_feeding_two_branches_is_refused():
    class Fork(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.act = nn.ReLU()
            self.out = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc(x)
            return self.out(torch.cat([self.act(h), h], dim=1))

    with pytest.raises(SharpenError, match=r"'fc' \(Linear\) also feeds"):
        sharpen(Fork(), torch.rand(2, 4))


def test_a_shared_activation_module_is_refused():
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)
            self.relu = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c(self.relu(self.b(self.relu(self.a(x)))))

    with pytest.raises(SharpenError, match="'relu' is called at 2 places"):
        sharpen(Shared(), torch.rand(2, 4))


def test_untraceable_forward_is_refused_with_the_reason():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.act = nn.Linear(4, 4), nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc(x)
            return self.act(h) if h.sum() > 0 else h

    with pytest.raises(SharpenError, match="torch.fx cannot trace Branchy"):
        sharpen(Branchy(), torch.rand(2, 4))


def test_no_activation_and_dead_layers_and_bad_percentiles_are_refused():
    x = torch.rand(16, 4)
    with pytest.raises(SharpenError, match="no activation to swap"):
        sharpen(nn.Sequential(nn.Linear(4, 2), nn.Tanh()), x)
    dead = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        dead[0].weight.zero_()
        dead[0].bias.fill_(-1.0)
    with pytest.raises(SharpenError, match="activation '1'.*never fires"):
        sharpen(dead, x, calibration=[x])
    with pytest.raises(SharpenError, match="percentile must lie in"):
        sharpen(_mlp(), torch.rand(4, 20), calibration=[torch.rand(4, 20)], percentile=0.0)
    with pytest.raises(SharpenError, match="no batch"):
        sharpen(_mlp(), torch.rand(4, 20), calibration=[])
    with pytest.raises(SharpenError, match=r"\(x, y\) pairs"):
        sharpen(_mlp(), torch.rand(4, 20), calibration=["not a batch"])


def test_a_final_activation_feeding_the_decode_becomes_the_population():
    """The plain preset's shape: ... -> Linear(W) -> ReLU -> SoftmaxDecode. The last
    activation has no consumer; its population is scaled into [0, 1] and, with codes of
    equal size, the decoded class is unchanged."""
    torch.manual_seed(0)
    key = key_generator(5, 20, seed=0)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 20), nn.ReLU(),
                          SoftmaxDecode(key)).eval()
    x = torch.randn(200, 10)
    sites = plan_sites(model, lambda m: activation_rule(m) is not None)
    assert sites[-1].consumers == [] and sites[-1].output
    sharp = sharpen(model, x, calibration=[x], percentile=100.0)
    with torch.no_grad():
        assert torch.equal(sharp(x).argmax(1), model(x).argmax(1))


# ---------------------------------------------------------------- the head


def test_population_head_replaces_the_final_linear_with_new_seeded_weights():
    model = _mlp()
    x = torch.randn(64, 20)
    sharp = sharpen(model, x, calibration=[x], classes=5, width=40, seed=3)
    head = sharp[4]
    assert isinstance(head, nn.Sequential)
    assert [type(m) for m in head] == [nn.Linear, SpikingBReLU, SoftmaxDecode]
    assert (head[0].in_features, head[0].out_features) == (12, 40)
    torch.testing.assert_close(head[2].key, key_generator(5, 40, seed=3))
    again = sharpen(model, x, calibration=[x], classes=5, width=40, seed=3)
    torch.testing.assert_close(again[4][0].weight, head[0].weight)
    other = sharpen(model, x, calibration=[x], classes=5, width=40, seed=4)
    assert not torch.equal(other[4][0].weight, head[0].weight)
    assert sharp(x).shape == (64, 5)
    assert ws.sharpening.sharpenable_layers(sharp)[-1] is head[1]


def test_head_refusals_name_the_problem():
    x = torch.randn(8, 20)
    with pytest.raises(SharpenError, match="both classes and width"):
        sharpen(_mlp(), x, classes=5)
    with pytest.raises(SharpenError, match="has 5 outputs, but classes=10"):
        sharpen(_mlp(), x, classes=10, width=40)
    with pytest.raises(SharpenError, match="width >= classes"):
        sharpen(_mlp(), x, classes=5, width=3)
    plain = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 20), nn.ReLU(),
                          SoftmaxDecode(key_generator(5, 20, seed=0)))
    with pytest.raises(SharpenError, match=r"'2' \(Linear\), is followed by 3"):
        sharpen(plain, x, classes=5, width=20)
    conv_last = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 3, 1))
    with pytest.raises(SharpenError, match="is a Conv2d"):
        sharpen(conv_last, torch.rand(2, 1, 5, 5), classes=3, width=6)


def test_the_readme_usage_trains_to_binary_and_converts():
    """README "From a trained ReLU network": sharpen with a head and a surrogate, fit with a
    scheduled sharpener until binary, convert; the spiking network equals the torch model."""
    from whetstone.data import ArrayLoader

    torch.manual_seed(0)
    x, y = torch.rand(256, 20), torch.randint(0, 5, (256,))
    loader = ArrayLoader(x, y, 64, shuffle=True, seed=0)
    sharp = ws.sharpen(_mlp(), x[:4], calibration=loader, classes=5, width=20,
                       surrogate=ws.nn.StraightThrough())
    ws.training.fit(sharp, loader, epochs=3, progress=False,
                    optimizer=torch.optim.Adam(sharp.parameters(), lr=1e-3),
                    sharpener=ws.sharpening.ScheduledSharpener(start=0, duration=1))
    assert ws.sharpening.is_fully_sharp(sharp)
    net = ws.conversion.to_spiking(sharp.eval(), x[:4])
    with torch.no_grad():
        expected = sharp(x).argmax(1).numpy()
    assert np.array_equal(ws.runtime.predict(net, x.numpy()), expected)


def test_indexing_an_activation_is_a_use_that_is_refused():
    class Index(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.act, self.out = nn.Linear(4, 4), nn.ReLU(), nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.act(self.fc(x))[:, :2])

    with pytest.raises(SharpenError, match="activation 'act'.*'getitem'"):
        sharpen(Index(), torch.rand(2, 4))


def test_inplace_head_refusal_leaves_the_model_unchanged():
    model = _mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(32, 20)
    with pytest.raises(SharpenError, match="classes=10"):
        sharpen(model, x, calibration=[x], classes=10, width=40, inplace=True)
    assert isinstance(model[2], nn.ReLU)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_large_batches_are_subsampled_and_the_percentile_stays_close():
    from whetstone.sharpening import calibration

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1)).eval()
    x = torch.randn(64, 1, 32, 32)  # 524,288 values per batch at the ReLU
    exact = float(np.percentile(model[0](x).detach().numpy(), 99.0))
    assert model[0](x).numel() > calibration.SAMPLES_PER_BATCH
    scale = measure_scales(model, ["1"], [x], percentile=99.0)["1"]
    assert scale == pytest.approx(exact, rel=0.02)
    assert measure_scales(model, ["1"], [x], percentile=99.0)["1"] == scale  # seeded
