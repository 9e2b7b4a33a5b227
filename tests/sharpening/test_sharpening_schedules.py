"""The schedules' step sequences, both modes, and exact resumption from state_dict."""

import json

import pytest
import torch

import whetstone as ws
from whetstone.sharpening import (
    AdaptiveSharpener,
    ScheduledSharpener,
    SimpleSharpener,
    StepSharpener,
    get_layer_sharpness,
)


def model(n_layers=3):
    layers = []
    for _ in range(n_layers):
        layers += [torch.nn.Linear(2, 2), ws.nn.SpikingBReLU()]
    return torch.nn.Sequential(*layers)


def drive(sharpener, net, epochs, steps_per_epoch, losses=None, record_batches=False):
    """Run the hooks like a training loop; record per-layer sharpness after each epoch."""
    out = []
    sharpener.on_train_begin(net, steps_per_epoch=steps_per_epoch)
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            sharpener.on_batch_end(net)
            if record_batches:
                out.append(get_layer_sharpness(net))
        sharpener.on_epoch_end(net, epoch, None if losses is None else losses[epoch])
        if not record_batches:
            out.append(get_layer_sharpness(net))
    return out


def test_simple_epoch_mode_sequence():
    net = model(3)
    seq = drive(SimpleSharpener(start_epoch=5, steps=5), net, 21, 4)
    assert seq[4] == [0.0, 0.0, 0.0]  # nothing before the end of epoch 5
    assert seq[5] == pytest.approx([0.2, 0.0, 0.0])
    assert seq[9] == [1.0, 0.0, 0.0]
    assert seq[10] == pytest.approx([1.0, 0.2, 0.0])
    assert seq[14] == [1.0, 1.0, 0.0]
    assert seq[18] == pytest.approx([1.0, 1.0, 0.8])
    assert seq[19] == [1.0, 1.0, 1.0]
    assert seq[20] == [1.0, 1.0, 1.0]


def test_simple_uniform_and_done():
    net = model(2)
    sharpener = SimpleSharpener(start_epoch=0, steps=4, bottom_up=False)
    seq = drive(sharpener, net, 5, 3)
    assert [s[0] for s in seq] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert sharpener.done


def test_simple_batch_mode_matches_epoch_mode_at_epoch_ends_and_is_smooth():
    a, b = model(3), model(3)
    by_epoch = drive(SimpleSharpener(start_epoch=2, steps=2), a, 10, 5)
    by_batch = drive(SimpleSharpener(start_epoch=2, steps=2, mode="batch"), b, 10, 5,
                     record_batches=True)
    ends = [by_batch[5 * e + 4] for e in range(10)]
    assert [v for row in ends for v in row] == pytest.approx([v for row in by_epoch for v in row])
    means = [sum(s) for s in by_batch]
    assert all(x <= y for x, y in zip(means, means[1:], strict=False))
    assert by_batch[10] == pytest.approx([0.1, 0.0, 0.0])  # first batch of start_epoch


def test_batch_mode_needs_steps_per_epoch():
    net = model(2)
    sharpener = SimpleSharpener(start_epoch=0, mode="batch")
    sharpener.on_train_begin(net)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        sharpener.on_batch_end(net)


def test_scheduled_windows():
    net = model(2)
    seq = drive(ScheduledSharpener(start=2, duration=2, intermission=1), net, 8, 4,
                record_batches=True)
    # layer 0: epochs [2, 4); layer 1: [5, 7)
    assert seq[7] == [0.0, 0.0]  # end of epoch 1
    assert seq[8] == pytest.approx([0.125, 0.0])  # first batch of epoch 2
    assert seq[15] == [1.0, 0.0]  # end of epoch 3
    assert seq[19] == [1.0, 0.0]  # intermission (epoch 4)
    assert seq[21] == pytest.approx([1.0, 0.25])
    assert seq[27] == [1.0, 1.0]


def test_scheduled_fractional_windows_end_exactly_at_one():
    net = model(8)
    sharpener = ScheduledSharpener(start=1.0, duration=0.4, intermission=0.0)
    seq = drive(sharpener, net, 5, 7, record_batches=True)
    ends = [seq[7 * e + 6] for e in range(5)]
    assert ends[2][:5] == [1.0] * 5  # layer 4 ends at epoch 3.0 exactly, not 0.9999999
    assert seq[-1] == [1.0] * 8 and sharpener.done


def test_scheduled_epoch_mode():
    net = model(2)
    seq = drive(ScheduledSharpener(start=1, duration=2, intermission=0, mode="epoch"), net, 6, 3)
    assert seq == [[0, 0], [0.5, 0], [1, 0], [1, 0.5], [1, 1], [1, 1]]


