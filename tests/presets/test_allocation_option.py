"""``schedule.allocation = "uniform"``: a schedule's model sharpness spread evenly over layers."""

import pytest

import whetstone as ws
from whetstone.presets import build_model, build_sharpener, get_preset
from whetstone.presets.build import UniformAllocation
from whetstone.sharpening import get_layer_sharpness

STEPS_PER_EPOCH = 4
EPOCHS = 5
SCHEDULES = [
    {"name": "simple", "start_epoch": 1, "steps": 1, "mode": "batch"},
    {"name": "scheduled", "start": 0.5, "duration": 0.75, "intermission": 0.25},
]


def _trace(schedule: dict) -> tuple[list[list[float]], list[bool]]:
    """Per-layer sharpness and ``done`` after every batch of a short run without training."""
    config = get_preset("mnist-dense").merged({"schedule": schedule})
    model = build_model(config)
    sharpener = build_sharpener(config)
    sharpener.on_train_begin(model, steps_per_epoch=STEPS_PER_EPOCH)
    values, done = [], []
    for epoch in range(EPOCHS):
        for _ in range(STEPS_PER_EPOCH):
            sharpener.on_batch_end(model)
            values.append(get_layer_sharpness(model))
            done.append(sharpener.done)
        sharpener.on_epoch_end(model, epoch, 1.0)
    return values, done


@pytest.mark.parametrize("schedule", SCHEDULES, ids=[s["name"] for s in SCHEDULES])
def test_uniform_gives_every_layer_the_bottom_up_model_sharpness(schedule):
    bottom_up, done_bottom_up = _trace(schedule)
    uniform, done_uniform = _trace({**schedule, "allocation": "uniform"})
    for ref, got in zip(bottom_up, uniform, strict=True):
        assert got == pytest.approx([sum(ref) / len(ref)] * len(ref))
    assert done_uniform == done_bottom_up
    assert uniform[-1] == [1.0] * len(uniform[-1])
    assert any(0.0 < v[0] < 1.0 for v in uniform)  # layers really moved together


def test_allocation_option_builds_and_validates():
    config = get_preset("mnist-dense").merged(
        {"schedule": {"name": "adaptive", "allocation": "uniform"}})
    sharpener = build_sharpener(config)
    assert isinstance(sharpener, UniformAllocation)
    assert isinstance(sharpener.inner, ws.sharpening.AdaptiveSharpener)
    assert sharpener.config()["allocation"] == "uniform"
    explicit = get_preset("mnist-dense").merged({"schedule": {"allocation": "bottom-up"}})
    assert isinstance(build_sharpener(explicit), ws.sharpening.SimpleSharpener)
    with pytest.raises(ValueError, match="allocation"):
        build_sharpener(get_preset("mnist-dense").merged({"schedule": {"allocation": "top"}}))


def test_uniform_state_round_trip():
    config = get_preset("mnist-dense").merged({"schedule": {**SCHEDULES[1],
                                                            "allocation": "uniform"}})
    model = build_model(config)
    first = build_sharpener(config)
    first.on_train_begin(model, steps_per_epoch=STEPS_PER_EPOCH)
    for _ in range(3):
        first.on_batch_end(model)
    second = build_sharpener(config)
    second.load_state_dict(first.state_dict())
    second.on_train_begin(model, steps_per_epoch=STEPS_PER_EPOCH)
    first.on_batch_end(model)
    expected = get_layer_sharpness(model)
    second.on_batch_end(model)
    assert get_layer_sharpness(model) == pytest.approx(expected)
