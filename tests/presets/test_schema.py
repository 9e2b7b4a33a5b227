"""The configuration schema: every field and table checked when a configuration is made,
loaded or merged; errors are ConfigError naming the field (and the file)."""

from __future__ import annotations

import inspect
import json
import pickle
import random
from pathlib import Path

import pytest

from whetstone.presets import PRESETS, ConfigError, TrainConfig, get_preset, read_toml
from whetstone.presets.architectures import ARCHITECTURES
from whetstone.presets.build import check_device, check_teacher
from whetstone.presets.config import MAX_CONFIG_BYTES
from whetstone.presets.schema import MODEL_KEYS, did_you_mean

RECIPES = sorted([*(Path(__file__).parents[2] / "benchmarks" / "recipes").rglob("*.toml"),
                  *(Path(__file__).parents[2] / "src" / "whetstone" / "presets" / "recipes"
                    ).glob("*.toml")])


def test_config_error_is_a_value_error_with_field_and_source():
    error = ConfigError("must be >= 1, got 0", "epochs")
    assert isinstance(error, ValueError)
    assert str(error) == "epochs: must be >= 1, got 0"
    named = error.within("recipe.toml")
    assert str(named) == "recipe.toml: epochs: must be >= 1, got 0"
    assert named.field == "epochs" and named.source == "recipe.toml"
    assert named.within("--epochs") is named  # the first source named stays
    assert str(ConfigError("two\nlines")) == "two lines"
    copy = pickle.loads(pickle.dumps(named))
    assert str(copy) == str(named) and copy.field == "epochs"


def test_did_you_mean():
    assert did_you_mean("epochz", ["epochs", "seed"]) == "; did you mean 'epochs'?"
    assert did_you_mean("learning_rate", ["lr", "rho"]) == "; did you mean 'lr'?"
    assert did_you_mean("start-epoch", ["start_epoch"]) == "; did you mean 'start_epoch'?"
    assert did_you_mean("zzz", ["b", "a"]) == "; choose from a, b"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_valid(name):
    get_preset(name).validate()


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_benchmark_recipe_is_valid(path):
    assert RECIPES, "no recipes found"
    config = TrainConfig.from_toml(path)
    assert config.to_dict() == TrainConfig.from_dict(config.to_dict()).to_dict()


def test_model_keys_are_the_builders_keywords():
    assert set(MODEL_KEYS) == set(ARCHITECTURES)
    for arch, builder in ARCHITECTURES.items():
        keywords = set(inspect.signature(builder).parameters) - {"key", "act"}
        assert set(MODEL_KEYS[arch]) == keywords, arch