def test_adaptive_waits_sharpens_on_plateau_and_pauses_on_degradation():
    net = model(2)
    sharpener = AdaptiveSharpener(min_init_epochs=3, rate=0.5, cz_rate=0.25, critical=0.75)
    # improving fast, then a plateau (epochs 2, 3), then sharpening from epoch 4
    losses = [1.0, 0.5, 0.49, 0.48, 0.47, 0.47, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    seq = drive(sharpener, net, len(losses), 4, losses=losses)
    assert seq[3] == [0.0, 0.0]  # plateau for more than `patience` epochs: switches on now
    assert seq[4] == pytest.approx([0.5, 0.0])  # one epoch at rate 0.5
    # epoch 5: 0.5 -> 0.875 at rate 0.5 (three batches; 0.75 is not above critical),
    # then one batch at cz_rate
    assert seq[5][0] == pytest.approx(0.875 + 0.25 / 4)
    # the loss jumped 0.47 -> 0.9 (> 15 %) at epoch 6: paused at the end of it
    paused = seq[6]
    assert paused == [1.0, 0.0]
    assert seq[7] == paused and seq[8] == paused  # paused through epochs 7 and 8
    assert seq[9][1] > 0.0  # a new plateau for more than `patience` epochs: resumed


def test_adaptive_reaches_one_and_snaps():
    net = model(2)
    sharpener = AdaptiveSharpener(min_init_epochs=1, patience=0)
    seq = drive(sharpener, net, 40, 10, losses=[0.5] * 40)
    assert seq[-1] == [1.0, 1.0]
    assert sharpener.done
    # a finished layer makes the next wait for the next epoch
    first_full = next(i for i, s in enumerate(seq) if s[0] == 1.0)
    assert seq[first_full][1] == 0.0


def test_adaptive_guards_relative_change_near_zero():
    sharpener = AdaptiveSharpener(loss_floor=1e-3)
    sharpener.reference = 0.0
    assert sharpener.relative_change(1e-4) == pytest.approx(0.1)


def test_step_sharpener():
    net = model(2)
    sharpener = StepSharpener(start_step=10, layer_duration=5)
    sharpener.on_train_begin(net)
    for _ in range(15):
        sharpener.on_step(net)
    assert get_layer_sharpness(net) == [1.0, 0.0]
    sharpener.on_step(net, 5)
    assert sharpener.done


@pytest.mark.parametrize(
    "make",
    [
        lambda: SimpleSharpener(start_epoch=1, steps=3, mode="batch"),
        lambda: ScheduledSharpener(start=1, duration=2, intermission=1),
        lambda: AdaptiveSharpener(min_init_epochs=2, patience=0),
    ],
)
def test_resume_from_state_dict_continues_exactly(make):
    losses = [1.0, 0.9, 0.89, 0.88, 0.87, 0.86, 0.85, 0.84, 0.84, 0.84, 0.84, 0.84]
    full_net = model(3)
    full = drive(make(), full_net, 12, 5, losses=losses, record_batches=True)

    net = model(3)
    first = make()
    first.on_train_begin(net, steps_per_epoch=5)
    seq = []
    for epoch in range(6):
        for _ in range(5):
            first.on_batch_end(net)
            seq.append(get_layer_sharpness(net))
        first.on_epoch_end(net, epoch, losses[epoch])
    state = json.loads(json.dumps(first.state_dict()))  # JSON-serialisable
    resumed_net = model(3)
    resumed_net.load_state_dict(net.state_dict())
    second = make()
    second.load_state_dict(state)
    second.on_train_begin(resumed_net, steps_per_epoch=5)
    for epoch in range(6, 12):
        for _ in range(5):
            second.on_batch_end(resumed_net)
            seq.append(get_layer_sharpness(resumed_net))
        second.on_epoch_end(resumed_net, epoch, losses[epoch])
    assert seq == full


def test_per_batch_hook_writes_only_the_moving_layer_and_buffers_follow():
    """Bottom-up per-batch sharpening moves one layer at a time; the others' buffers are not
    rewritten, and every buffer (what state_dict saves) equals the value forward reads."""
    net = model(3)
    layers = [m for m in net if isinstance(m, ws.nn.SpikingBReLU)]
    sharpener = SimpleSharpener(start_epoch=0, steps=2, mode="batch")
    sharpener.on_train_begin(net, steps_per_epoch=4)
    sharpener.ticks = 10
    sharpener.on_batch_end(net)  # m = 11 / 24: layer 0 done, layer 1 at 0.375, layer 2 at 0
    versions = [layer._sharpness._version for layer in layers]
    sharpener.on_batch_end(net)  # m = 12 / 24: layer 1 moves to 0.5
    assert get_layer_sharpness(net) == [1.0, 0.5, 0.0]
    assert ([layer._sharpness._version - v for layer, v in zip(layers, versions, strict=True)]
            == [0, 1, 0])
    assert [layer._sharpness.item() for layer in layers] == [1.0, 0.5, 0.0]
