"""Training checkpoints: everything needed to continue a run bit for bit, in one file.

``checkpoint.safetensors`` (written atomically at every epoch end and when training is
interrupted) holds, as tensors, the model's state, the optimizer's tensors, torch's random
generator state and the data loader's generator state, and in its header metadata
(``"state"``, JSON) the rest: the loop position (:class:`~whetstone.training.LoopState`:
epoch, batch, running sums, finished epochs' records), the optimizer's other fields, the
learning-rate schedule, the sharpener, Python's and NumPy's random states, and the
``train_run`` arguments that select the data. Nothing is pickled.

Nested states are stored as JSON in which every tensor is replaced by ``{"__tensor__": key}``
(the tensor lies in the file under ``key``), every dict by ``{"__items__": [[k, v], ...]}``
(keys keep their type: the optimizer's are integers) and every tuple by ``{"__tuple__":
[...]}``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..sharpening.schedules import Sharpener
from ..training.history import EpochRecord, History
from ..training.loop import LoopState
from .io import load_tensors, save_tensors, state_tensors

CHECKPOINT = "checkpoint.safetensors"
FORMAT = "whetstone-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be used: unreadable, of another format, or not this run's."""


def _encode(obj: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        return {"__items__": [[k, _encode(v, f"{key}/{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{key}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{key}/{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"checkpoint: cannot store {type(obj).__name__} at {key}")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
        if "__items__" in obj:
            return {k: _decode(v, tensors) for k, v in obj["__items__"]}
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        raise ValueError(f"unknown object in checkpoint state: {sorted(obj)[:3]}")
    return obj


def save_checkpoint(
    path: Path,
    state: LoopState,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    sharpener: Sharpener | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Write the checkpoint of a run at ``state`` to ``path`` atomically (see the module
    docstring). ``data`` records the arguments that chose the training data (limits)."""
    tensors = {f"model/{k}": v for k, v in state_tensors(model).items()}
    content = {
        "loop": {k: getattr(state, k) for k in
                 ("epoch", "batch", "loss_sum", "correct", "seen", "epoch_time")},
        "history": [r.to_dict() for r in state.history],
        "loader": state.loader,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "sharpener": sharpener.state_dict() if sharpener is not None else None,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),  # noqa: NPY002
                "python": random.getstate()},
        "data": data or {},
    }
    encoded = _encode(content, "state", tensors)
    save_tensors(tensors, Path(path), {"format": FORMAT, "version": str(VERSION),
                                       "state": json.dumps(encoded, sort_keys=True)})


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The decoded content of a checkpoint file (``model`` state included), checksum verified.
    Raises :class:`CheckpointError` naming the file."""
    path = Path(path)
    try:
        tensors, metadata = load_tensors(path)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {exc}") from None
    if metadata.get("format") != FORMAT or metadata.get("version") != str(VERSION):
        raise CheckpointError(f"{path}: not a whetstone checkpoint (version {VERSION})")
    try:
        content = _decode(json.loads(metadata["state"]), tensors)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint state ({exc})") from None
    content["model"] = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    return content


def restore_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    sharpener: Sharpener | None = None,
    loader: Any = None,
    rank: int = 0,
) -> tuple[LoopState, dict[str, Any]]:
    """Load a checkpoint into the given objects and the global random generators; returns the
    loop position to pass to ``fit(..., resume=...)`` and the recorded ``data`` arguments.
    The training loader is restored to the state it had at the start of the epoch in progress
    (in a data-parallel run, the state of process ``rank``).
    """
    content = read_checkpoint(path)
    try:
        model.load_state_dict(content["model"])
        optimizer.load_state_dict(content["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(content["scheduler"])
        if sharpener is not None:
            sharpener.load_state_dict(content["sharpener"])
        loop = dict(content["loop"])
        loader_state = content["loader"]
        if isinstance(loader_state, dict) and set(loader_state) == {"ranks"}:
            own = loader_state["ranks"][rank]  # a data-parallel run: this process's share
            loader_state = own["loader"]
            loop.update({k: own[k] for k in ("loss_sum", "correct", "seen")})
        if loader is not None and loader_state is not None:
            loader.load_state_dict(loader_state)
        rng = content["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])  # noqa: NPY002
        version, internal, gauss = rng["python"]
        random.setstate((version, tuple(internal), gauss))
        history = History(EpochRecord(**r) for r in content["history"])
        state = LoopState(loop["epoch"], loop["batch"], loop["loss_sum"], loop["correct"],
                          loop["seen"], loop["epoch_time"], loader_state, history)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: does not fit this run ({exc})") from None
    return state, content.get("data", {})
