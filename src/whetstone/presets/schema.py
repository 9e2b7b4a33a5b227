"""The schema of :class:`~whetstone.presets.TrainConfig`: what every field and table may hold.

:func:`validate_config` checks a whole configuration up front, before anything is built or
written: the type and range of every number, every name (dataset, architecture, activation,
optimizer, schedule, surrogate, learning-rate schedule, augmentation, precision), and every
key of every table (``model``, ``key``, ``optimizer``, ``schedule``, ``teacher``,
``schedule_alternatives``). A key nobody reads is an error that names the closest valid key.
Every refusal is a :class:`ConfigError` whose message names the field by its dotted path
(``optimizer.lr``, ``model.hidden[1]``) and, when the value came from a file or a
command-line option, that file or option first::

    recipe.toml: optimizer.learning_rate: unknown key; did you mean 'lr'?
    --epochs: epochs: must be an integer >= 1, got 0

The keyword arguments a table may hold come from the code they are passed to: an
architecture's keywords from :data:`MODEL_KEYS` (kept equal to the builders' signatures by a
test), an optimizer's and a schedule's from their constructors' signatures; after the schema
the optimizer and the sharpener are built once on a stand-in parameter (cheap), so any check
of their own refuses the configuration here too, not in the middle of a run.
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
import reprlib
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainConfig


class ConfigError(ValueError):
    """A configuration value, key or file that whetstone refuses.

    ``problem`` says what is wrong, ``field`` is the dotted path of the offending field
    (``"optimizer.lr"``, ``"model.hidden[0]"``; ``None`` for the whole file) and ``source``
    the file or command-line option it came from (``None`` when built in Python). ``str()``
    is ``"SOURCE: FIELD: PROBLEM"`` without the missing parts, always one line.
    """

    def __init__(self, problem: str, field: str | None = None, source: str | None = None):
        self.problem = " ".join(str(problem).split())
        self.field = field
        self.source = source
        super().__init__(self._text())

    def _text(self) -> str:
        return ": ".join(p for p in (self.source, self.field, self.problem) if p)

    def __str__(self) -> str:
        return self._text()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problem, self.field, self.source))

    def within(self, source: str | None) -> ConfigError:
        """This error attributed to ``source`` (a file or an option); an error that already
        names a source keeps it."""
        if self.source or not source:
            return self
        error = ConfigError(self.problem, self.field, str(source))
        error.__cause__ = self.__cause__
        return error


# ------------------------------------------------------------------- tables of valid values

DATASET_SHAPES: dict[str, tuple[int, int, int]] = {
    "mnist": (1, 28, 28),
    "mnist-segmentation": (1, 64, 64),
    "fashion-mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "cifar100": (3, 32, 32),
}
"""Input shape ``(C, H, W)`` of each dataset a configuration may name (``dataset``)."""

DATASET_CLASSES: dict[str, int] = {"mnist": 10, "fashion-mnist": 10, "cifar10": 10,
                                   "cifar100": 100, "mnist-segmentation": 11}
"""Classes of each dataset (per pixel for ``mnist-segmentation``: background and ten digits):
a classifier's ``key.classes`` must equal it."""

DATASET_TASKS: dict[str, tuple[str, ...]] = {
    "mnist": ("classification", "reconstruction"),
    "fashion-mnist": ("classification", "reconstruction"),
    "cifar10": ("classification", "reconstruction"),
    "cifar100": ("classification", "reconstruction"),
    "mnist-segmentation": ("segmentation",),
}
"""The tasks each dataset can train (reconstruction needs only the images)."""

USER_DATASET = "npz"
"""``dataset`` of a configuration that trains on the user's own arrays (``data_file``)."""

DATA_FILE_KEYS = ("path", "sha256", "input_shape", "classes")
"""Keys of ``config.data_file`` (all required with ``dataset = "npz"``)."""

ALLOCATIONS = ("bottom-up", "uniform")
"""Values of ``schedule.allocation``: how a schedule's model sharpness is spread over layers."""

