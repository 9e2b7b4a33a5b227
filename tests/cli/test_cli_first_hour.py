"""A new user's first hour with the command line (issue 13): a schedule that cannot finish
within --epochs is scaled or refused up front, a run that ends not fully sharp says so, the
refusals name CLI flags, every command answers --json on a clean stdout, progress goes to
stderr (bars, or plain lines for batch logs), presets and stats read well."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from whetstone.cli import main as cli
from whetstone.cli.main import build_parser, main

QUICK = ["--train-limit", "600", "--test-limit", "100", "--augment", "none", "--no-plot"]
"""Tiny real-MNIST training: a few seconds per run."""


def _run_main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's errors
        return int(exc.code or 0)


def _copy(run: Path, tmp_path: Path) -> Path:
    """A private copy of a shared run folder (commands write spiking.npz, stats.json)."""
    return Path(shutil.copytree(run, tmp_path / "run"))


def _config(*argv: str) -> Any:
    """The configuration ``train`` would train for ``argv``, after the schedule check."""
    from whetstone.cli import schedule

    args = build_parser().parse_args(["train", *argv])
    return schedule.fit(cli._config_from_args(args), args)


# ------------------------------------------------------------- the schedule fits the epochs

def test_the_users_command_is_scaled_to_fit_and_ends_fully_sharp(tmp_path, capsys, mnist_ready):
    """``whetstone train --preset mnist-dense --epochs 3``: the preset's schedule needs 20
    epochs; it is compressed into 3 (one line says how), the 10 fine-tuning epochs follow,
    and the run ends fully sharp; the per-epoch lines of --progress log go to stderr, the
    summary JSON alone to stdout."""
    out = tmp_path / "run"
    code = main(["train", "--preset", "mnist-dense", "--epochs", "3", *QUICK, "--out", str(out),
                 "--progress", "log", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["fully_sharp"] and summary["warnings"] == []
    assert summary["final_sharpness"] == [1.0, 1.0, 1.0]
    assert summary["epochs"] == 13  # 3 of the sharpening phase, then 10 fine-tuning
    fit = summary["schedule_fit"]
    assert fit["action"] == "scaled" and fit["epochs"] == 3
    assert fit["was_window"] == [5.0, 20.0] and fit["window"][1] <= 3
    assert fit["was_schedule"] == {"start_epoch": 5, "steps": 5}
    assert json.loads((out / "config.json").read_text())["schedule"] == {
        "name": "simple", "mode": "batch", **fit["schedule"]}
    err = captured.err.splitlines()
    assert ("whetstone train: schedule scaled to fit 3 epochs: sharpening during epochs 1-3 "
            "(was 6-20); then 10 fine-tuning epochs at sharpness 1 (13 in all); "
            "--schedule-fit refuse refuses instead") in err
    epochs = [line for line in err if line.startswith("whetstone train: epoch ")]
    assert len(epochs) == 13 and epochs[-1].startswith("whetstone train: epoch 13/13 loss ")
    assert any(line.startswith("whetstone train: test split at final sharpness: done in")
               for line in err)
    assert "\r" not in captured.err  # log mode: no bars


def test_refuse_names_the_epochs_the_schedule_needs(tmp_path, capsys):
    """--schedule-fit refuse: one line, exit 2, before any data is read or anything written."""
    out = tmp_path / "run"
    code = _run_main(["train", "--preset", "mnist-dense", "--epochs", "3", "--schedule-fit",
                      "refuse", "--out", str(out), "--data-dir", str(tmp_path / "no-data")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("whetstone train: error: --epochs 3: the simple schedule sharpens "
                          "its 3 layers during epochs 6-20, so it needs --epochs 20 or more "
                          "(then 10 fine-tuning epochs, 30 in all); give --epochs 20, or "
                          "--schedule-fit scale"), err
    assert not out.exists() and not (tmp_path / "no-data").exists()


def test_a_schedule_that_fits_is_left_alone():
    config, fitted = _config("--preset", "mnist-dense", "--epochs", "20")
    assert fitted is None and config.schedule["start_epoch"] == 5
    config, fitted = _config("--preset", "mnist-cnn")  # 76 of its 77 epochs
    assert fitted is None and config.schedule["start"] == 30


def test_a_scheduled_schedule_scales_to_fractions_of_an_epoch(capsys):
    from whetstone.presets.build import sharpening_window

    config, fitted = _config("--preset", "mnist-cnn", "--epochs", "10")
    assert fitted is not None and fitted["was_window"] == [30.0, 76.0]
    window = sharpening_window(config)
    assert window is not None and 9.9 < window[1] <= 10
    assert 0 < config.schedule["duration"] < 1
    assert "schedule scaled to fit 10 epochs: sharpening during epochs 4-10 (was 31-76)" in \
        capsys.readouterr().err


def test_one_epoch_reads_as_one(capsys):
    config, fitted = _config("--preset", "mnist-cnn", "--epochs", "1")
    assert fitted is not None and fitted["window"][1] <= 1
    assert ("whetstone train: schedule scaled to fit 1 epoch: sharpening during epoch 1 (was "
            "31-76); --schedule-fit refuse refuses instead\n") == capsys.readouterr().err


def test_simple_cannot_fit_fewer_epochs_than_layers(capsys):
    with pytest.raises(ValueError, match=r"--epochs 2: the simple schedule sharpens 3 layers .*"
                                         r"give --epochs 3 or more, or --schedule scheduled"):
        _config("--preset", "mnist-dense", "--epochs", "2")
    config, fitted = _config("--preset", "mnist-dense", "--epochs", "2", "--schedule",
                             "scheduled")
    assert fitted is not None and config.schedule["name"] == "scheduled"


def test_sharpen_options_set_the_schedule_fields():
    config, fitted = _config("--preset", "mnist-dense", "--sharpen-start", "2",
                             "--sharpen-epochs", "3")
    assert fitted is None
    assert (config.schedule["start_epoch"], config.schedule["steps"]) == (2, 3)
    config, _ = _config("--preset", "mnist-dense", "--schedule", "scheduled",
                        "--sharpen-start", "0.5", "--sharpen-epochs", "0.25", "--epochs", "4")
    assert (config.schedule["start"], config.schedule["duration"]) == (0.5, 0.25)
    config, _ = _config("--preset", "mnist-dense", "--schedule", "adaptive",
                        "--sharpen-start", "7")
    assert config.schedule["min_init_epochs"] == 7


@pytest.mark.parametrize(("argv", "error"), [
    (["--sharpen-start", "10", "--epochs", "12"],
     r"--sharpen-start: the simple schedule sharpens its 3 layers during epochs 11-25, so it "
     r"needs --epochs 25 or more"),
    (["--sharpen-epochs", "9"], r"--sharpen-epochs: .* needs --epochs 32 or more"),
    (["--sharpen-start", "2.5"], r"--sharpen-start 2.5: the simple schedule counts whole epochs"),
    (["--schedule", "adaptive", "--sharpen-epochs", "2"],
     r"--sharpen-epochs: the schedule 'adaptive' sharpens at a pace set by the training loss"),
    (["--schedule", "none", "--sharpen-start", "1"],
     r"--sharpen-start: the schedule 'none' never sharpens"),
    (["--schedule", "scheduled", "--sharpen-epochs", "0"], r"--sharpen-epochs 0: each layer"),
    (["--sharpen-start", "-1"], r"argument --sharpen-start: must be a number of epochs >= 0"),
    (["--progress", "log", "--no-progress"], r"--no-progress and --progress log contradict"),
])
def test_schedule_and_progress_misuse_is_one_line(argv, error, tmp_path, capsys):
    out = tmp_path / "run"
    code = _run_main(["train", "--preset", "mnist-dense", *argv, "--out", str(out),
                      "--data-dir", str(tmp_path / "no-data")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("whetstone train") and re.search(error, err), err
    assert not out.exists()


def test_resume_refuses_the_schedule_options(capsys):
    assert _run_main(["train", "--resume", "runs/x", "--sharpen-start", "1",
                      "--schedule-fit", "refuse"]) == 2
    assert "drop --sharpen-start, --schedule-fit" in capsys.readouterr().err


# ---------------------------------------------------------------- a run that ended not sharp

def test_a_run_that_ends_not_fully_sharp_says_so_loudly(tmp_path, capsys, mnist_ready):
    """The adaptive schedule has no timetable to check up front; 2 epochs are too few for it
    to start, so the run ends at sharpness 0: a WARNING line in the text summary, and in
    --json ``fully_sharp: false``, ``warnings`` and the WARNING on stderr."""
    base = ["train", "--preset", "mnist-dense", "--schedule", "adaptive", "--epochs", "2",
            "--finetune-epochs", "0", *QUICK]
    assert main([*base, "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    text = capsys.readouterr()
    assert text.out.splitlines()[-1].startswith(
        "WARNING: the network is not fully sharp (layer sharpness 0.00/0.00/0.00)")
    assert "final layer sharpness: 0.00/0.00/0.00 (not fully sharp)" in text.out
    assert main([*base, "--out", str(tmp_path / "b"), "--progress", "bar", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["fully_sharp"] is False and summary["schedule_fit"] is None
    assert len(summary["warnings"]) == 1 and summary["warnings"][0].startswith("WARNING:")
    assert summary["warnings"][0] in captured.err
    assert "epoch 2/2 loss" in captured.err  # bar mode's epoch lines: stderr, not stdout


def test_the_warning_is_for_sharpening_runs_only():
    from whetstone.cli.schedule import sharpness_warning

    assert sharpness_warning({"fully_sharp": True, "schedule": "simple"}) is None
    assert sharpness_warning({"fully_sharp": False, "schedule": "none"}) is None
    warning = sharpness_warning({"fully_sharp": False, "schedule": "simple",
                                 "final_sharpness": [1.0, 0.5]})
    assert warning is not None and "1.00/0.50" in warning and "--force" in warning


# ------------------------------------------------------------ refusals name the CLI's flags

def _soft_run(tmp_path: Path) -> Path:
    from test_cli_misuse import _run_folder

    return _run_folder(tmp_path, sharp=False)


def test_convert_and_export_refusals_name_force(tmp_path, capsys):
    run = _soft_run(tmp_path)
    assert _run_main(["convert", str(run)]) == 2
    err = capsys.readouterr().err
    assert "pass --force to convert it" in err and "force=True" not in err
    assert _run_main(["export", str(run), "--nir", str(tmp_path / "m.nir")]) == 2
    err = capsys.readouterr().err
    assert "pass --force to convert it" in err and "force=True" not in err
    assert _run_main(["simulate", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"'whetstone convert {run} --force'" in err and "force=True" not in err


def test_export_force_converts_a_model_below_sharpness_1(tmp_path, capsys):
    pytest.importorskip("nir", reason="the nir extra is not installed")
    run = _soft_run(tmp_path)
    nir_file = tmp_path / "m.nir"
    assert main(["export", str(run), "--nir", str(nir_file), "--force", "--json",
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["nir"] == str(nir_file) and nir_file.is_file()
    assert "not fully sharpened" in captured.err  # the conversion's warning, one line


@pytest.mark.parametrize(("command", "expected"), [
    ("convert", "pass --force to convert"), ("export", "pass --force to convert"),
    ("stats", "pass 'whetstone convert RUN --force' to convert")])
def test_library_messages_are_put_in_the_cli_words(command, expected, capsys):
    """A library error that names the Python keyword force=True reads --force on the CLI."""
    error = ValueError("model is not fully sharpened: ...; Finish sharpening (every layer at "
                       "1), or pass force=True to convert it as if every layer were at 1")
    assert cli.report(command, error) == 2
    err = capsys.readouterr().err
    assert expected in err and "force=True" not in err


# -------------------------------------------------------------- --json on every command

def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_takes_json():
    for name, parser in _subcommands().items():
        flags = {s for a in parser._actions for s in a.option_strings}
        assert "--json" in flags, name


def test_every_command_prints_json_on_a_clean_stdout(tiny_dense_run, tmp_path, capsys):
    """Each command with --json (and progress on: bars or log lines) prints one JSON document
    on stdout; everything else goes to stderr. (train: see the tests above.)"""
    run = str(_copy(tiny_dense_run, tmp_path))
    try:
        import nir  # noqa: F401
    except ImportError:
        nir_installed = False
    else:
        nir_installed = True
    commands = {
        "evaluate": ["evaluate", run, "--limit", "200"],
        "convert": ["convert", run],
        "simulate": ["simulate", run, "--limit", "200"],
        "stats": ["stats", run, "--limit", "200"],
        "quantize": ["quantize", run, "--bits", "4", "8", "--limit", "200"],
        "presets": ["presets"],
        "fetch": ["fetch", "mnist"],
        "recipes": ["recipes"],
    }
    if nir_installed:
        commands["export"] = ["export", run, "--nir", str(tmp_path / "m.nir")]
    covered = set(commands) | {"train"}
    assert covered >= set(_subcommands()), "a new command needs a --json case here"
    for name, argv in commands.items():
        for progress in (["--progress", "bar"], ["--progress", "log"]):
            extra = progress if "--progress" in _flags(name) else []
            assert main([*argv, "--json", *extra]) == 0, name
            captured = capsys.readouterr()
            result = json.loads(captured.out)  # the whole stdout is one JSON document
            assert isinstance(result, dict | list), name


def _flags(command: str) -> set[str]:
    return {s for a in _subcommands()[command]._actions for s in a.option_strings}


# ---------------------------------------------------------------------------- progress

def test_evaluate_progress_modes(tiny_dense_run, tmp_path, capsys):
    run = str(_copy(tiny_dense_run, tmp_path))
    argv = ["evaluate", run, "--limit", "300", "--json"]
    assert main([*argv, "--progress", "bar"]) == 0
    bar = capsys.readouterr()
    assert json.loads(bar.out)["accuracy_spiking"] is not None
    assert "at current sharpness (torch)" in bar.err and "\r" in bar.err  # tqdm bars
    assert "spiking network (numpy)" in bar.err
    assert main([*argv, "--progress", "log"]) == 0
    log = capsys.readouterr()
    json.loads(log.out)
    stages = [line for line in log.err.splitlines() if line.startswith("whetstone evaluate: ")]
    assert [line.split(": ")[1] for line in stages] == [
        "at current sharpness (torch)", "fully binary (torch)",
        "converted spiking network (numpy) against float64 torch"]
    assert all(re.search(r"done in \d+\.\d s, \d+ samples/s$", line) for line in stages)
    assert "\r" not in log.err
    assert main([*argv, "--no-progress"]) == 0
    quiet = capsys.readouterr()
    json.loads(quiet.out)
    assert quiet.err == ""


@pytest.mark.parametrize("command", [["simulate"], ["stats"], ["quantize", "--bits", "4"]])
def test_spiking_commands_show_bars_on_stderr(command, tiny_dense_run, tmp_path, capsys):
    run = str(_copy(tiny_dense_run, tmp_path))
    assert main([command[0], run, *command[1:], "--limit", "300", "--json",
                 "--progress", "bar"]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)
    assert "\r" in captured.err  # tqdm redraws its bar


def test_auto_progress_is_bars_on_a_terminal_and_lines_elsewhere():
    from whetstone.cli.options import progress_mode

    class Terminal:
        def isatty(self) -> bool:
            return True

    parse = build_parser().parse_args
    args = parse(["stats", "run"])
    assert progress_mode(args, Terminal()) == "bar"
    assert progress_mode(args, open(__file__)) == "log"  # noqa: SIM115 - a file, not a tty
    assert progress_mode(parse(["stats", "run", "--no-progress"])) == "none"
    assert progress_mode(parse(["stats", "run", "--progress", "none"])) == "none"


# ----------------------------------------------------------------------- presets and stats

def test_presets_is_a_table_and_json_gives_every_setting(capsys):
    from whetstone.presets import PRESETS

    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["preset", "task", "dataset", "architecture", "epochs",
                                "sharpening", "batch", "optimizer"]
    dense = next(line for line in lines if line.startswith("mnist-dense "))
    for cell in ("classification", "mnist", "dense 256-64; key 10x100 overlapping", "21+10",
                 "simple: from epoch 5, 5 epoch(s) per layer", "128", "adadelta 4"):
        assert cell in dense, (cell, dense)
    assert any(line.startswith("cartpole-dqn ") for line in lines)
    assert main(["presets", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["presets"] == {name: cfg.to_dict() for name, cfg in PRESETS.items()}
    assert data["policy_presets"]["cartpole-dqn"]["total_steps"] == 80_000


def test_stats_prints_units_and_labelled_energy_estimates(tiny_dense_run, tmp_path, capsys):
    run = str(_copy(tiny_dense_run, tmp_path))
    assert main(["stats", run, "--limit", "200", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "every count is per sample" in out
    assert re.search(r"spikes per sample: [\d,.]+ of 420 spiking neurons; spike density "
                     r"\d+\.\d\d % \(mean of the layers\)", out), out
    assert re.search(r"synaptic operations \(SynOps\) per sample: [\d,]+ ", out)
    assert re.search(r"the same layers as a dense network: [\d,]+ MACs per sample", out)
    assert re.search(r"45nm-fp32: spiking network [\d.]+ [pnu]J; the dense network "
                     r"[\d.]+ [pnu]J", out), out
    assert "source: Horowitz, ISSCC 2014" in out and "loihi-like: spiking network" in out
    assert "estimates, not measurements" in out
    assert main(["stats", run, "--limit", "200", "--no-progress", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["total"]["neurons"] == 420
    layers = [e for e in stats["layers"] if e["density"] is not None]
    assert stats["total"]["spikes"] == pytest.approx(
        sum(e["density"] * e["neurons"] for e in layers))
    assert set(stats["energy"]) == {"45nm-fp32", "loihi-like"}


def test_every_command_has_help(capsys):
    for name in _subcommands():
        assert _run_main([name, "--help"]) == 0, name
        assert capsys.readouterr().out.startswith("usage: whetstone "), name


def test_evaluate_says_why_the_spiking_network_did_not_run(tmp_path, capsys, monkeypatch):
    """A run below sharpness 1 is evaluated in torch; the spiking line says why it is missing
    (its data: 50 random images standing in for the test split)."""
    import torch

    import whetstone.runs.folder as folder

    run = _soft_run(tmp_path)
    fake = folder.Split(torch.rand(50, 1, 28, 28), torch.randint(0, 10, (50,)))
    monkeypatch.setattr(folder, "load_split", lambda *a, **k: fake)
    assert main(["evaluate", str(run), "--no-progress"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("converted spiking network: not run, the model is not fully sharp "
                           "(layer sharpness 0.00/0.00)"), last
    assert f"'whetstone convert {run} --force'" in last


# ------------------------------------------- the timetable is the sharpener's own, scaled too

def _epochs_to_sharp(config: Any, steps_per_epoch: int = 4, limit: int = 200) -> int:
    """Epochs the configuration's sharpener needs to set every layer to 1 (run on its model,
    without training)."""
    from whetstone.presets.build import build_model, build_sharpener

    model = build_model(config)
    sharpener = build_sharpener(config)
    sharpener.on_train_begin(model, steps_per_epoch=steps_per_epoch)
    for epoch in range(limit):
        for _ in range(steps_per_epoch):
            sharpener.on_batch_end(model)
        sharpener.on_epoch_end(model, epoch, 1.0)
        if sharpener.done:
            return epoch + 1
    raise AssertionError("never sharp")


@pytest.mark.parametrize("schedule", [
    {"name": "simple", "start_epoch": 5, "steps": 5, "mode": "batch"},
    {"name": "simple", "start_epoch": 2, "steps": 3, "mode": "epoch"},
    {"name": "simple", "start_epoch": 1, "steps": 4, "bottom_up": False},
    {"name": "simple", "start_epoch": 1, "steps": 2, "allocation": "uniform"},
    {"name": "scheduled", "start": 3, "duration": 2, "intermission": 1, "mode": "batch"},
    {"name": "scheduled", "start": 1.5, "duration": 0.5, "intermission": 0, "mode": "epoch"},
    {"name": "scheduled", "start": 2, "duration": 3, "intermission": 0.5,
     "allocation": "uniform"},
])
def test_the_window_is_when_the_sharpener_finishes_and_scaling_keeps_it_sharp(schedule):
    import math

    from whetstone.presets import get_preset
    from whetstone.presets.build import fit_schedule, sharpening_window

    config = get_preset("mnist-dense").merged({"schedule": {**schedule}, "epochs": 40})
    window = sharpening_window(config)
    assert window is not None
    assert _epochs_to_sharp(config) == math.ceil(window[1])
    for epochs in (3, 4, 7):
        short = fit_schedule(config.merged({"epochs": epochs}))
        assert _epochs_to_sharp(short) <= epochs, (epochs, short.schedule)


def test_progress_modes():
    import io

    from whetstone.progress import Progress, counter, iterate

    with pytest.raises(ValueError, match="unknown progress mode 'loud'"):
        Progress("loud")
    stream = io.StringIO()
    log = Progress("log", stream, prefix="whetstone test")
    assert list(log.iterate(range(3), desc="x")) == [0, 1, 2]
    with log.stage("step one", samples=10), log.counter(10) as advance:
        advance(10)
    assert re.fullmatch(r"whetstone test: step one: done in \d+\.\d s(, \d+ samples/s)?\n",
                        stream.getvalue()), stream.getvalue()
    bars = io.StringIO()
    bar = Progress("bar", bars)
    assert list(bar.iterate([1, 2], desc="counting")) == [1, 2]
    with bar.counter(5, "samples") as advance:
        advance(5)
    assert "counting" in bars.getvalue() and "samples" in bars.getvalue()
    quiet = io.StringIO()
    none = Progress("none", quiet)
    none.line("hidden")
    assert list(none.iterate([1])) == [1] and quiet.getvalue() == ""
    assert list(iterate(None, [4])) == [4]
    with counter(None, 3) as advance:
        advance(3)
