"""The training loop on generated data: records, log file, hooks, errors, resumption."""

import json

import pytest
import torch

import whetstone as ws
from whetstone.data import ArrayLoader


def blobs(n=512, seed=0):
    """Two well separated Gaussian blobs in 8 dimensions (an easy, generated problem)."""
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


def test_fit_records_every_field_and_writes_metrics(tmp_path):
    x, y = blobs()
    model = small_model()
    sharpener = ws.sharpening.SimpleSharpener(start_epoch=1, steps=1)
    history = ws.training.fit(
        model, ArrayLoader(x, y, 64, shuffle=True), epochs=4,
        optimizer=torch.optim.Adam(model.parameters(), 1e-2), sharpener=sharpener,
        val_loader=ArrayLoader(x, y, 256), run_dir=tmp_path, progress=False,
    )
    assert len(history) == 4
    assert history[0].sharpness == [0.0, 0.0]
    assert history[1].sharpness == [1.0, 0.0]
    assert history[2].sharpness == [1.0, 1.0]
    assert sharpener.done
    last = history[-1]
    assert last.val_accuracy == last.val_accuracy_binary
    assert last.val_accuracy_binary > 0.95
    assert last.epoch_time > 0
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1, 2, 3]
    assert ws.training.History.read_jsonl(tmp_path / "metrics.jsonl")[-1] == last


def test_binary_accuracy_is_measured_on_a_sharpened_copy_and_model_restored():
    x, y = blobs()
    model = small_model()
    history = ws.training.fit(model, ArrayLoader(x, y, 64), 1,
                              torch.optim.Adam(model.parameters(), 1e-2),
                              val_loader=ArrayLoader(x, y, 256), progress=False)
    assert ws.sharpening.get_layer_sharpness(model) == [0.0, 0.0]
    with ws.sharpening.fully_sharpened(model):
        assert ws.training.evaluate(model, ArrayLoader(x, y, 256)) == history[0].val_accuracy_binary


def test_nan_loss_is_a_clear_error():
    x, y = blobs()
    x[3, 0] = float("nan")
    model = small_model()
    with pytest.raises(ws.training.TrainingError, match="loss is nan"):
        ws.training.fit(model, ArrayLoader(x, y, 512), 1,
                        torch.optim.SGD(model.parameters(), 0.1), progress=False)


def test_straight_through_lets_a_fully_sharp_network_learn():
    x, y = blobs()
    model = small_model()
    for layer in ws.sharpening.sharpenable_layers(model):
        layer.sharpness = 1.0
        layer.surrogate = ws.nn.StraightThrough()
    before = [p.clone() for p in model.parameters()]
    ws.training.fit(model, ArrayLoader(x, y, 64), 1, torch.optim.Adam(model.parameters(), 1e-2),
                    progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_resume_continues_like_an_uninterrupted_run(tmp_path):
    x, y = blobs()

    def make():
        model = small_model()
        opt = torch.optim.Adam(model.parameters(), 1e-2)
        return model, opt, ws.sharpening.SimpleSharpener(start_epoch=1, steps=2, mode="batch")

    model, opt, sh = make()
    full = ws.training.fit(model, ArrayLoader(x, y, 64, shuffle=True, seed=1), 5, opt,
                           sharpener=sh, progress=False)

    model2, opt2, sh2 = make()
    loader = ArrayLoader(x, y, 64, shuffle=True, seed=1)
    ws.training.fit(model2, loader, 2, opt2, sharpener=sh2, progress=False)
    state = (model2.state_dict(), opt2.state_dict(), json.loads(json.dumps(sh2.state_dict())))
    model3, opt3, sh3 = make()
    model3.load_state_dict(state[0])
    opt3.load_state_dict(state[1])
    sh3.load_state_dict(state[2])
    rest = ws.training.fit(model3, loader, 5, opt3, sharpener=sh3, progress=False, start_epoch=2)
    assert [r.sharpness for r in rest] == [r.sharpness for r in full[2:]]
    assert rest[-1].train_loss == pytest.approx(full[-1].train_loss, rel=1e-6)


def test_evaluate_runs_without_tf32_and_restores_the_flags():
    """A binary network's predictions hang on the threshold: evaluation is full float32."""
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
            return torch.zeros(len(x), 2)

    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        loader = [(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))]
        assert ws.training.evaluate(Probe(), loader) == 1.0
        assert seen == [(False, False)]
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


class _GradNormRecorder(torch.optim.SGD):
    """SGD that records the L2 norm of the whole gradient it is asked to apply."""

    def __init__(self, params, lr):
        super().__init__(params, lr)
        self.norms = []

    def step(self, closure=None):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))))
        return super().step(closure)


@pytest.mark.parametrize("bound", [None, 1e-3])
def test_clip_grad_norm_bounds_every_step(bound):
    x, y = blobs()
    model = small_model()
    for layer in ws.sharpening.sharpenable_layers(model):
        layer.sharpness = 0.99  # slope about 90: large gradients
    optimizer = _GradNormRecorder(model.parameters(), 0.01)
    ws.training.fit(model, ArrayLoader(x, y, 64), 1, optimizer, progress=False,
                    clip_grad_norm=bound)
    assert len(optimizer.norms) == 8
    if bound is None:
        assert max(optimizer.norms) > 1e-2  # unclipped gradients are far above the bound
    else:
        assert max(optimizer.norms) <= bound * (1 + 1e-5)


def test_clip_grad_norm_must_be_positive():
    model = small_model()
    with pytest.raises(ValueError, match="clip_grad_norm must be positive"):
        ws.training.fit(model, ArrayLoader(*blobs(), 64), 1,
                        torch.optim.SGD(model.parameters(), 0.1), progress=False,
                        clip_grad_norm=0.0)


def test_divergence_without_nan_stops_training():
    """Loss 10x the best epoch's with accuracy at chance is an error, before the epoch is
    recorded; a high loss with learning accuracy, or a first epoch, is not."""
    from whetstone.training.history import EpochRecord, History
    from whetstone.training.loop import TrainingError, check_divergence

    history = History([EpochRecord(0, 0.3, 0.9, None, None, [0.0], 1.0)])
    check_divergence(History(), 50.0, 0.1, 0.1, 0)  # nothing to compare with
    check_divergence(history, 50.0, 0.5, 0.1, 1)  # still learning
    check_divergence(history, 2.9, 0.1, 0.1, 1)  # under 10x
    with pytest.raises(TrainingError, match="diverged at epoch 1.*at chance"):
        check_divergence(history, 3.1, 0.1, 0.1, 1)