LR_SCHEDULES = ("none", "constant", "cosine")
"""Values of ``lr_schedule`` (besides ``None``): ``"none"`` and ``"constant"`` keep the rate."""

TEACHER_KEYS = ("run", "temperature", "weight", "init", "distill")
"""Keys of ``config.teacher`` (see :class:`~whetstone.presets.TrainConfig`)."""

NO_SCHEDULE = "none"
"""``schedule.name`` that trains without sharpening (the conventional network)."""

MAX_SEED = 2**63 - 1

MAX_WIDTH = 2**20
"""Most neurons (or channels) one layer may have: a sanity bound, far above any recipe."""

MAX_COUNT = 10**9
"""Most epochs, samples per batch or epochs between validations: a sanity bound."""

ALIASES: dict[str, str] = {"learning_rate": "lr", "learningrate": "lr", "epoch": "epochs",
                           "batchsize": "batch_size", "batch": "batch_size",
                           "weightdecay": "weight_decay", "temp": "temperature",
                           "preset_name": "name"}
"""Common names of a key that whetstone spells otherwise (``learning_rate`` is ``lr``)."""

Checker = Callable[[Any, str], None]

_repr = reprlib.Repr()
_repr.maxstring = 40
_repr.maxother = 40
_repr.maxlist = 6
_repr.maxdict = 4
_repr.maxlevel = 2


