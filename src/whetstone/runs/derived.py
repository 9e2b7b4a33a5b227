"""Files derived from a run's model, bound to it by the model's checksum.

Every file computed from ``model.safetensors`` (the converted ``spiking.npz``, ``stats.json``,
quantized networks, NIR exports) records the model's content checksum
(:func:`whetstone.runs.io.tensors_sha256`) under :data:`~whetstone.runs.io.MODEL_HASH_KEY`.
A derived file whose recorded checksum is not the run's current one is stale: the run's
spiking network is then converted again (:func:`spiking_network`), and
:func:`check_derived` refuses other stale files with a clear error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .folder import WEIGHTS, load_run
from .io import CHECKSUM_KEY, MODEL_HASH_KEY, load_tensors, tensors_sha256

SPIKING_FILE = "spiking.npz"
"""The converted network of a run folder."""


class StaleFileError(ValueError):
    """A derived file came from another model than the run's current one."""


def model_hash(run_dir: str | Path) -> str:
    """The content checksum of a run's ``model.safetensors`` (verified against its bytes)."""
    path = Path(run_dir) / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no {WEIGHTS}; did the training finish?")
    tensors, metadata = load_tensors(path)
    recorded = metadata.get(CHECKSUM_KEY)
    return recorded if recorded is not None else tensors_sha256(tensors)


def check_derived(recorded: dict[str, Any], path: str | Path, run_dir: str | Path) -> None:
    """Raise :class:`StaleFileError` unless ``recorded`` (a derived file's metadata) names the
    current model of ``run_dir``."""
    current = model_hash(run_dir)
    if recorded.get(MODEL_HASH_KEY) != current:
        raise StaleFileError(
            f"{path} was not computed from the current model of {run_dir} (model checksum "
            f"{str(recorded.get(MODEL_HASH_KEY))[:12]}, the run's is {current[:12]}); "
            "compute it again")


def spiking_network(run_dir: str | Path, force: bool = False, rebuild: bool = False) -> Any:
    """The :class:`~whetstone.runtime.SpikingNetwork` of a run, from ``RUN/spiking.npz`` when
    that file came from the run's current model, otherwise converted now and saved there.

    ``force`` converts even layers below sharpness 1 (see
    :func:`~whetstone.conversion.to_spiking`); ``rebuild`` converts again in any case.
    """
    from ..runtime import SpikingNetwork

    run_dir = Path(run_dir)
    path = run_dir / SPIKING_FILE
    current = model_hash(run_dir)
    if path.is_file() and not (force or rebuild):
        net = SpikingNetwork.load(path)
        if net.metadata.get(MODEL_HASH_KEY) == current:
            if net.input_shape is None:  # written before conversion recorded it
                net.metadata["input_shape"] = list(run_input_shape(run_dir))
            return net
    return convert_run(run_dir, path, force=force, checksum=current)


def run_input_shape(run_dir: str | Path) -> tuple[int, ...]:
    """The batch-free input shape of a run's model: its dataset's ``(C, H, W)`` (the user's
    data file's recorded sample shape), or a policy run's observation shape."""
    from ..presets import TrainConfig
    from ..presets.build import input_shape
    from .policy import PolicyConfig, is_policy_run

    config_file = Path(run_dir) / "config.json"
    if is_policy_run(run_dir):
        return tuple(PolicyConfig.from_dict(json.loads(config_file.read_text())).input_shape)
    return input_shape(TrainConfig.load(config_file))


def convert_run(run_dir: str | Path, out: str | Path, force: bool = False,
                checksum: str | None = None) -> Any:
    """Convert a run's model and save the network at ``out``, recording the model's checksum."""
    import torch

    from ..conversion import to_spiking

    run = load_run(run_dir)
    example = torch.zeros((1, *run_input_shape(run_dir)))
    net = to_spiking(run.model, example, force=force)
    net.metadata[MODEL_HASH_KEY] = checksum or model_hash(run_dir)
    net.save(out)
    return net
