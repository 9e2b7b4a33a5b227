"""Named recipes: TOML files shipped with the package, each a preset plus overrides.

A recipe is how a benchmark row was trained: ``preset = "NAME"`` and any keys of
:class:`~whetstone.presets.TrainConfig` that differ from it (nested tables merge into the
preset's). The leading ``#`` comment block of the file is its description. The files live
beside this module (``whetstone/presets/recipes/*.toml``), so ``pip install whetstone`` ships
them; ``whetstone recipes`` lists them, ``whetstone train --recipe NAME`` trains one, and the
benchmarks read the same files (``--recipe NAME``).

::

    from whetstone.presets import recipes
    recipes.names()                         # ['cifar10-cnn-cpu', ..., 'mnist-small-cnn']
    config = recipes.load("mnist-dense-bn-long")
    recipes.describe("mnist-dense-bn-long") # the file's comment block
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import TrainConfig, read_toml
from ..registry import get_preset

DIRECTORY: Path = Path(__file__).resolve().parent
"""Where the shipped recipe files are."""


@dataclass(frozen=True)
class Recipe:
    """One shipped recipe: its ``name`` (the file's stem), ``path``, the ``preset`` it starts
    from and its ``description`` (the file's leading comment block, unwrapped)."""

    name: str
    path: Path
    preset: str
    description: str

    def config(self) -> TrainConfig:
        """The preset with the recipe's overrides (checked against the schema; errors name the
        file)."""
        return TrainConfig.from_toml(self.path)

    def summary(self) -> dict[str, Any]:
        """JSON-ready ``{"name", "preset", "path", "description"}``."""
        return {"name": self.name, "preset": self.preset, "path": str(self.path),
                "description": self.description}


def names() -> list[str]:
    """The shipped recipes' names, sorted."""
    return sorted(p.stem for p in DIRECTORY.glob("*.toml"))


def _description(path: Path) -> str:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(part for part in lines if part)


def get(name: str) -> Recipe:
    """The shipped recipe ``name``; ``KeyError`` listing the names when there is none."""
    path = DIRECTORY / f"{name}.toml"
    if "/" in name or "\\" in name or not path.is_file():
        raise KeyError(f"no recipe named {name!r}; the recipes are: {', '.join(names())}")
    values = read_toml(path)
    preset = values.get("preset")
    if not isinstance(preset, str):
        raise ValueError(f"{path}: a recipe must name its preset (preset = \"NAME\")")
    get_preset(preset)  # a recipe on an unknown preset is an error in the package
    return Recipe(name, path, preset, _description(path))


def all_recipes() -> list[Recipe]:
    """Every shipped recipe, sorted by name."""
    return [get(name) for name in names()]


def load(name: str) -> TrainConfig:
    """The configuration of the shipped recipe ``name`` (see :meth:`Recipe.config`)."""
    return get(name).config()


def resolve(name_or_path: str | Path) -> Path:
    """A recipe file: an existing path as given, else the shipped recipe of that name (a
    ``.toml`` path that no longer exists, such as ``benchmarks/recipes/NAME.toml`` where the
    recipes lived before they shipped with the package, resolves by its stem).

    Raises:
        KeyError: neither a file nor a shipped recipe (the names are listed).
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    stem = path.stem if path.suffix == ".toml" else str(name_or_path)
    return get(stem).path
