"""Training configurations: one dataclass that rebuilds a model and its training recipe.

A configuration is built from a named preset, then a TOML file, then command-line overrides
(later wins), and is saved as ``config.json`` in the run folder. Every way of making one
(the constructor, :meth:`TrainConfig.from_dict`, :meth:`~TrainConfig.load`,
:meth:`~TrainConfig.merged`, :meth:`~TrainConfig.from_toml`) checks it against the schema
(:func:`whetstone.presets.schema.validate_config`) and refuses it with a
:class:`~whetstone.presets.ConfigError` naming the field (and the file) before anything is
built or written.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .schema import ConfigError, check_keys, check_name, check_table, validate_config

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

    A configuration is checked when it is made (:meth:`validate`): an invalid one raises
    :class:`~whetstone.presets.ConfigError`. Fields assigned afterwards are checked again by
    :meth:`validate` (which :func:`~whetstone.runs.train_run` calls before it writes).
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
    task_options: dict[str, Any] = field(default_factory=dict)
    """Settings of the task (:func:`whetstone.presets.build.build_task`): for segmentation
    ``background_weight`` (in (0, 1]: the background's weight in the cross-entropy)."""
    twin: bool = False
    """Also train this recipe never sharpened (:func:`~whetstone.presets.build.conventional_twin`)
    into ``twin-HASH/`` beside the run folder (reused when it is there already); the summary
    names it and :func:`whetstone.runs.evaluate_run` reports it as the conventional network."""
    task: str = "classification"
    """What the network learns (:data:`whetstone.tasks.TASKS`): ``"classification"`` (the key
    decode), ``"reconstruction"`` (an autoencoder) or ``"segmentation"`` (per-pixel
    classes); the architecture must serve it. ``key`` is read for classification only."""
    data_file: dict[str, Any] = field(default_factory=dict)
    """The user's own data (``dataset = "npz"``; empty otherwise): ``path`` of the ``.npz``
    file (:mod:`whetstone.data.arrays`), its ``sha256`` (a changed file is refused when the
    run is read again), the per-sample ``input_shape`` and the number of ``classes``."""
    precision: str = "float32"
    """Training precision: ``"float32"``, or ``"bf16"`` (each training step's forward and loss
    under bfloat16 autocast; parameters and evaluation stay float32; see
    :func:`whetstone.training.fit`)."""

    _OMITTED_AT_DEFAULT = {"precision": "float32", "task": "classification", "twin": False,
                           "task_options": {}, "data_file": {}}
    """Fields added after run folders and result files were written: :meth:`to_dict` leaves
    them out at their default, so such a configuration still compares (and hashes) equal to
    one written before the field existed."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field and table (types, ranges, names, unknown keys; see
        :func:`whetstone.presets.schema.validate_config`); raise
        :class:`~whetstone.presets.ConfigError` naming the first offending field."""
        validate_config(self)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key, default in self._OMITTED_AT_DEFAULT.items():
            if data[key] == default:
                del data[key]
        return data

    @classmethod
    def field_names(cls) -> list[str]:
        """The keys a configuration (a TOML file, ``config.json``) may hold."""
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | Path | None = None) -> TrainConfig:
        """The configuration of ``data`` (the keys of :meth:`field_names`), checked; errors name
        ``source`` (the file it came from) when given."""
        try:
            table = check_table(data, "")
            check_keys(table, "", cls.field_names(), "the configuration")
            return cls(**copy.deepcopy(dict(table)))
        except ConfigError as exc:
            raise exc.within(None if source is None else str(source)) from exc.__cause__

    def save(self, path: str | Path) -> None:
        from ..runs.io import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read ``config.json`` (a run folder's). Anything wrong with the file (unreadable,
        larger than :data:`MAX_CONFIG_BYTES`, not UTF-8 JSON, not an object, or any field the
        schema refuses) raises :class:`~whetstone.presets.ConfigError` naming the file."""
        raw = _read_bounded(path, "configuration")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ConfigError(f"not a JSON configuration ({_reason(exc)})",
                              source=str(path)) from None
        if not isinstance(data, dict):
            raise ConfigError(f"not a configuration: a JSON object of settings is expected, got "
                              f"{type(data).__name__}", source=str(path))
        return cls.from_dict(data, source=path)

    @classmethod
    def from_toml(cls, path: str | Path, preset: str | None = None) -> TrainConfig:
        """The configuration of a TOML recipe: ``preset`` (else the file's ``preset`` key, else
        the defaults) with the file's settings merged over it; errors name the file."""
        values = read_toml(path)
        file_preset = values.pop("preset", None)
        from .registry import PRESETS, get_preset

        if preset is None and file_preset is not None:
            try:
                check_name(file_preset, "preset", PRESETS, "preset")
            except ConfigError as exc:
                raise exc.within(str(path)) from None
            preset = file_preset
        base = get_preset(preset) if preset is not None else cls()
        return base.merged(values, source=path)

    def with_schedule(self, name: str) -> TrainConfig:
        """A copy whose schedule is ``name`` with this preset's arguments for it."""
        return self.merged({"schedule": {"name": name}})

    def merged(self, overrides: Mapping[str, Any], source: str | Path | None = None
               ) -> TrainConfig:
        """A copy with ``overrides`` applied; dict-valued fields merge key by key (a new
        ``name`` in ``optimizer`` or ``schedule``, or a new ``arch`` in ``model``, starts that
        table afresh, a schedule from ``schedule_alternatives``). The result is checked;
        errors name ``source`` (a file or an option) when given."""
        try:
            return self._merged(check_table(overrides, ""))
        except ConfigError as exc:
            raise exc.within(None if source is None else str(source)) from exc.__cause__

    def _merged(self, overrides: Mapping[str, Any]) -> TrainConfig:
        data = asdict(self)
        check_keys(overrides, "", list(data), "the configuration")
        for k, v in overrides.items():
            if isinstance(data[k], dict) and isinstance(v, Mapping):
                kind = "arch" if k == "model" else "name"
                name = v.get(kind)
                if kind in v and name != data[k].get(kind):
                    # another optimizer, schedule or architecture: its own arguments, not the
                    # old one's
                    alternatives = self.schedule_alternatives if k == "schedule" else {}
                    own = alternatives.get(name, {}) if isinstance(name, str) else {}
                    data[k] = {kind: name, **own}
                data[k] = {**data[k], **v}
            else:
                data[k] = v
        return TrainConfig.from_dict(data)


MAX_CONFIG_BYTES = 1 << 20
"""Largest configuration file read (1 MiB): a bigger one is refused, not parsed."""


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if text else type(exc).__name__


def _read_bounded(path: str | Path, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the {what}: {exc.strerror or _reason(exc)}",
                          source=str(path)) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"larger than {MAX_CONFIG_BYTES} bytes: not a {what} file",
                          source=str(path))
    return raw


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML configuration file (same keys as :class:`TrainConfig`, plus ``preset``).

    The values are not checked here (:meth:`TrainConfig.from_toml` and
    :meth:`TrainConfig.merged` do); an unreadable, oversized or malformed file raises
    :class:`~whetstone.presets.ConfigError` naming it."""
    raw = _read_bounded(path, "TOML configuration")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"cannot read the TOML configuration: {_reason(exc)}",
                          source=str(path)) from None
