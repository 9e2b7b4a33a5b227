"""``whetstone recipes``: the named recipes shipped with the package
(:mod:`whetstone.presets.recipes`), as a table or JSON; ``whetstone recipes NAME`` shows one
recipe's file. ``whetstone train --recipe NAME`` trains one (see :mod:`.main`)."""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap
from typing import Any


def add_parsers(sub: Any) -> None:
    """Register ``recipes`` on ``sub`` (an argparse subparsers object)."""
    r = sub.add_parser("recipes", help="list the named recipes shipped with whetstone "
                                       "(train one with 'whetstone train --recipe NAME')")
    r.add_argument("name", nargs="?", help="show this recipe's file")
    r.add_argument("--json", action="store_true", help="print the result as JSON")


def cmd_recipes(args: argparse.Namespace) -> int:
    from ..presets import recipes

    if args.name is not None:
        try:
            recipe = recipes.get(args.name)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        if args.json:
            result = {**recipe.summary(), "config": recipe.config().to_dict()}
            print(json.dumps(result, indent=2))
        else:
            print(f"# {recipe.path}\n{recipe.path.read_text(encoding='utf-8').rstrip()}")
        return 0
    found = recipes.all_recipes()
    if args.json:
        print(json.dumps([r.summary() for r in found], indent=2))
        return 0
    print(recipe_table(found, shutil.get_terminal_size((100, 24)).columns))
    return 0


def recipe_table(found: list[Any], width: int = 100) -> str:
    """Name, preset and the first sentence of each description, one recipe per block."""
    name_w = max([len("recipe")] + [len(r.name) for r in found])
    preset_w = max([len("preset")] + [len(r.preset) for r in found])
    indent = name_w + preset_w + 4
    room = max(width - indent, 30)
    lines = [f"{'recipe':<{name_w}}  {'preset':<{preset_w}}  description", "-" * min(width, 100)]
    for r in found:
        first = r.description.split(". ")[0].rstrip(".") + "."
        wrapped = textwrap.wrap(first, room) or [""]
        if len(wrapped) > 3:
            wrapped = [*wrapped[:2], textwrap.shorten(" ".join(wrapped[2:]), room - 1) + "…"]
        lines.append(f"{r.name:<{name_w}}  {r.preset:<{preset_w}}  {wrapped[0]}")
        lines += [" " * indent + part for part in wrapped[1:]]
    lines.append("")
    lines.append("whetstone recipes NAME shows a recipe's file; whetstone train --recipe NAME "
                 "trains it")
    return "\n".join(lines)


COMMANDS = {"recipes": cmd_recipes}
