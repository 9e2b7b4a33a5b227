"""Misuse of the command line: every case ends in exactly one line naming the problem (and the
option or file), the documented exit status, no traceback, and nothing written.

Each case runs in-process through :func:`whetstone.cli.main.main`. Cases that would train
are refused before any data is read (the data folder is empty and fetching is off, so a case
that got that far would fail differently); run folders are built without training (a tiny
dense network saved at sharpness 0 or 1).
"""

from __future__ import annotations

import json
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from whetstone.cli import main as cli
from whetstone.cli.main import main

RANDOM_BYTES = bytes(random.Random(11).randrange(256) for _ in range(96))
"""A few random bytes, written where a configuration, a model or a network is expected."""

TINY = {"model": {"arch": "dense", "hidden": [8]}, "key": {"classes": 10, "width": 20,
                                                           "overlapping": True},
        "epochs": 1, "finetune_epochs": 0}


def _run_folder(tmp: Path, name: str = "run", sharp: bool = True) -> Path:
    """A run folder as ``train`` leaves it (config.json, model.safetensors), without training."""
    from whetstone.presets import build_model, get_preset
    from whetstone.runs.io import save_weights
    from whetstone.sharpening import set_model_sharpness

    folder = tmp / name
    folder.mkdir()
    config = get_preset("mnist-dense").merged(TINY)
    config.save(folder / "config.json")
    model = build_model(config)
    set_model_sharpness(model, 1.0 if sharp else 0.0)
    save_weights(model, folder / "model.safetensors")
    return folder


def _write(relative: str, content: bytes | str) -> Any:
    def setup(tmp: Path) -> None:
        path = tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return setup


def _config_json(**changes: Any) -> Any:
    """A run folder whose config.json has ``changes`` at the top level (``model`` replaced
    whole); ``_raw`` replaces the file's text."""
    def setup(tmp: Path) -> None:
        folder = _run_folder(tmp)
        if "_raw" in changes:
            (folder / "config.json").write_bytes(changes["_raw"])
            return
        data = json.loads((folder / "config.json").read_text())
        data.update(changes)
        (folder / "config.json").write_text(json.dumps(data))
    return setup


FILES = {"model_safetensors": "model.safetensors", "spiking_npz": "spiking.npz"}


def _run(sharp: bool = True, **files: bytes | None) -> Any:
    """A run folder; ``files`` (keys of :data:`FILES`) overwritten with these bytes, or
    removed when ``None``."""
    def setup(tmp: Path) -> None:
        folder = _run_folder(tmp, sharp=sharp)
        for name, content in files.items():
            path = folder / FILES[name]
            if content is None:
                path.unlink()
            else:
                path.write_bytes(content)
    return setup


def _a_file(relative: str = "file") -> Any:
    return _write(relative, "a regular file, not a folder\n")


def _both(*setups: Any) -> Any:
    def setup(tmp: Path) -> None:
        for s in setups:
            s(tmp)
    return setup


def _toml(text: str) -> Any:
    return _write("r.toml", text)


@dataclass(frozen=True)
class Case:
    """One command line, what it must say (a regex searched in the single stderr line) and
    its exit status; ``absent``: a path (``{tmp}`` formatted) that must not exist after."""

    id: str
    argv: tuple[str, ...]
    error: str
    code: int = 2
    setup: Any = None
    absent: str | None = None
    marks: tuple[Any, ...] = field(default_factory=tuple)


def train(*extra: str) -> tuple[str, ...]:
    """A ``train`` command line into ``{tmp}/out`` (which must stay absent)."""
    return ("train", *extra, "--out", "{tmp}/out", "--train-limit", "64", "--test-limit", "32",
            "--no-progress", "--no-plot")


def T(id: str, extra: tuple[str, ...] | list[str], error: str, setup: Any = None) -> Case:
    return Case(id, train(*extra), error, setup=setup, absent="{tmp}/out")


PRESET = ("--preset", "mnist-dense")
CONFIG = ("--config", "{tmp}/r.toml")