# (overrides merged over mnist-dense, the field named, a piece of the message)
REFUSED = [
    ({"epochs": 0}, "epochs", "integer >= 1"),
    ({"epochs": 2.0}, "epochs", "integer"),
    ({"epochs": True}, "epochs", "boolean"),
    ({"finetune_epochs": -1}, "finetune_epochs", ">= 0"),
    ({"batch_size": "128"}, "batch_size", "string"),
    ({"seed": -1}, "seed", "integer >= 0"),
    ({"seed": 2**63}, "seed", "integer <= 9223372036854775807"),
    ({"epochs": 10**10}, "epochs", "integer <= 1000000000"),
    ({"key": {"width": 2**21}}, "key.width", "integer <= 1048576"),
    ({"val_every": 0}, "val_every", ">= 1"),
    ({"label_smoothing": float("nan")}, "label_smoothing", "nan"),
    ({"label_smoothing": -0.1}, "label_smoothing", "[0, 1)"),
    ({"name": ""}, "name", "non-empty"),
    ({"name": None}, "name", "non-empty"),
    ({"dataset": "cifar-10"}, "dataset", "did you mean 'cifar10'"),
    ({"dataset": 10}, "dataset", "name of dataset"),
    ({"activation": "relu"}, "activation", "unknown activation"),
    ({"surrogate": "arctangent"}, "surrogate", "did you mean 'arctan'"),
    ({"lr_schedule": "linear"}, "lr_schedule", "unknown learning-rate schedule"),
    ({"augment": "shift-x"}, "augment", "unknown augment"),
    ({"augment": 2}, "augment", "string"),
    ({"precision": "bfloat16"}, "precision", "unknown precision"),
    ({"model": []}, "model", "must be a table"),
    ({"model": {"hidden": [64, 0]}}, "model.hidden[1]", ">= 1, got 0"),
    ({"model": {"hidden": [64, None]}}, "model.hidden[1]", "null"),
    ({"model": {"hidden": 64}}, "model.hidden", "list of integers"),
    ({"model": {"hidden": [1.5]}}, "model.hidden[0]", "integer"),
    ({"model": {"batchnorm": "yes"}}, "model.batchnorm", "true or false"),
    ({"model": {"widths": [8]}}, "model.widths", "unknown key for architecture 'dense'"),
    ({"model": {"hidden": [10**400]}}, "model.hidden[0]", "integer"),
    ({"optimizer": {"lr": 10**400}}, "optimizer.lr", "finite"),
    ({"model": {"arch": "mlp"}}, "model.arch", "unknown architecture"),
    ({"model": {"arch": "vgg-cnn", "widths": []}}, "model.widths", "at least 1"),
    ({"model": {"arch": "whetstone-cnn", "in_channels": 3}}, "model.in_channels",
     "mnist gives 1"),
    ({"key": {"classes": 100}}, "key.classes", "mnist has 10 classes"),
    ({"key": {"width": 0}}, "key.width", ">= 1"),
    ({"key": {"overlap": False}}, "key.overlap", "did you mean 'overlapping'"),
    ({"key": {"seed": -2}}, "key.seed", ">= 0"),
    ({"optimizer": {"lr": float("inf")}}, "optimizer.lr", "got inf"),
    ({"optimizer": {"lr": -0.1}}, "optimizer.lr", ">= 0"),
    ({"optimizer": {"lr": "0.1"}}, "optimizer.lr", "string"),
    ({"optimizer": {"rho": 1.5}}, "optimizer.rho", "[0, 1]"),
    ({"optimizer": {"eps": float("nan")}}, "optimizer.eps", "nan"),
    ({"optimizer": {"momentum": 0.9}}, "optimizer.momentum", "adadelta"),
    ({"optimizer": {"name": "adam", "beta": [0.9, 0.99]}}, "optimizer.beta",
     "did you mean 'betas'"),
    ({"optimizer": {"name": "adam", "betas": [0.9]}}, "optimizer.betas", "two numbers"),
    ({"optimizer": {"name": "sgd", "weight_decay": -1}}, "optimizer.weight_decay", ">= 0"),
    ({"optimizer": {"name": "sgd", "nesterov": True, "momentum": 0.0}}, "optimizer",
     "Nesterov"),
    ({"optimizer": {"clip_grad_norm": -1.0}}, "optimizer.clip_grad_norm", "> 0"),
    ({"optimizer": {"name": None}}, "optimizer.name", "name of optimizer"),
    ({"schedule": {"steps": 0}}, "schedule", "steps >= 1"),
    ({"schedule": {"steps": "5"}}, "schedule.steps", "string"),
    ({"schedule": {"mode": "step"}}, "schedule.mode", "unknown value 'step'"),
    ({"schedule": {"bottom_up": 1}}, "schedule.bottom_up", "true or false"),
    ({"schedule": {"name": "none", "steps": 3}}, "schedule.steps", "schedule 'none'"),
    ({"schedule": {"name": "scheduled", "duration": float("nan")}}, "schedule.duration",
     "nan"),
    ({"schedule": {"name": "adaptive", "rate": -0.5}}, "schedule.rate", ">= 0"),
    ({"schedule": {"name": "adaptive", "patience": 1.5}}, "schedule.patience", "integer"),
    ({"schedule_alternatives": {"simple": {"name": "simple"}}},
     "schedule_alternatives.simple.name", "leave 'name' out"),
    ({"schedule_alternatives": {"adaptive": {"min_init": 3}}},
     "schedule_alternatives.adaptive.min_init", "did you mean 'min_init_epochs'"),
    ({"schedule_alternatives": {"simple": 5}}, "schedule_alternatives.simple", "table"),
    ({"teacher": {"run": ""}}, "teacher.run", "non-empty"),
    ({"teacher": {"run": "x", "weight": float("nan")}}, "teacher.weight", "nan"),
    ({"teacher": {"run": "x", "init": "yes"}}, "teacher.init", "true or false"),
    ({"teacher": {"run": "x", "temperature": float("inf")}}, "teacher.temperature", "inf"),
]


