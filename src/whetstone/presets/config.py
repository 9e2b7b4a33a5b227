"""Training configurations: one dataclass that rebuilds a model and its training recipe.

A configuration is built from a named preset, then a TOML file, then command-line overrides
(later wins), and is saved as ``config.json`` in the run folder.
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class TrainConfig:
    """Everything needed to rebuild a model and rerun its training.

    ``model`` holds the architecture name (``arch``) and its keyword arguments; ``key`` the
    class key (``classes``, ``width``, ``overlapping``, ``seed``); ``optimizer`` its ``name``,
    ``lr`` and extra keyword arguments; ``schedule`` the sharpener ``name`` and arguments
    (``name = "none"`` trains without sharpening, the conventional baseline) and optionally
    ``allocation``: ``"bottom-up"`` (the default, lower layers finish first) or ``"uniform"``
    (the same schedule's model sharpness given to every layer alike, same timing; see
    :class:`whetstone.presets.build.UniformAllocation`).
    """

    name: str = "custom"
    dataset: str = "mnist"
    model: dict[str, Any] = field(default_factory=lambda: {"arch": "dense"})
    activation: str = "brelu"
    key: dict[str, Any] = field(
        default_factory=lambda: {"classes": 10, "width": 100, "overlapping": True}
    )
    optimizer: dict[str, Any] = field(default_factory=lambda: {"name": "adadelta", "lr": 4.0})
    schedule: dict[str, Any] = field(
        default_factory=lambda: {"name": "simple", "start_epoch": 5, "steps": 5}
    )
    surrogate: str | None = None
    """Backward strategy at sharpness 1 (``"straight-through"``) or ``None`` (true gradient 0)."""
    epochs: int = 21
    finetune_epochs: int = 0
    """Epochs trained after ``epochs``, once the schedule is done (fully sharp), typically with
    a straight-through ``surrogate``; the run lasts ``epochs + finetune_epochs``."""
    batch_size: int = 128
    seed: int = 0
    lr_schedule: str | None = None
    """``None`` (constant) or ``"cosine"`` (cosine decay over all epochs, per epoch)."""

    @property
    def total_epochs(self) -> int:
        """``epochs + finetune_epochs``."""
        return self.epochs + self.finetune_epochs
    augment: str | None = None
    """``None``, ``"shift"`` (random translations of up to 2 pixels) or ``"shift-N"`` (N)."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy on the decode logits."""
    val_every: int = 1
    """Evaluate on the validation split every this many epochs (and always at the last)."""
    teacher: dict[str, Any] = field(default_factory=dict)
    """Distillation from a trained run (empty: none). ``run``: the teacher's run folder (any
    network with the same classes, typically this recipe never sharpened); ``temperature`` and
    ``weight`` of :class:`whetstone.training.Distillation` (defaults 4 and 0.5); ``init``
    (default false): start the student from the teacher's weights (same architecture needed);
    ``distill`` (default true): false keeps the labels-only loss (``init`` alone)."""
    schedule_alternatives: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-schedule arguments used when ``--schedule NAME`` switches this preset's schedule."""
    precision: str = "float32"
    """Training precision: ``"float32"``, or ``"bf16"`` (each training step's forward and loss
    under bfloat16 autocast; parameters and evaluation stay float32; see
    :func:`whetstone.training.fit`)."""

    _OMITTED_AT_DEFAULT = {"precision": "float32"}
    """Fields added after run folders and result files were written: :meth:`to_dict` leaves
    them out at their default, so such a configuration still compares (and hashes) equal to
    one written before the field existed."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key, default in self._OMITTED_AT_DEFAULT.items():
            if data[key] == default:
                del data[key]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(
                f"unknown configuration keys {sorted(unknown)}; known: {sorted(names)}"
            )
        return cls(**copy.deepcopy(data))

    def save(self, path: str | Path) -> None:
        from ..runs.io import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the configuration: {exc}") from exc
        return cls.from_dict(data)

    def with_schedule(self, name: str) -> TrainConfig:
        """A copy whose schedule is ``name`` with this preset's arguments for it."""
        return self.merged({"schedule": {"name": name}})

    def merged(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with ``overrides`` applied; dict-valued fields merge key by key."""
        data = asdict(self)
        for k, v in overrides.items():
            if k not in data:
                raise ValueError(f"unknown configuration key {k!r}")
            if isinstance(data[k], dict) and isinstance(v, dict):
                if "name" in v and v["name"] != data[k].get("name"):
                    # another optimizer or schedule: its own arguments, not the old one's
                    alternatives = self.schedule_alternatives if k == "schedule" else {}
                    data[k] = {"name": v["name"], **alternatives.get(v["name"], {})}
                data[k] = {**data[k], **v}
            else:
                data[k] = v
        return TrainConfig.from_dict(data)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML configuration file (same keys as :class:`TrainConfig`, plus ``preset``)."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the TOML configuration: {exc}") from exc