CASES = [
    # ---- the parser: one line, exit 2 (argparse's usage block is not printed)
    Case("no-command", (), r"^whetstone: error: the following arguments are required: command"),
    Case("unknown-command", ("frobnicate",), r"invalid choice: 'frobnicate'"),
    Case("epochs-not-int", ("train", "--epochs", "three"),
         r"argument --epochs: invalid int value: 'three'"),
    Case("lr-not-float", ("train", "--lr", "fast"), r"argument --lr: invalid float value"),
    Case("precision-choice", ("train", "--precision", "fp16"),
         r"argument --precision: invalid choice: 'fp16'"),
    Case("train-limit-zero", ("train", "--train-limit", "0"),
         r"argument --train-limit: must be an integer >= 1, got 0"),
    Case("seed-negative", ("train", "--seed", "-1"), r"argument --seed: must be an integer in"),
    Case("seed-huge", ("train", "--seed", "99999999999999999999"),
         r"argument --seed: must be an integer in \[0, "),
    Case("unknown-flag", ("train", "--preset", "mnist-dense", "--no-such-flag"),
         r"unrecognized arguments: --no-such-flag"),
    Case("evaluate-no-run", ("evaluate",), r"required: run"),
    Case("evaluate-split", ("evaluate", "{tmp}/run", "--split", "validation"),
         r"argument --split: invalid choice: 'validation'"),
    Case("evaluate-limit", ("evaluate", "{tmp}/run", "--limit", "-3"),
         r"argument --limit: must be an integer >= 1, got -3"),
    Case("stats-limit-word", ("stats", "{tmp}/run", "--limit", "many"),
         r"argument --limit: must be an integer >= 1, got 'many'"),
    Case("simulate-dataset", ("simulate", "{tmp}/run", "--dataset", "imagenet"),
         r"argument --dataset: invalid choice: 'imagenet'"),
    Case("quantize-no-bits", ("quantize", "{tmp}/run"), r"required: --bits"),
    Case("quantize-one-bit", ("quantize", "{tmp}/run", "--bits", "1"),
         r"argument --bits: must be an integer in \[2, 32\], got 1"),
    Case("export-no-nir", ("export", "{tmp}/run"),
         r"one of the arguments --nir --onnx is required"),
    Case("export-nir-and-onnx", ("export", "{tmp}/run", "--nir", "m.nir", "--onnx", "m.onnx"),
         r"argument --onnx: not allowed with argument --nir"),
    Case("export-neuron", ("export", "{tmp}/run", "--nir", "m.nir", "--neuron", "hh"),
         r"argument --neuron: invalid choice: 'hh'"),
    Case("fetch-dataset", ("fetch", "imagenet"), r"argument dataset: invalid choice: 'imagenet'"),
    Case("presets-extra", ("presets", "mnist"), r"^whetstone: error: unrecognized arguments: "
         r"mnist \(see 'whetstone --help'\)$"),

    # ---- train options: checked by the configuration schema, named by option and field
    T("epochs-zero", (*PRESET, "--epochs", "0"),
      r"error: --epochs: epochs: must be an integer >= 1, got 0$"),
    T("val-every-zero", (*PRESET, "--val-every", "0"),
      r"--val-every: val_every: must be an integer >= 1, got 0"),
    T("lr-inf", (*PRESET, "--lr", "inf"),
      r"--lr: optimizer\.lr: must be a finite number >= 0, got inf"),
    T("lr-negative", (*PRESET, "--lr", "-1"), r"--lr: optimizer\.lr: .* got -1"),
    T("lr-nan", (*PRESET, "--lr", "nan"), r"--lr: optimizer\.lr: .* got nan"),
    T("batch-size-zero", (*PRESET, "--batch-size", "0"),
      r"--batch-size: batch_size: must be an integer >= 1, got 0"),
    T("finetune-negative", (*PRESET, "--finetune-epochs", "-2"),
      r"--finetune-epochs: finetune_epochs: must be an integer >= 0, got -2"),
    T("clip-zero", (*PRESET, "--clip-grad-norm", "0"),
      r"--clip-grad-norm: optimizer\.clip_grad_norm: must be a finite number > 0"),
    T("optimizer-typo", (*PRESET, "--optimizer", "adamm"),
      r"--optimizer: optimizer\.name: unknown optimizer 'adamm'; did you mean 'adam'\?"),
    T("schedule-typo", (*PRESET, "--schedule", "simpel"),
      r"--schedule: schedule\.name: unknown schedule 'simpel'; did you mean 'simple'\?"),
    T("schedule-missing-args", (*PRESET, "--schedule", "step"),
      r"--schedule: schedule\.start_step: missing: schedule 'step' needs start_step, "
      r"layer_duration"),
    T("surrogate-typo", (*PRESET, "--surrogate", "straight_through"),
      r"--surrogate: surrogate: unknown surrogate 'straight_through'; did you mean "
      r"'straight-through'\?"),
    T("augment-typo", (*PRESET, "--augment", "shfit"), r"--augment: augment: unknown augment"),
    T("lr-schedule-typo", (*PRESET, "--lr-schedule", "cosin"),
      r"--lr-schedule: lr_schedule: .*did you mean 'cosine'\?"),
    T("preset-typo", ("--preset", "mnist-dens"),
      r"--preset: preset: unknown preset 'mnist-dens'; did you mean 'mnist-dense'\?"),
    T("no-preset-no-config", (), r"give --preset NAME, --recipe NAME or --config FILE"),
    T("distill-weight-range", (*PRESET, "--teacher", "t", "--distill-weight", "1.5"),
      r"--distill-weight: teacher\.weight: must be a finite number in \[0, 1\], got 1\.5"),
    T("distill-temperature-zero", (*PRESET, "--teacher", "t", "--distill-temperature", "0"),
      r"--distill-temperature: teacher\.temperature: must be a finite number > 0, got 0"),
    T("distill-without-teacher", (*PRESET, "--distill-weight", "0.5"),
      r"--distill-weight: teacher\.run: missing"),
    T("teacher-missing-run", (*PRESET, "--teacher", "{tmp}/nowhere"),
      r"teacher: .*nowhere: no config\.json"),
    T("device-absent", (*PRESET, "--device", "cuda:99"),
      r"--device: device: 'cuda:99' is not available"),
    T("device-malformed", (*PRESET, "--device", "banana"),
      r"--device: device: not a torch device 'banana'"),

    # ---- TOML recipes: named by file and dotted field
    T("toml-missing", ("--config", "{tmp}/nope.toml"),
      r"nope\.toml: cannot read the TOML configuration: No such file or directory"),
    T("toml-folder", ("--config", "{tmp}"),
      r": cannot read the TOML configuration: Is a directory"),
    T("toml-syntax", CONFIG, r"r\.toml: cannot read the TOML configuration: ",
      _toml("epochs = = 3\n")),
    T("toml-random-bytes", CONFIG, r"r\.toml: cannot read the TOML configuration",
      _write("r.toml", RANDOM_BYTES)),
    T("toml-unknown-key", CONFIG,
      r"r\.toml: epoch: unknown key for the configuration; did you mean 'epochs'\?",
      _toml('preset = "mnist-dense"\nepoch = 3\n')),
    T("toml-optimizer-key", CONFIG,
      r"r\.toml: optimizer\.learning_rate: unknown key for optimizer 'adam'; did you mean "
      r"'lr'\?", _toml('preset = "mnist-dense"\n[optimizer]\nname = "adam"\n'
                       'learning_rate = 0.1\n')),
    T("toml-schedule-key", CONFIG,
      r"r\.toml: schedule\.start_epok: unknown key for schedule 'simple'; did you mean "
      r"'start_epoch'\?", _toml('preset = "mnist-dense"\n[schedule]\nstart_epok = 2\n')),
    T("toml-negative-width", CONFIG, r"r\.toml: model\.hidden\[1\]: must be an integer >= 1, "
      r"got -1", _toml('preset = "mnist-dense"\n[model]\nhidden = [256, -1]\n')),
    T("toml-string-epochs", CONFIG,
      r"r\.toml: epochs: must be an integer, got 'ten' \(a string\)",
      _toml('preset = "mnist-dense"\nepochs = "ten"\n')),
    T("toml-bool-batch", CONFIG, r"r\.toml: batch_size: must be an integer, got true "
      r"\(a boolean\)", _toml('preset = "mnist-dense"\nbatch_size = true\n')),
    T("toml-label-smoothing", CONFIG,
      r"r\.toml: label_smoothing: must be a finite number in \[0, 1\), got 1\.0",
      _toml('preset = "mnist-dense"\nlabel_smoothing = 1.0\n')),
    T("toml-dataset-typo", CONFIG,
      r"r\.toml: dataset: unknown dataset 'mnsit'; did you mean 'mnist'\?",
      _toml('dataset = "mnsit"\n')),
    T("toml-teacher-key", CONFIG,
      r"r\.toml: teacher\.tempreature: unknown key for the teacher; did you mean "
      r"'temperature'\?", _toml('preset = "mnist-dense"\n[teacher]\nrun = "x"\n'
                                'tempreature = 2.0\n')),
    T("toml-teacher-both-off", CONFIG, r"r\.toml: teacher: distill and init are both off",
      _toml('preset = "mnist-dense"\nteacher = { run = "twin", distill = false }\n')),
    T("toml-classes", CONFIG, r"r\.toml: key\.classes: mnist has 10 classes, got 5",
      _toml('preset = "mnist-dense"\n[key]\nclasses = 5\n')),
    T("toml-key-width", CONFIG, r"r\.toml: key\.width: must be at least key\.classes",
      _toml('preset = "mnist-dense"\n[key]\nwidth = 5\n')),
    T("toml-lr-nan", CONFIG, r"r\.toml: optimizer\.lr: must be a finite number >= 0, got nan",
      _toml('preset = "mnist-dense"\n[optimizer]\nlr = nan\n')),
    T("toml-arch", CONFIG, r"r\.toml: model\.arch: unknown architecture 'transformer'",
      _toml('preset = "mnist-dense"\n[model]\narch = "transformer"\n')),
    T("toml-preset", CONFIG, r"r\.toml: preset: unknown preset 'nope'",
      _toml('preset = "nope"\n')),
    T("toml-activation", CONFIG, r"r\.toml: activation: unknown activation 'tanh'",
      _toml('preset = "mnist-dense"\nactivation = "tanh"\n')),
    T("toml-dropout", CONFIG, r"r\.toml: model\.dropout: must be a finite number in \[0, 1\)",
      _toml('preset = "mnist-dense"\n[model]\ndropout = 1.5\n')),
    T("toml-betas", CONFIG, r"r\.toml: optimizer\.betas\[1\]: must be a finite number in "
      r"\[0, 1\), got 1\.5", _toml('preset = "mnist-dense"\n[optimizer]\nname = "adam"\n'
                                  'betas = [0.9, 1.5]\n')),
    T("toml-nesterov", CONFIG, r"r\.toml: optimizer\.nesterov: must be true or false, got "
      r"'yes'", _toml('preset = "mnist-dense"\n[optimizer]\nname = "sgd"\nnesterov = "yes"\n')),
    T("toml-schedule-not-table", CONFIG, r"r\.toml: schedule: must be a table, got 3",
      _toml('preset = "mnist-dense"\nschedule = 3\n')),
    T("toml-alternative-name", CONFIG,
      r"r\.toml: schedule_alternatives\.simpel: unknown schedule 'simpel'; did you mean "
      r"'simple'\?", _toml('preset = "mnist-dense"\n[schedule_alternatives.simpel]\n'
                           'start_epoch = 1\n')),
    T("toml-allocation", CONFIG, r"r\.toml: schedule\.allocation: unknown allocation "
      r"'top-down'", _toml('preset = "mnist-dense"\n[schedule]\nallocation = "top-down"\n')),
    T("toml-schedule-range", CONFIG, r"r\.toml: schedule: need start >= 0, duration > 0",
      _toml('preset = "mnist-dense"\n[schedule]\nname = "scheduled"\nstart = 1\n'
            'duration = 0\n')),
    T("toml-pooling", CONFIG, r"r\.toml: model: 6 max-pooling stages leave nothing",
      _toml('preset = "cifar10-cnn"\n[model]\nwidths = [8, 8, 8, 8, 8, 8]\n')),
    T("toml-in-features", CONFIG, r"r\.toml: model\.in_features: mnist gives 784, got 100",
      _toml('preset = "mnist-dense"\n[model]\nin_features = 100\n')),
    T("toml-precision", CONFIG, r"r\.toml: precision: unknown precision 'fp16'",
      _toml('preset = "mnist-dense"\nprecision = "fp16"\n')),
    T("toml-seed", CONFIG, r"r\.toml: seed: must be an integer >= 0, got -4",
      _toml('preset = "mnist-dense"\nseed = -4\n')),
    T("toml-schedule-int", CONFIG,
      r"r\.toml: schedule\.start_epoch: must be an integer, got 1\.5",
      _toml('preset = "mnist-dense"\n[schedule]\nstart_epoch = 1.5\n')),

    # ---- where train would write
    Case("out-under-a-file", ("train", *PRESET, "--out", "{tmp}/file/run", "--no-plot"),
         r"--out .*file/run: .*file is a file, not a folder", setup=_a_file()),
    Case("out-is-a-file", ("train", *PRESET, "--out", "{tmp}/file", "--no-plot"),
         r"--out .*file: is a file, not a folder", setup=_a_file()),

    # ---- run folders: missing, corrupt or unsuitable files, named
    Case("evaluate-nowhere", ("evaluate", "{tmp}/nowhere"), r"nowhere: no config\.json"),
    Case("evaluate-empty-folder", ("evaluate", "{tmp}/empty"), r"empty: no config\.json",
         setup=lambda tmp: (tmp / "empty").mkdir()),
    Case("config-random-bytes", ("evaluate", "{tmp}/run"),
         r"run/config\.json: not a JSON configuration", setup=_config_json(_raw=RANDOM_BYTES)),
    Case("config-null-width", ("evaluate", "{tmp}/run"),
         r"run/config\.json: model\.hidden\[0\]: must be an integer, got null",
         setup=_config_json(model={"arch": "dense", "hidden": [None]})),
    Case("config-negative-width", ("evaluate", "{tmp}/run"),
         r"run/config\.json: model\.hidden\[1\]: must be an integer >= 1, got -3",
         setup=_config_json(model={"arch": "dense", "hidden": [8, -3]})),
    Case("config-dataset", ("simulate", "{tmp}/run"),
         r"run/config\.json: dataset: unknown dataset 'imagenet'",
         setup=_config_json(dataset="imagenet")),
    Case("config-not-object", ("evaluate", "{tmp}/run"),
         r"run/config\.json: not a configuration: a JSON object of settings is expected, got "
         r"list", setup=_config_json(_raw=b"[1, 2, 3]")),
    Case("config-unknown-key", ("export", "{tmp}/run", "--nir", "{tmp}/m.nir"),
         r"run/config\.json: epochz: unknown key for the configuration; did you mean "
         r"'epochs'\?", setup=_config_json(epochz=3)),
    Case("config-nan", ("evaluate", "{tmp}/run"),
         r"run/config\.json: label_smoothing: must be a finite number in \[0, 1\), got nan",
         setup=_config_json(_raw=b'{"label_smoothing": NaN}')),
    Case("config-deep-nesting", ("evaluate", "{tmp}/run"),
         r"run/config\.json: not a JSON configuration",
         setup=_config_json(_raw=b"[" * 100000)),
    Case("model-missing", ("evaluate", "{tmp}/run"), r"run: no model\.safetensors",
         setup=_run(model_safetensors=None)),
    Case("model-random-bytes", ("evaluate", "{tmp}/run"),
         r"run/model\.safetensors: not a readable safetensors file",
         setup=_run(model_safetensors=RANDOM_BYTES)),
    Case("convert-random-model", ("convert", "{tmp}/run"), r"run/model\.safetensors",
         setup=_run(model_safetensors=RANDOM_BYTES)),
    Case("convert-not-sharp", ("convert", "{tmp}/run"),
         r"run: the model is not fully sharpened \(layer sharpness 0\.00/0\.00\).*pass --force",
         setup=_run(sharp=False)),
    Case("simulate-not-sharp", ("simulate", "{tmp}/run"),
         r"not fully sharpened .*'whetstone convert .*run --force'", setup=_run(sharp=False)),
    Case("convert-out-under-file", ("convert", "{tmp}/run", "--out", "{tmp}/file/net.npz"),
         r"--out .*file/net\.npz: .*file is a file, not a folder",
         setup=_both(_run(), _a_file())),
    Case("simulate-random-network", ("simulate", "{tmp}/run"), r"spiking\.npz",
         setup=_run(spiking_npz=RANDOM_BYTES)),
    Case("stats-random-network", ("stats", "{tmp}/run"), r"spiking\.npz",
         setup=_run(spiking_npz=RANDOM_BYTES)),
    Case("quantize-random-network", ("quantize", "{tmp}/run", "--bits", "4"), r"spiking\.npz",
         setup=_run(spiking_npz=RANDOM_BYTES)),
    Case("export-random-network", ("export", "{tmp}/run", "--nir", "{tmp}/m.nir"),
         r"spiking\.npz", setup=_run(spiking_npz=RANDOM_BYTES)),
    Case("export-nir-under-file", ("export", "{tmp}/run", "--nir", "{tmp}/file/m.nir"),
         r"--nir .*file/m\.nir: .*file is a file, not a folder", setup=_both(_run(), _a_file())),
    Case("simulate-other-shape", ("simulate", "{tmp}/run", "--dataset", "cifar10"),
         r"--dataset cifar10: the run learned mnist \(1x28x28 inputs\); cifar10 has 3x32x32",
         setup=_run()),
    Case("quantize-out-two-bits", ("quantize", "{tmp}/run", "--bits", "4", "8", "--out", "q.npz"),
         r"--out needs exactly one --bits value, got 2", setup=_run()),
    Case("stats-plot-folder-missing", ("stats", "{tmp}/run", "--plot", "{tmp}/no/dir/s.png"),
         r"--plot .*s\.png: the folder .*no/dir does not exist", setup=_run()),
    Case("evaluate-device", ("evaluate", "{tmp}/run", "--device", "cuda:99"),
         r"--device: device: 'cuda:99' is not available", setup=_run()),
    Case("simulate-nowhere", ("simulate", "{tmp}/nowhere"), r"nowhere: no such run folder"),
    Case("stats-nowhere", ("stats", "{tmp}/nowhere"), r"nowhere: no such run folder"),
    Case("quantize-out-folder", ("quantize", "{tmp}/run", "--bits", "4", "--out", "{tmp}"),
         r"--out .*: is a folder; give a file name", setup=_run()),
    Case("convert-a-file", ("convert", "{tmp}/file"), r"file: is a file, not a run folder",
         setup=_a_file()),
    Case("fetch-offline", ("fetch", "mnist", "--data-dir", "{tmp}/empty-data"), r"MNIST|mnist"),
]


