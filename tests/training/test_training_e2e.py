"""End to end on real MNIST: train, sharpen every layer to 1, and clear a stated accuracy bar."""

import pytest

import whetstone as ws

# Stated bar for this short run (20,000 training images, 8 epochs, compressed schedule):
# the fully binary network (every activation a step) must classify 5,000 real MNIST test
# digits at 92 % or better (measured on the 2-core CPU machine, seed 0: 93.5 %). Chance is 10 %;
# a network whose sharpening or straight-through fine-tuning broke lands far below.
BINARY_ACCURACY_BAR = 0.92


@pytest.mark.slow
def test_short_training_on_real_mnist_is_fully_binary_and_accurate(mnist_ready, tmp_path):
    # the preset's recipe, compressed: sharpen bottom-up over epochs 0-2 (per batch), then
    # fine-tune the binary network with the straight-through gradient
    config = ws.presets.get_preset("mnist-dense").merged({
        "epochs": 4, "finetune_epochs": 4,
        "schedule": {"name": "simple", "start_epoch": 0, "steps": 1},
    })
    summary = ws.runs.train_run(config, tmp_path / "run", progress=False, train_limit=20_000,
                                test_limit=5_000, plot=False)
    assert summary["fully_sharp"]
    assert summary["final_sharpness"] == [1.0, 1.0, 1.0]
    print(f"fully binary accuracy on 5,000 MNIST test images: {summary['test_accuracy_binary']}")
    assert summary["test_accuracy_binary"] >= BINARY_ACCURACY_BAR
