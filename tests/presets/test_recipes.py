"""Named recipes ship with the package: listed, loaded, resolved, and usable from the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from whetstone.cli.main import _config_from_args as config_from_args
from whetstone.cli.main import build_parser, main
from whetstone.presets import TrainConfig, get_preset, recipes


def test_every_shipped_recipe_loads_and_names_its_preset():
    found = recipes.all_recipes()
    assert [r.name for r in found] == recipes.names()
    assert {"mnist-dense-original", "mnist-dense-bn-long", "mnist-cnn-cpu"} <= set(recipes.names())
    for recipe in found:
        config = recipe.config()
        assert isinstance(config, TrainConfig)
        assert recipe.description, f"{recipe.name} has no description comment"
        assert recipe.path.parent == recipes.DIRECTORY


def test_a_recipe_is_its_preset_with_the_file_s_overrides():
    config = recipes.load("mnist-dense-bn-long")
    preset = get_preset("mnist-dense")
    assert config.finetune_epochs == 30 != preset.finetune_epochs
    assert config.model["batchnorm"] is True
    assert config.optimizer == preset.optimizer


def test_resolve_takes_names_files_and_the_old_benchmark_paths(tmp_path: Path):
    shipped = recipes.DIRECTORY / "mnist-small-cnn.toml"
    assert recipes.resolve("mnist-small-cnn") == shipped
    assert recipes.resolve("benchmarks/recipes/mnist-small-cnn.toml") == shipped
    own = tmp_path / "mine.toml"
    own.write_text('preset = "mnist-dense"\nepochs = 3\n')
    assert recipes.resolve(own) == own
    with pytest.raises(KeyError, match="no recipe named 'nope'.*mnist-dense-original"):
        recipes.resolve("nope")
    with pytest.raises(KeyError, match="no recipe named"):
        recipes.get("../registry")


def test_train_recipe_equals_train_config_of_the_file():
    parser = build_parser()
    by_name = config_from_args(parser.parse_args(["train", "--recipe", "mnist-dense-arctan"]))
    path = str(recipes.DIRECTORY / "mnist-dense-arctan.toml")
    by_file = config_from_args(parser.parse_args(["train", "--config", path]))
    assert by_name == by_file
    assert by_name.surrogate != get_preset("mnist-dense").surrogate


def test_cli_lists_shows_and_refuses(capsys: pytest.CaptureFixture[str]):
    assert main(["recipes"]) == 0
    table = capsys.readouterr().out
    assert "mnist-dense-bn-long" in table and "preset" in table.splitlines()[0]
    assert main(["recipes", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listed] == recipes.names()
    assert main(["recipes", "mnist-dense-original", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["preset"] == "mnist-dense" and shown["config"]["epochs"] == 21
    assert main(["recipes", "nope"]) == 2
    assert "no recipe named 'nope'" in capsys.readouterr().err
    assert main(["train", "--recipe", "nope"]) == 2
    assert "--recipe: no recipe named 'nope'" in capsys.readouterr().err
    path = str(recipes.DIRECTORY / "mnist-dense-arctan.toml")
    assert main(["train", "--recipe", "mnist-dense-arctan", "--config", path]) == 2
    assert "not both" in capsys.readouterr().err


@pytest.mark.slow
def test_the_wheel_ships_the_recipes(tmp_path: Path):
    root = Path(__file__).resolve().parents[2]
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(root / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path)], check=True,
                   capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("whetstone-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in recipes.names():
        assert f"whetstone/presets/recipes/{name}.toml" in names