def _param(case: Case) -> Any:
    return pytest.param(case, id=case.id, marks=case.marks)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in ``tmp_path`` with an empty data folder and fetching off: a case that reached
    the data would fail (quickly) rather than download or train."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WHETSTONE_OFFLINE", "1")
    monkeypatch.setenv("WHETSTONE_DATA", str(tmp_path / "no-data-here"))


def _run_main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's errors
        return int(exc.code or 0)


def test_the_table_is_large_and_unique():
    assert len(CASES) >= 50
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_misuse_is_one_line(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    if case.setup is not None:
        case.setup(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in case.argv]
    code = _run_main(argv)
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("whetstone"), lines[0]
    assert re.search(case.error, lines[0]), lines[0]
    assert code == case.code, lines[0]
    assert captured.out == ""
    if case.absent is not None:
        assert not Path(case.absent.replace("{tmp}", str(tmp_path))).exists()
    if case.code == 2 and case.argv[:1] == ("train",):  # refused before anything is written
        after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        assert after == before


ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make a folder read-only: chmod 0500, or for root (who writes there anyway) the
    permission check the CLI makes (``os.access``) answers no for it."""
    locked: list[Path] = []
    real_access = os.access

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        if mode & os.W_OK and any(Path(path).absolute() == p for p in locked):
            return False
        return real_access(path, mode, **kwargs)

    if ROOT:
        from whetstone.cli import options, spiking

        monkeypatch.setattr(options.os, "access", access)
        monkeypatch.setattr(spiking.os, "access", access)

    def lock(folder: Path) -> Path:
        locked.append(folder.absolute())
        if not ROOT:
            folder.chmod(0o500)
        return folder

    yield lock
    for folder in locked:
        folder.chmod(0o700)


def test_read_only_out_is_refused_before_anything_is_written(tmp_path, capsys, read_only):
    locked = tmp_path / "locked"
    locked.mkdir()
    read_only(locked)
    code = _run_main(["train", *PRESET, "--no-plot", "--out", str(locked / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1
    assert re.search(r"--out .*locked/run: cannot create it in .*locked \(permission denied\)",
                     err), err
    assert list(locked.iterdir()) == []


def test_read_only_run_folder(tmp_path, capsys, read_only):
    """convert refuses to write into a read-only run folder up front; the commands that only
    read a run convert in memory there instead of failing to cache spiking.npz."""
    from whetstone.cli.spiking import _network

    run = read_only(_run_folder(tmp_path))
    code = _run_main(["convert", str(run)])
    err = capsys.readouterr().err
    net = _network(str(run))
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert re.search(r"output .*run/spiking\.npz: cannot write in .*run \(permission denied\)",
                     err), err
    assert net.layers and not (run / "spiking.npz").exists()


def _raising(exc: BaseException) -> Any:
    def command(_args: Any) -> int:
        raise exc
    return command


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "presets", _raising(KeyboardInterrupt()))
    assert main(["presets"]) == 130
    err = capsys.readouterr().err
    assert err == "whetstone presets: interrupted\n"


@pytest.mark.parametrize(("exc", "code", "pattern"), [
    (KeyError("layers"), 1,
     r"^whetstone presets: error: internal error: KeyError: 'layers' \(rerun with --debug for "
     r"the traceback\)$"),
    (IndexError(), 1, r"error: internal error: IndexError \(rerun with --debug for the"),
    (RuntimeError("CUDA out of\nmemory"), 2,
     r"^whetstone presets: error: RuntimeError: CUDA out of memory \(rerun with --debug for "
     r"the traceback\)$"),
    (FileNotFoundError(2, "No such file or directory", "/x/y.npz"), 2,
     r"^whetstone presets: error: \[Errno 2\] No such file or directory: '/x/y\.npz'$"),
    (ValueError("x.json: bad"), 2, r"^whetstone presets: error: x\.json: bad$"),
])
def test_unexpected_errors_are_one_line_with_a_debug_hint(monkeypatch, capsys, exc, code,
                                                         pattern):
    monkeypatch.setitem(cli.COMMANDS, "presets", _raising(exc))
    assert main(["presets"]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert re.search(pattern, err.strip()), err


@pytest.mark.parametrize("argv", [["--debug", "presets"], ["presets", "--debug"]])
def test_debug_prints_the_traceback(monkeypatch, capsys, argv):
    monkeypatch.setitem(cli.COMMANDS, "presets", _raising(KeyError("layers")))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'layers'" in err
    assert err.splitlines()[-1] == "whetstone presets: error: internal error: KeyError: 'layers'"


def test_debug_flag_defaults_off():
    args = cli.build_parser().parse_args(["presets"])
    assert args.debug is False
    assert cli.build_parser().parse_args(["presets", "--debug"]).debug is True


def test_cli_dataset_names_are_the_data_modules():
    from whetstone.cli.options import DATASETS
    from whetstone.data import DATASETS as SOURCES
    from whetstone.presets.schema import DATASET_CLASSES, DATASET_SHAPES
    from whetstone.runs.folder import GENERATED_DATASETS

    assert set(DATASETS) == set(SOURCES)
    assert set(SOURCES) | set(GENERATED_DATASETS) == set(DATASET_SHAPES) == set(DATASET_CLASSES)
    assert not set(SOURCES) & set(GENERATED_DATASETS)
    for name, spec in SOURCES.items():
        assert DATASET_CLASSES[name] == spec.num_classes
        height, width = spec.image_shape[:2]
        assert DATASET_SHAPES[name][1:] == (height, width)


def test_a_valid_train_command_line_passes_the_checks(tmp_path):
    """The checks refuse only what is wrong: the documented forms all parse and validate."""
    from whetstone.cli.main import _config_from_args, build_parser

    toml = tmp_path / "ok.toml"
    toml.write_text('preset = "mnist-dense"\nepochs = 2\n[optimizer]\nname = "adam"\n'
                    'lr = 1e-3\nbetas = [0.9, 0.99]\n[schedule]\nallocation = "uniform"\n')
    args = build_parser().parse_args([
        "train", "--config", str(toml), "--schedule", "adaptive", "--surrogate", "none",
        "--lr-schedule", "none", "--augment", "shift-2+flip", "--teacher", "twin",
        "--distill-weight", "0", "--init-from-teacher", "--seed", "7", "--val-every", "2"])
    config = _config_from_args(args)
    assert config.schedule["name"] == "adaptive" and config.surrogate is None
    assert config.optimizer == {"name": "adam", "lr": 1e-3, "betas": [0.9, 0.99]}
    assert config.teacher == {"run": "twin", "weight": 0.0, "init": True}
    assert (config.seed, config.val_every, config.epochs) == (7, 2, 2)