def _show(value: Any) -> str:
    """A short description of a user's value for a message: its repr and, where a type is
    the problem, its kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return f"{_repr.repr(value)} (a string)"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return f"the list {_repr.repr(list(value))}"
    return _repr.repr(value)


def dataset_shape(dataset: str, data_file: Mapping[str, Any] | None = None
                  ) -> tuple[int, ...]:
    """The batch-free input shape of ``dataset`` (``(C, H, W)`` of a built-in dataset, the
    recorded ``input_shape`` of the user's data file for ``"npz"``)."""
    if dataset == USER_DATASET:
        return tuple(int(s) for s in (data_file or {})["input_shape"])
    return DATASET_SHAPES[dataset]


def dataset_classes(dataset: str, data_file: Mapping[str, Any] | None = None) -> int:
    """The number of classes of ``dataset`` (the user's data file's for ``"npz"``)."""
    if dataset == USER_DATASET:
        return int((data_file or {})["classes"])
    return DATASET_CLASSES[dataset]


def did_you_mean(name: Any, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` to ``name`` (difflib, after
    :data:`ALIASES` and ``-``/``_`` spelling), else ``"; choose from a, b, c"``."""
    options = sorted(str(c) for c in choices)
    text = str(name)
    candidates = [ALIASES.get(text.lower()), text.replace("-", "_"), text.replace("_", "-")]
    for candidate in candidates:
        if candidate in options and candidate != text:
            return f"; did you mean {candidate!r}?"
    close = difflib.get_close_matches(text.lower(), options, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; choose from {', '.join(options)}" if options else ""


def check_name(value: Any, field: str, choices: Iterable[str], what: str) -> None:
    """``value`` is one of ``choices`` (``what`` names the kind in the message)."""
    options = list(choices)
    if not isinstance(value, str):
        raise ConfigError(f"must be the name of {what}, got {_show(value)}"
                          f"{did_you_mean('', options)}", field)
    if value not in options:
        raise ConfigError(f"unknown {what} {value!r}{did_you_mean(value, options)}", field)


def check_keys(table: Mapping[str, Any], field: str, known: Iterable[str], what: str) -> None:
    """Every key of ``table`` is in ``known``; the first unknown one is refused with the
    closest known name."""
    valid = list(known)
    for key in table:
        if key not in valid:
            path = f"{field}.{key}" if field else str(key)
            raise ConfigError(f"unknown key for {what}{did_you_mean(key, valid)}", path)


def check_table(value: Any, field: str) -> Mapping[str, Any]:
    """``value`` is a table (a ``dict`` with string keys)."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a table, got {_show(value)}", field)
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"table keys must be strings, got {_show(key)}", field)
    return value


def _bound(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _interval(minimum: float | None, maximum: float | None, min_open: bool,
              max_open: bool) -> str:
    if minimum is not None and maximum is not None:
        return (f"in {'(' if min_open else '['}{_bound(minimum)}, {_bound(maximum)}"
                f"{')' if max_open else ']'}")
    if minimum is not None:
        return f"{'>' if min_open else '>='} {_bound(minimum)}"
    if maximum is not None:
        return f"{'<' if max_open else '<='} {_bound(maximum)}"
    return ""


def check_integer(value: Any, field: str, minimum: int | None = None,
                  maximum: int | None = None) -> None:
    """``value`` is an integer (not a boolean, not a float) in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"must be an integer, got {_show(value)}", field)
    if minimum is not None and value < minimum:
        raise ConfigError(f"must be an integer >= {minimum}, got {_show(value)}", field)
    if maximum is not None and value > maximum:
        raise ConfigError(f"must be an integer <= {maximum}, got {_show(value)}", field)


def check_number(value: Any, field: str, minimum: float | None = None,
                 maximum: float | None = None, min_open: bool = False,
                 max_open: bool = False) -> None:
    """``value`` is a finite real number (an integer or a float, not a boolean, not NaN or
    infinite) in the interval given (open ends with ``min_open``/``max_open``)."""
    rule = _interval(minimum, maximum, min_open, max_open)
    wanted = f"a finite number {rule}".rstrip()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"must be {wanted}, got {_show(value)}", field)
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        finite = False
    if not finite:
        raise ConfigError(f"must be {wanted}, got {_show(value)}", field)
    low = minimum is not None and (value <= minimum if min_open else value < minimum)
    high = maximum is not None and (value >= maximum if max_open else value > maximum)
    if low or high:
        raise ConfigError(f"must be {wanted}, got {_show(value)}", field)


def check_bool(value: Any, field: str) -> None:
    """``value`` is ``true`` or ``false``."""
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {_show(value)}", field)


def check_text(value: Any, field: str) -> None:
    """``value`` is a non-empty string without NUL characters."""
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ConfigError(f"must be a non-empty string, got {_show(value)}", field)


def _integer(minimum: int | None = None, maximum: int | None = None) -> Checker:
    return lambda v, f: check_integer(v, f, minimum, maximum)


def _number(minimum: float | None = None, maximum: float | None = None, min_open: bool = False,
            max_open: bool = False) -> Checker:
    return lambda v, f: check_number(v, f, minimum, maximum, min_open, max_open)


def _optional(checker: Checker) -> Checker:
    def check(value: Any, field: str) -> None:
        if value is not None:
            checker(value, field)
    return check


def _int_list(min_length: int, minimum: int = 1, maximum: int = MAX_WIDTH) -> Checker:
    def check(value: Any, field: str) -> None:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"must be a list of integers in [{minimum}, {maximum}], got "
                              f"{_show(value)}", field)
        if len(value) < min_length:
            raise ConfigError(f"must hold at least {min_length} value(s), got an empty list",
                              field)
        for i, item in enumerate(value):
            check_integer(item, f"{field}[{i}]", minimum, maximum)
    return check


def _choice(*choices: str) -> Checker:
    return lambda v, f: check_name(v, f, choices, "value")


# ---------------------------------------------------------------------------------- model

def _function_spec(value: Any, field: str) -> None:
    """``package.module:function``: dotted identifiers, a colon, an identifier."""
    text = value if isinstance(value, str) else ""
    module, _, name = text.partition(":")
    parts = module.split(".") if module else []
    if not (parts and name and all(p.isidentifier() for p in [*parts, name])):
        raise ConfigError(f"must name a function as 'package.module:function', got "
                          f"{_show(value)}", field)



MODEL_KEYS: dict[str, dict[str, Checker]] = {
    "dense": {"in_features": _integer(1), "hidden": _int_list(0), "batchnorm": check_bool,
              "dropout": _number(0.0, 1.0, max_open=True)},
    "whetstone-cnn": {"in_channels": _integer(1), "image_size": _integer(1),
                      "batchnorm": check_bool},
    "vgg-cnn": {"in_channels": _integer(1), "image_size": _integer(1), "widths": _int_list(1),
                "dense_width": _integer(1, MAX_WIDTH), "batchnorm": check_bool},
    "resnet": {"in_channels": _integer(1), "image_size": _integer(1), "widths": _int_list(1),
               "blocks": _int_list(1), "shortcut": _choice("projection", "identity")},
    "custom": {"function": _function_spec},
    "autoencoder": {"in_features": _integer(1), "hidden": _int_list(0),
                    "code": _integer(1, MAX_WIDTH), "batchnorm": check_bool,
                    "output": _choice("readout", "binary")},
    "segmentation-cnn": {"in_channels": _integer(1), "image_size": _integer(1),
                         "classes": _integer(2), "widths": _int_list(1),
                         "middle": _integer(1, MAX_WIDTH), "decoder": _int_list(0),
                         "batchnorm": check_bool},
}
"""Keyword arguments of each architecture in ``config.model`` (besides ``arch``) and their
checks; the keys equal the builder's keywords other than ``key`` and ``act``."""



def _pools(arch: str, spec: Mapping[str, Any]) -> int:
    """Max-pooling stages of a convolutional architecture (0 for ``dense`` and ``resnet``)."""
    if arch == "whetstone-cnn":
        return 2
    if arch in ("vgg-cnn", "segmentation-cnn"):
        default = (64, 128, 256) if arch == "vgg-cnn" else (8, 16, 32)
        return len(spec.get("widths", default))
    return 0  # a ResNet's stride-2 convolutions (padding 1) leave at least 1x1


CUSTOM_ARCH = "custom"
"""``model.arch`` of a model built by the user's function (``model.function``)."""

CONVOLUTIONAL_INPUTS = ("in_channels", "image_size")
"""Keywords that need ``(C, H, W)`` inputs."""


def _check_model(model: Any, dataset: str, data_file: Mapping[str, Any] | None = None) -> None:
    spec = check_table(model, "model")
    if "arch" not in spec:
        raise ConfigError(f"missing; choose from {', '.join(sorted(MODEL_KEYS))}", "model.arch")
    arch = spec["arch"]
    check_name(arch, "model.arch", MODEL_KEYS, "architecture")
    known = MODEL_KEYS[arch]
    check_keys(spec, "model", ["arch", *known], f"architecture {arch!r}")
    for key, checker in known.items():
        if key in spec:
            checker(spec[key], f"model.{key}")
    if arch == CUSTOM_ARCH and "function" not in spec:
        raise ConfigError("missing: the function that returns the model, as "
                          "'package.module:function'", "model.function")
    shape = dataset_shape(dataset, data_file)
    if len(shape) != 3:
        takes = set(inspect.signature(_architecture(arch)).parameters)
        if takes & set(CONVOLUTIONAL_INPUTS):
            raise ConfigError(f"architecture {arch!r} takes images (C, H, W); the data's "
                              f"samples have shape {shape}", "model.arch")
        expected = {"in_features": math.prod(shape), "classes": dataset_classes(dataset,
                                                                               data_file)}
        return _check_model_sizes(spec, dataset, expected)
    channels, height, width = shape
    expected = {"in_features": channels * height * width, "in_channels": channels,
                "image_size": height, "classes": dataset_classes(dataset, data_file)}
    _check_model_sizes(spec, dataset, expected)
    _check_pools(arch, spec, dataset, height, width)


def _architecture(arch: str) -> Callable[..., Any]:
    from .architectures import ARCHITECTURES

    return ARCHITECTURES[arch]


def _check_model_sizes(spec: Mapping[str, Any], dataset: str, expected: dict[str, int]) -> None:
    for key, value in expected.items():
        if key in spec and spec[key] != value:
            raise ConfigError(f"{dataset} gives {value}, got {_show(spec[key])} (leave it out: "
                              f"the dataset sets it)", f"model.{key}")


def _check_pools(arch: str, spec: Mapping[str, Any], dataset: str, height: int,
                 width: int) -> None:
    if arch == "resnet":
        stages = len(spec.get("widths", (16, 32, 64)))
        if "blocks" in spec and len(spec["blocks"]) != stages:
            raise ConfigError(f"one block count per stage: widths gives {stages} stages, "
                              f"got {_show(spec.get('blocks'))}", "model.blocks")
    pools = _pools(arch, spec)
    if pools:
        if height // 2**pools < 1:
            raise ConfigError(f"{pools} max-pooling stages leave nothing of {dataset}'s "
                              f"{height}x{width} images", "model")
        if arch == "segmentation-cnn" and (height % 2**pools or width % 2**pools):
            raise ConfigError(f"{pools} pooling and upsampling stages need image sides "
                              f"divisible by {2**pools}; {dataset} has {height}x{width}",
                              "model.widths")
        if arch == "segmentation-cnn" and len(spec.get("decoder", (32, 16))) > pools:
            raise ConfigError(f"more decoder stages than the encoder's {pools}",
                              "model.decoder")


# ------------------------------------------------------------------------------------ key

_KEY_CHECKS: dict[str, Checker] = {"classes": _integer(1), "width": _integer(1, MAX_WIDTH),
                                   "overlapping": check_bool,
                                   "seed": _optional(_integer(0, MAX_SEED))}


def _check_key(key: Any, dataset: str, data_file: Mapping[str, Any] | None = None) -> None:
    spec = check_table(key, "key")
    check_keys(spec, "key", _KEY_CHECKS, "the class key")
    for name in ("classes", "width"):
        if name not in spec:
            raise ConfigError("missing (the number of classes and of output neurons)",
                              f"key.{name}")
    for name, checker in _KEY_CHECKS.items():
        if name in spec:
            checker(spec[name], f"key.{name}")
    classes = dataset_classes(dataset, data_file)
    if spec["classes"] != classes:
        raise ConfigError(f"{dataset} has {classes} classes, got {_show(spec['classes'])}",
                          "key.classes")
    if spec["width"] < spec["classes"]:
        raise ConfigError(f"must be at least key.classes ({spec['classes']}): every class needs "
                          f"an output neuron, got {spec['width']}", "key.width")


# ------------------------------------------------------------------------------ optimizer

_OPTIMIZER_RANGES: dict[str, Checker] = {
    "lr": _number(0.0),
    "rho": _number(0.0, 1.0),
    "alpha": _number(0.0, 1.0),
    "eps": _number(0.0),
}


def _optimizer_table() -> dict[str, Any]:
    from .build import OPTIMIZERS

    return OPTIMIZERS


@cache
def _keywords(cls: type, skip: tuple[str, ...]) -> dict[str, inspect.Parameter]:
    """The keyword parameters of ``cls``'s constructor, without ``self`` and ``skip``."""
    params = inspect.signature(cls.__init__).parameters
    return {name: p for name, p in params.items()
            if name not in ("self", *skip) and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _betas(value: Any, field: str) -> None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ConfigError(f"must be a list of two numbers in [0, 1), got {_show(value)}", field)
    for i, item in enumerate(value):
        check_number(item, f"{field}[{i}]", 0.0, 1.0, max_open=True)


def _by_default(param: inspect.Parameter) -> Checker:
    """The check of an optimizer keyword, from its default value."""
    default = param.default
    if isinstance(default, bool):
        return check_bool
    if default is None:
        return _optional(check_bool)
    if isinstance(default, tuple):
        return _betas
    if isinstance(default, numbers.Real):
        return _number(0.0)
    return lambda v, f: None


def _check_optimizer(optimizer: Any) -> None:
    from .build import CLIP_GRAD_NORM

    spec = check_table(optimizer, "optimizer")
    optimizers = _optimizer_table()
    if "name" not in spec:
        raise ConfigError(f"missing; choose from {', '.join(sorted(optimizers))}",
                          "optimizer.name")
    name = spec["name"]
    check_name(name, "optimizer.name", optimizers, "optimizer")
    keywords = _keywords(optimizers[name], ("params",))
    check_keys(spec, "optimizer", ["name", CLIP_GRAD_NORM, *keywords], f"optimizer {name!r}")
    for key, value in spec.items():
        field = f"optimizer.{key}"
        if key == "name":
            continue
        if key == CLIP_GRAD_NORM:
            _optional(_number(0.0, min_open=True))(value, field)
        elif key in _OPTIMIZER_RANGES:
            _OPTIMIZER_RANGES[key](value, field)
        else:
            _by_default(keywords[key])(value, field)


# ------------------------------------------------------------------------------- schedule

def _sharpeners() -> dict[str, type]:
    from ..sharpening.schedules import SHARPENERS

    return SHARPENERS


def _by_annotation(param: inspect.Parameter) -> Checker:
    """The check of a schedule keyword, from its annotation (``int``, ``float``, ``bool``,
    ``Mode``, ``X | None``)."""
    annotation = param.annotation
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    text = text.replace(" ", "")
    optional = text.endswith("|None") or text.startswith("None|")
    base = text.replace("|None", "").replace("None|", "")
    checker: Checker
    if base == "int":
        checker = _integer(0)
    elif base == "float":
        checker = _number(0.0)
    elif base == "bool":
        checker = check_bool
    elif base == "Mode":
        checker = _choice("epoch", "batch")
    else:
        def checker(value: Any, field: str) -> None:
            return None
    return _optional(checker) if optional else checker


def _check_schedule_arguments(spec: Mapping[str, Any], field: str, name: str,
                              complete: bool) -> None:
    """Keys and values of a schedule table (``name`` and ``allocation`` aside). ``complete``:
    also every required argument present and the sharpener built once (its own checks)."""
    sharpeners = _sharpeners()
    if name == NO_SCHEDULE:
        check_keys(spec, field, ["name", "allocation"], "schedule 'none' (no sharpening)")
        return
    keywords = _keywords(sharpeners[name], ())
    check_keys(spec, field, ["name", "allocation", *keywords], f"schedule {name!r}")
    for key, param in keywords.items():
        if key in spec:
            _by_annotation(param)(spec[key], f"{field}.{key}")
        elif complete and param.default is inspect.Parameter.empty:
            needed = [k for k, p in keywords.items() if p.default is inspect.Parameter.empty]
            raise ConfigError(f"missing: schedule {name!r} needs {', '.join(needed)}",
                              f"{field}.{key}")
    if complete:
        arguments = {k: v for k, v in spec.items() if k not in ("name", "allocation")}
        try:
            sharpeners[name](**arguments)
        except (ValueError, TypeError) as exc:
            raise ConfigError(str(exc), field) from exc


def _check_schedule(schedule: Any) -> None:
    spec = check_table(schedule, "schedule")
    names = [NO_SCHEDULE, *_sharpeners()]
    if "name" not in spec:
        raise ConfigError(f"missing; choose from {', '.join(names)}", "schedule.name")
    check_name(spec["name"], "schedule.name", names, "schedule")
    if "allocation" in spec:
        check_name(spec["allocation"], "schedule.allocation", ALLOCATIONS, "allocation")
    _check_schedule_arguments(spec, "schedule", spec["name"], complete=True)


def _check_alternatives(alternatives: Any) -> None:
    table = check_table(alternatives, "schedule_alternatives")
    names = [NO_SCHEDULE, *_sharpeners()]
    for name, arguments in table.items():
        field = f"schedule_alternatives.{name}"
        check_name(name, field, names, "schedule")
        spec = check_table(arguments, field)
        if "name" in spec:
            raise ConfigError("the table's own name is the schedule; leave 'name' out",
                              f"{field}.name")
        if "allocation" in spec:
            check_name(spec["allocation"], f"{field}.allocation", ALLOCATIONS, "allocation")
        _check_schedule_arguments(spec, field, name, complete=False)


# -------------------------------------------------------------------------------- teacher

_TEACHER_CHECKS: dict[str, Checker] = {
    "run": check_text,
    "temperature": _number(0.0, min_open=True),
    "weight": _number(0.0, 1.0),
    "init": check_bool,
    "distill": check_bool,
}


def check_teacher_table(teacher: Any) -> None:
    """``config.teacher``: empty, or ``run`` (a run folder, or ``"twin"``) with optional
    ``temperature`` (> 0), ``weight`` (in [0, 1]), ``init`` and ``distill`` (booleans, not
    both false)."""
    spec = check_table(teacher, "teacher")
    if not spec:
        return
    check_keys(spec, "teacher", TEACHER_KEYS, "the teacher")
    if "run" not in spec:
        raise ConfigError("missing: name the teacher's run folder (or 'twin')", "teacher.run")
    for key, checker in _TEACHER_CHECKS.items():
        if key in spec:
            checker(spec[key], f"teacher.{key}")
    if not (spec.get("distill", True) or spec.get("init", False)):
        raise ConfigError("distill and init are both off; drop the teacher instead", "teacher")


# ------------------------------------------------------------------------- whole config

def _check_augment(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ConfigError(f"must be a string such as 'shift-2+flip', or none; got "
                          f"{_show(value)}", "augment")
    if value == "none":
        return
    from ..training.augment import parse_augment

    try:
        parse_augment(value)
    except ValueError as exc:
        raise ConfigError(str(exc), "augment") from exc


def _check_names(config: TrainConfig) -> None:
    from ..nn.surrogate import SURROGATES
    from ..training.loop import PRECISIONS
    from .architectures import ACTIVATIONS

    check_text(config.name, "name")
    check_name(config.dataset, "dataset", [*DATASET_SHAPES, USER_DATASET], "dataset")
    check_name(config.activation, "activation", ACTIVATIONS, "activation")
    if config.surrogate is not None:
        check_name(config.surrogate, "surrogate", ["none", *SURROGATES], "surrogate")
    if config.lr_schedule is not None:
        check_name(config.lr_schedule, "lr_schedule", LR_SCHEDULES, "learning-rate schedule")
    _check_augment(config.augment)
    check_name(config.precision, "precision", PRECISIONS, "precision")


TASK_OPTIONS: dict[str, dict[str, Checker]] = {
    "classification": {},
    "reconstruction": {},
    "segmentation": {"background_weight": _number(0.0, 1.0, min_open=True)},
}
"""The keys ``task_options`` may hold per task, and their checks."""


def _check_task(config: TrainConfig) -> None:
    """``task`` names a task the dataset and the architecture serve; classification-only
    settings (``label_smoothing``, a ``teacher``) and, for segmentation, ``augment`` (it would
    move the images but not their masks) are refused for the other tasks."""
    from ..tasks import TASKS
    from .architectures import ARCHITECTURE_TASKS

    check_name(config.task, "task", TASKS, "task")
    tasks = DATASET_TASKS.get(config.dataset, ("classification",))
    if config.task not in tasks:
        raise ConfigError(f"{config.dataset} trains {', '.join(tasks)}, not {config.task}",
                          "task")
    arch = config.model.get("arch") if isinstance(config.model, Mapping) else None
    if arch in ARCHITECTURE_TASKS and ARCHITECTURE_TASKS[arch] != config.task:
        raise ConfigError(f"architecture {arch!r} serves {ARCHITECTURE_TASKS[arch]}, not "
                          f"{config.task}", "model.arch")
    if config.task != "classification":
        if config.label_smoothing:
            raise ConfigError(f"label smoothing is for classification, not {config.task}",
                              "label_smoothing")
        if config.teacher:
            raise ConfigError(f"distillation is for classification, not {config.task}",
                              "teacher")
    options = check_table(config.task_options, "task_options")
    allowed = TASK_OPTIONS[config.task]
    check_keys(options, "task_options", allowed, f"the {config.task} task")
    for key, value in options.items():
        allowed[key](value, f"task_options.{key}")
    if config.task == "segmentation" and config.augment not in (None, "none"):
        raise ConfigError("augmentation moves the images but not their masks; leave it out "
                          "for segmentation", "augment")


def _check_optimizer_builds(config: TrainConfig) -> None:
    """Build the optimizer once on a stand-in parameter: its own checks refuse here."""
    import torch

    from .build import optimizer_arguments

    cls, arguments = optimizer_arguments(config)
    try:
        cls([torch.zeros(1, requires_grad=True)], **arguments)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ConfigError(str(exc), "optimizer") from exc


def _sha256(value: Any, field: str) -> None:
    """A sha256 digest: 64 lowercase hexadecimal digits."""
    if not (isinstance(value, str) and len(value) == 64
            and all(c in "0123456789abcdef" for c in value)):
        raise ConfigError(f"must be the file's sha256 (64 lowercase hex digits), got "
                          f"{_show(value)}", field)


_DATA_FILE_CHECKS: dict[str, Checker] = {
    "path": check_text,
    "sha256": _sha256,
    "input_shape": _int_list(1),
    "classes": _integer(2, 2**20),
}


def check_data_file(config: TrainConfig) -> None:
    """``data_file``: empty unless ``dataset = "npz"``, then every key of
    :data:`DATA_FILE_KEYS` (path, sha256, per-sample input shape, classes)."""
    spec = check_table(config.data_file, "data_file")
    if config.dataset != USER_DATASET:
        if spec:
            raise ConfigError(f"only for dataset {USER_DATASET!r} (the user's own arrays); "
                              f"{config.dataset} is built in", "data_file")
        return
    check_keys(spec, "data_file", DATA_FILE_KEYS, "the data file")
    for key, checker in _DATA_FILE_CHECKS.items():
        if key not in spec:
            raise ConfigError(f"missing: dataset {USER_DATASET!r} needs the data file's "
                              f"{', '.join(DATA_FILE_KEYS)} (whetstone train --data FILE "
                              f"records them)", f"data_file.{key}")
        checker(spec[key], f"data_file.{key}")


def validate_config(config: TrainConfig) -> None:
    """Check every field and table of ``config``; raise :class:`ConfigError` at the first
    problem, naming the field.

    Checked: ``name`` (non-empty string); ``dataset`` (one of :data:`DATASET_SHAPES`);
    ``task`` (:func:`_check_task`); ``model`` (``arch`` and that architecture's keywords,
    :data:`MODEL_KEYS`: positive widths, ``dropout`` in [0, 1), sizes that match the
    dataset); ``activation``; ``key`` (for classification only: ``classes`` equal to the
    dataset's, ``width >= classes``, ``overlapping`` boolean,
    ``seed``; widths at most :data:`MAX_WIDTH`); ``optimizer`` (``name``; ``lr`` finite
    >= 0; ``clip_grad_norm`` finite > 0; only the optimizer's own keywords, numbers finite
    and >= 0, ``betas`` in [0, 1), flags boolean; built once); ``schedule`` (``name``,
    ``allocation``, the sharpener's keywords with their types, required ones present; built
    once); ``surrogate``; ``epochs`` >= 1; ``finetune_epochs`` >= 0; ``batch_size`` >= 1;
    ``val_every`` >= 1 (these four at most :data:`MAX_COUNT`); ``seed`` in [0, 2^63);
    ``lr_schedule``; ``augment``; ``label_smoothing`` in [0, 1); ``teacher``
    (:func:`check_teacher_table`); ``schedule_alternatives`` (schedule names, their keywords
    and types); ``precision``.
    """
    _check_names(config)
    check_integer(config.epochs, "epochs", 1, MAX_COUNT)
    check_integer(config.finetune_epochs, "finetune_epochs", 0, MAX_COUNT)
    check_integer(config.batch_size, "batch_size", 1, MAX_COUNT)
    check_integer(config.seed, "seed", 0, MAX_SEED)
    check_integer(config.val_every, "val_every", 1, MAX_COUNT)
    check_number(config.label_smoothing, "label_smoothing", 0.0, 1.0, max_open=True)
    _check_task(config)
    check_bool(config.twin, "twin")
    check_data_file(config)
    _check_model(config.model, config.dataset, config.data_file)
    if config.task == "classification":
        _check_key(config.key, config.dataset, config.data_file)
    _check_optimizer(config.optimizer)
    _check_schedule(config.schedule)
    _check_alternatives(config.schedule_alternatives)
    check_teacher_table(config.teacher)
    _check_optimizer_builds(config)