@pytest.mark.parametrize(("overrides", "field", "message"), REFUSED,
                         ids=[r[1] + "-" + str(i) for i, r in enumerate(REFUSED)])
def test_refused_values_name_the_field(overrides, field, message):
    with pytest.raises(ConfigError) as info:
        get_preset("mnist-dense").merged(overrides, source="r.toml")
    error = info.value
    assert error.field == field, str(error)
    assert error.source == "r.toml"
    assert message in str(error), str(error)
    assert str(error).startswith(f"r.toml: {field}: ")
    assert "\n" not in str(error)


def test_every_way_of_making_a_config_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="^epochs: "):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="^epochs: "):
        TrainConfig.from_dict({"epochs": -3})
    with pytest.raises(ConfigError, match="^dataset: "):
        TrainConfig.from_dict({"dataset": "imagenet"})
    with pytest.raises(ConfigError, match="epochz: unknown key .*did you mean 'epochs'"):
        TrainConfig.from_dict({"epochz": 3})
    with pytest.raises(ConfigError, match="schedule.name: unknown schedule 'fast'"):
        get_preset("mnist-dense").with_schedule("fast")
    config = get_preset("mnist-dense")
    config.epochs = 0  # assigned after it was made: validate() and check_teacher() see it
    with pytest.raises(ConfigError, match="^epochs: "):
        config.validate()
    with pytest.raises(ConfigError, match="^epochs: "):
        check_teacher(config)


def test_teacher_table():
    with pytest.raises(ConfigError, match="^teacher.run: missing"):
        get_preset("mnist-dense").merged({"teacher": {"weight": 0.5}})
    with pytest.raises(ConfigError, match="^teacher: distill and init are both off"):
        get_preset("mnist-dense").merged({"teacher": {"run": "x", "distill": False}})
    ok = get_preset("mnist-dense").merged(
        {"teacher": {"run": "twin", "temperature": 2, "weight": 1, "init": True,
                     "distill": False}})
    assert ok.teacher["weight"] == 1


def test_what_the_schema_accepts_is_unchanged():
    """Documented settings keep working: integers where floats go, nulls where optional,
    'none' spellings, every schedule and optimizer with its own keywords."""
    base = get_preset("mnist-dense")
    base.merged({"optimizer": {"name": "sgd", "lr": 0, "momentum": 0, "nesterov": False,
                               "weight_decay": 1e-4, "clip_grad_norm": 2}})
    base.merged({"optimizer": {"name": "adamw", "lr": 1e-3, "betas": (0.9, 0.999),
                               "amsgrad": True, "clip_grad_norm": None}})
    base.merged({"optimizer": {"name": "rmsprop", "alpha": 0.9, "centered": True}})
    base.merged({"schedule": {"name": "scheduled", "start": 1, "duration": 0.5,
                              "intermission": 0, "mode": "batch", "allocation": "uniform"}})
    base.merged({"schedule": {"name": "step", "start_step": 0, "layer_duration": 10}})
    base.merged({"schedule": {"name": "none"}, "surrogate": None, "lr_schedule": None,
                 "augment": None})
    base.merged({"surrogate": "none", "lr_schedule": "constant", "augment": "none",
                 "label_smoothing": 0.1, "key": {"seed": None}})
    base.merged({"model": {"arch": "dense", "hidden": [], "dropout": 0.5, "in_features": 784}})
    get_preset("cifar10-cnn").merged({"dataset": "cifar100", "key": {"classes": 100,
                                                                     "width": 200}})


