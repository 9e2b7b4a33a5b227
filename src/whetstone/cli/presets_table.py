"""``whetstone presets``: the named presets as a readable table, or their full settings as
JSON (:func:`preset_dicts`)."""

from __future__ import annotations

import dataclasses
from typing import Any

COLUMNS = ("preset", "task", "dataset", "architecture", "epochs", "sharpening", "batch",
           "optimizer", "extras")
"""The table's columns; ``epochs`` is ``sharpening phase + fine-tuning``."""


def preset_dicts() -> dict[str, Any]:
    """Every preset's full configuration (``TrainConfig.to_dict()``) under ``presets`` and
    every reinforcement-learning preset's ``DQNConfig`` under ``policy_presets``."""
    from ..presets import PRESETS
    from ..presets.registry import POLICY_PRESETS

    return {"presets": {name: cfg.to_dict() for name, cfg in PRESETS.items()},
            "policy_presets": {name: _jsonable(dataclasses.asdict(make()))
                               for name, make in POLICY_PRESETS.items()}}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def architecture(config: Any) -> str:
    """``dense 256-64``, ``vgg-cnn 64/128/256``, ... and the class key (classification)."""
    model = dict(config.model)
    arch = model.pop("arch")
    sizes = next((model[k] for k in ("hidden", "widths") if k in model), None)
    text = arch
    if sizes is not None:
        text += " " + ("-" if arch in ("dense", "autoencoder") else "/").join(map(str, sizes))
    if arch == "autoencoder" and "code" in model:
        text += f", code {model['code']}"
    if model.get("batchnorm"):
        text += ", BN"
    if config.task == "classification":
        key = config.key
        kind = "overlapping" if key.get("overlapping", True) else "disjoint"
        text += f"; key {key['classes']}x{key['width']} {kind}"
    return text


def sharpening(config: Any) -> str:
    """The schedule in words: when it starts and how long each layer takes."""
    spec = config.schedule
    name = spec.get("name")
    if name == "simple":
        text = (f"simple: from epoch {spec['start_epoch']}, {spec.get('steps', 4)} "
                f"epoch(s) per layer")
    elif name == "scheduled":
        gap = float(spec.get("intermission", 0))
        text = (f"scheduled: from epoch {_number(spec['start'])}, {_number(spec['duration'])} "
                f"epoch(s) per layer" + (f" + {_number(gap)} between" if gap else ""))
    elif name == "adaptive":
        text = f"adaptive (on loss plateaus) after {spec.get('min_init_epochs', 10)} epochs"
    else:
        return "none (conventional)"
    if spec.get("mode") == "epoch":
        text += ", at epoch ends"
    if spec.get("allocation") == "uniform":
        text += ", uniform"
    return text


def _extras(config: Any) -> str:
    parts = []
    if config.surrogate:
        parts.append(f"surrogate {config.surrogate}")
    if config.lr_schedule not in (None, "none", "constant"):
        parts.append(f"lr {config.lr_schedule}")
    if config.augment not in (None, "none"):
        parts.append(f"augment {config.augment}")
    if config.twin:
        parts.append("with conventional twin")
    if config.precision != "float32":
        parts.append(config.precision)
    return ", ".join(parts) or "-"


def rows() -> list[tuple[str, ...]]:
    """One row of :data:`COLUMNS` per preset (reinforcement-learning presets included)."""
    from ..presets import PRESETS
    from ..presets.registry import POLICY_PRESETS

    out = []
    for name, cfg in PRESETS.items():
        epochs = str(cfg.epochs) + (f"+{cfg.finetune_epochs}" if cfg.finetune_epochs else "")
        optimizer = f"{cfg.optimizer['name']} {_number(cfg.optimizer['lr'])}"
        out.append((name, cfg.task, cfg.dataset, architecture(cfg), epochs, sharpening(cfg),
                    str(cfg.batch_size), optimizer, _extras(cfg)))
    for name, make in POLICY_PRESETS.items():
        dqn = make()
        out.append((name, "rl (DQN)", dqn.env_id,
                    "dense " + "-".join(map(str, dqn.hidden)) + "; Q readout",
                    f"{dqn.total_steps} steps",
                    f"step: from step {dqn.sharpen_start}, {dqn.layer_duration} steps per layer",
                    str(dqn.batch_size), f"adam {_number(dqn.lr)}", "-"))
    return out


def table() -> str:
    """The presets as an aligned table, each preset's ``extras`` on a line of its own."""
    body = rows()
    shown = COLUMNS[:-1]
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(shown)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(f"{c:<{w}}" for c, w in zip(cells, widths, strict=True)).rstrip()

    lines = [line(shown), line(tuple("-" * w for w in widths))]
    indent = " " * (widths[0] + 2)
    for row in body:
        lines.append(line(row[:-1]))
        if row[-1] != "-":
            lines.append(f"{indent}{row[-1]}")
    lines += ["", "epochs: sharpening phase + fine-tuning epochs at sharpness 1; 'whetstone "
                  "presets --json' gives every setting; 'whetstone train --preset NAME' "
                  "trains one"]
    return "\n".join(lines)
