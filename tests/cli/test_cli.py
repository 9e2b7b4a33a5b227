"""The whetstone command: train, evaluate, presets, errors."""

import json

import numpy as np
import pytest

from whetstone.cli.main import main


def test_presets_lists_every_preset(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("mnist-dense", "mnist-cnn", "fashion-cnn", "fashion-dense"):
        assert name in out


def test_help_for_every_command(capsys):
    for command in ("train", "evaluate", "presets", "fetch"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0


def test_train_then_evaluate(tmp_path, capsys, mnist_ready):
    out = tmp_path / "run"
    toml = tmp_path / "quick.toml"
    toml.write_text('finetune_epochs = 0\n'
                    '[schedule]\nname = "simple"\nstart_epoch = 0\nsteps = 1\n')
    code = main(["train", "--preset", "mnist-dense", "--config", str(toml), "--epochs", "3",
                 "--train-limit", "2000", "--test-limit", "500", "--seed", "3", "--out", str(out),
                 "--no-progress", "--no-plot", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["seed"] == 3 and summary["epochs"] == 3
    config = json.loads((out / "config.json").read_text())
    assert config["schedule"] == {"name": "simple", "mode": "batch", "start_epoch": 0, "steps": 1}
    assert main(["evaluate", str(out), "--limit", "500", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy_binary"] == pytest.approx(summary["test_accuracy_binary"])
    # the converted network of threshold neurons predicts exactly like the torch model
    assert result["spiking_agreement"] == 1.0
    assert result["accuracy_spiking"] == pytest.approx(result["accuracy_binary"])


def test_errors_exit_with_a_message(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err
    assert main(["train", "--preset", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_spiking_commands_on_a_trained_run(tmp_path, capsys, mnist_ready):
    out = tmp_path / "run"
    toml = tmp_path / "quick.toml"
    toml.write_text('finetune_epochs = 0\naugment = "none"\n'
                    '[schedule]\nname = "simple"\nstart_epoch = 0\nsteps = 1\n')
    assert main(["train", "--preset", "mnist-dense", "--config", str(toml), "--epochs", "3",
                 "--train-limit", "2000", "--test-limit", "300", "--out", str(out),
                 "--no-progress", "--no-plot", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)

    assert main(["convert", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["layers"][-1] == "Decode"
    assert (out / "spiking.npz").is_file()

    assert main(["simulate", str(out), "--limit", "300", "--json"]) == 0
    sim = json.loads(capsys.readouterr().out)
    assert sim["accuracy"] == pytest.approx(summary["test_accuracy_binary"])

    assert main(["stats", str(out), "--limit", "300", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert 0.0 < stats["total"]["density_mean"] < 1.0
    assert (out / "stats.png").is_file() and (out / "stats.json").is_file()

    assert main(["quantize", str(out), "--bits", "8", "16", "--limit", "300", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rows"][1]["agreement"] >= 0.99
    # the integer networks, written into the run folder and scored on the uint8 pixels
    from whetstone.quantization import integer_inputs
    from whetstone.runs import load_split
    from whetstone.runtime import SpikingNetwork as Net
    from whetstone.runtime import run as run_net

    for row in result["integer"]:
        path = out / f"spiking-int{row['bits']}.npz"
        assert row["file"] == str(path) and path.is_file()
        inet = Net.load(path)
        assert inet.is_integer
        assert row["weight_dtype"] == ("int8" if row["bits"] == 8 else "int16")
        test = load_split("mnist", "test", limit=300)
        pred = run_net(inet, integer_inputs(test.x.numpy())).argmax(1)
        assert row["accuracy"] == pytest.approx(float((pred == test.y.numpy()).mean()))
        assert abs(row["accuracy"] - result["rows"][1]["reference_accuracy"]) <= 0.02

    pytest.importorskip("nir", reason="the nir extra is not installed")
    assert main(["export", str(out), "--nir", str(tmp_path / "m.nir"), "--json"]) == 0
    capsys.readouterr()
    from whetstone.export import from_nir
    from whetstone.runtime import SpikingNetwork, predict

    x = np.random.default_rng(0).random((50, 1, 28, 28))
    ours = SpikingNetwork.load(out / "spiking.npz")
    assert (predict(from_nir(tmp_path / "m.nir"), x) == predict(ours, x)).all()


def test_train_options_override_the_optimizer():
    from whetstone.cli.main import _config_from_args, build_parser

    args = build_parser().parse_args(["train", "--preset", "mnist-dense", "--optimizer", "sgd",
                                      "--lr", "0.02", "--clip-grad-norm", "2.5"])
    assert _config_from_args(args).optimizer == {"name": "sgd", "lr": 0.02, "clip_grad_norm": 2.5}


def test_train_precision_flag_sets_the_config():
    from whetstone.cli.main import _config_from_args, build_parser

    parse = build_parser().parse_args
    assert _config_from_args(parse(["train", "--preset", "mnist-cnn"])).precision == "float32"
    config = _config_from_args(parse(["train", "--preset", "mnist-cnn", "--precision", "bf16"]))
    assert config.precision == "bf16"
    with pytest.raises(SystemExit):
        parse(["train", "--preset", "mnist-cnn", "--precision", "fp16"])


def test_user_errors_end_in_one_line(tmp_path, capsys, mnist_ready):
    toml = tmp_path / "typo.toml"
    toml.write_text('preset = "mnist-dense"\n[optimizer]\nname = "adam"\nlearning_rate = 0.1\n')
    code = main(["train", "--config", str(toml), "--train-limit", "256", "--test-limit", "64",
                 "--no-progress", "--no-plot", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "learning_rate" in err and "Traceback" not in err