def test_merge_semantics_are_kept():
    config = get_preset("mnist-cnn").with_schedule("adaptive")
    assert config.schedule == {"name": "adaptive", "min_init_epochs": 10}
    config = get_preset("mnist-dense").merged({"optimizer": {"name": "adam"}})
    assert config.optimizer == {"name": "adam"}
    # another architecture starts the model table afresh (no 'hidden' left over for a CNN)
    config = get_preset("mnist-dense").merged({"model": {"arch": "whetstone-cnn"}})
    assert config.model == {"arch": "whetstone-cnn"}
    config = get_preset("mnist-dense").merged({"model": {"batchnorm": True}})
    assert config.model == {"arch": "dense", "hidden": [256, 64], "batchnorm": True}


def _config_file(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(("content", "message"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00garbage", "not a JSON configuration"),
    (b"\xff\xfe{}", "not a JSON configuration"),
    (b"[" * 50000, "not a JSON configuration"),
    (b'"text"', "got str"),
    (b"null", "got NoneType"),
    (b'{"epochs": 1' + b"0" * 5000 + b"}", "not a JSON configuration"),
    (b'{"epochs": Infinity}', "epochs: must be an integer"),
    (b'{"model": {"arch": "dense", "hidden": [null]}}', "model.hidden[0]"),
    (b'{"optimizer": {"name": "adam", "learning_rate": 0.1}}', "did you mean 'lr'"),
])
def test_load_names_the_file(tmp_path, content, message):
    path = _config_file(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        TrainConfig.load(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value), str(info.value)
    assert info.value.source == str(path)


def test_load_refuses_missing_and_oversized_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the configuration: No such file"):
        TrainConfig.load(tmp_path / "nope.json")
    big = _config_file(tmp_path, b" " * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than"):
        TrainConfig.load(big)
    toml = tmp_path / "big.toml"
    toml.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="big.toml: larger than"):
        read_toml(toml)


def test_from_toml_names_the_file(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('preset = "mnist-dense"\n[optimizer]\nlr = -1\n')
    with pytest.raises(ConfigError, match=r"r\.toml: optimizer\.lr: must be a finite number"):
        TrainConfig.from_toml(path)
    path.write_text('preset = 3\n')
    with pytest.raises(ConfigError, match=r"r\.toml: preset: must be the name of preset"):
        TrainConfig.from_toml(path)
    path.write_text('epochs = 4\n')
    assert TrainConfig.from_toml(path).epochs == 4  # no preset: the defaults
    assert TrainConfig.from_toml(path, preset="mnist-cnn").name == "mnist-cnn"


def _mutations(seed: bytes, count: int, rng: random.Random) -> list[bytes]:
    cases = []
    for _ in range(count):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 4)):
            kind = rng.random()
            i = rng.randrange(len(data) + 1)
            if kind < 0.4 and data:
                data[min(i, len(data) - 1)] = rng.randrange(256)
            elif kind < 0.7:
                data[i:i] = bytes([rng.randrange(256)])
            elif data:
                del data[min(i, len(data) - 1)]
        cases.append(bytes(data))
    cases += [bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))) for _ in range(50)]
    return cases


def test_mutated_files_raise_only_config_errors(tmp_path):
    """Random and mutated bytes as config.json and as a TOML recipe: a configuration or a
    ConfigError naming the file, nothing else."""
    rng = random.Random(2024)
    good_json = json.dumps(get_preset("mnist-dense").to_dict()).encode()
    good_toml = RECIPES[0].read_bytes() if RECIPES else b'preset = "mnist-dense"\n'
    json_path, toml_path = tmp_path / "config.json", tmp_path / "r.toml"
    for content in _mutations(good_json, 150, rng):
        json_path.write_bytes(content)
        try:
            TrainConfig.load(json_path)
        except ConfigError as exc:
            assert str(exc).startswith(f"{json_path}: ")
    for content in _mutations(good_toml, 150, rng):
        toml_path.write_bytes(content)
        try:
            TrainConfig.from_toml(toml_path)
        except ConfigError as exc:
            assert str(exc).startswith(f"{toml_path}: ")


def test_check_device():
    check_device("cpu")
    with pytest.raises(ConfigError, match=r"^device: not a torch device 'gpu'"):
        check_device("gpu")
    with pytest.raises(ConfigError, match=r"^device: 'cuda:99' is not available"):
        check_device("cuda:99")
