"""The user's own data: a NumPy ``.npz`` file of arrays, checked before anything trains on it.

The file holds ``x_train``, ``y_train``, ``x_test``, ``y_test`` and optionally ``x_val``,
``y_val`` (no other arrays). It is read with ``np.load(..., allow_pickle=False)``: object
arrays are refused, never unpickled. Checked:

* ``x_*``: numeric arrays ``(N, ...)`` with at least one sample, every split the same
  per-sample shape (images channels first, ``(N, C, H, W)``, for the convolutional
  architectures; any shape a ``--model`` takes); ``uint8`` (pixels, divided by 255) or
  floating point (used as they are, finite);
* ``y_*``: integer class labels ``(N,)``, as many as the split's ``x``, in ``[0, classes)``
  where ``classes`` is the largest label plus one (at least 2).

Without ``x_val``/``y_val`` the validation split is the last :data:`HOLDOUT_FRACTION` of
``x_train`` (as the built-in datasets hold out the last 5,000 training images), and
``"train"`` is the rest. A run folder records the file's path and sha256
(:func:`describe`); :func:`load_split_arrays` refuses a file whose content changed since.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DatasetError

__all__ = ["ARRAY_SPLITS", "HOLDOUT_FRACTION", "REQUIRED", "ArraysInfo", "describe",
           "file_sha256", "load_split_arrays", "read_arrays"]

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
"""Arrays every data file holds."""

OPTIONAL = ("x_val", "y_val")
"""Arrays a data file may hold (both or neither)."""

HOLDOUT_FRACTION = 0.1
"""Share of ``x_train`` (its end) held out for validation when the file has no ``x_val``."""

ARRAY_SPLITS = ("train", "val", "test", "train-full")
"""Splits :func:`load_split_arrays` gives (``"train-full"``: train and validation)."""

MAX_CLASSES = 2**20
"""Most classes a data file may label (a sanity bound)."""


@dataclass(frozen=True)
class ArraysInfo:
    """What a checked data file holds: ``sha256`` of its bytes, the per-sample
    ``input_shape``, the number of ``classes``, the samples per array group (``sizes``:
    ``train``, ``val`` (0: held out from train), ``test``) and the ``dtype`` of the inputs."""

    path: Path
    sha256: str
    input_shape: tuple[int, ...]
    classes: int
    sizes: dict[str, int]
    dtype: str


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fail(path: Path, problem: str) -> DatasetError:
    return DatasetError(f"{path}: {problem}")


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The checked arrays of a data file (see the module doc); :class:`DatasetError` naming
    the file and the array for anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such data file" if not path.exists() else "not a file")
    if not zipfile.is_zipfile(path):
        raise _fail(path, "not a readable .npz file (not a zip archive of .npy arrays; "
                          "write it with numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files)
            unknown = sorted(set(names) - set(REQUIRED) - set(OPTIONAL))
            if unknown:
                raise _fail(path, f"unknown array(s) {', '.join(unknown)}; a data file holds "
                                  f"{', '.join(REQUIRED)} and optionally x_val, y_val")
            missing = [n for n in REQUIRED if n not in names]
            if missing:
                raise _fail(path, f"missing array(s) {', '.join(missing)} (a data file holds "
                                  f"{', '.join(REQUIRED)}, optionally x_val, y_val)")
            if ("x_val" in names) != ("y_val" in names):
                raise _fail(path, "x_val and y_val go together: give both or neither")
            arrays = {name: npz[name] for name in names}
    except DatasetError:
        raise
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise _fail(path, f"cannot read the arrays without pickle ({exc}); store numeric "
                          f"arrays") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise _fail(path, f"not a readable .npz file ({exc})") from None
    _check(path, arrays)
    return arrays


_INPUT_KINDS = {"u": "unsigned integer", "i": "signed integer", "f": "floating point",
                "b": "boolean", "c": "complex", "O": "object", "U": "string", "S": "bytes",
                "V": "structured", "M": "datetime", "m": "timedelta"}
"""Names of NumPy dtype kinds for the messages."""


def _check(path: Path, arrays: dict[str, np.ndarray]) -> None:
    shape: tuple[int, ...] | None = None
    for split in ("train", "val", "test"):
        if f"x_{split}" not in arrays:
            continue
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        kind = _INPUT_KINDS.get(x.dtype.kind, x.dtype.kind)
        if not (x.dtype == np.uint8 or x.dtype.kind == "f"):
            raise _fail(path, f"x_{split} has dtype {x.dtype} ({kind}); inputs are uint8 "
                              f"(pixels, divided by 255) or floating point")
        if x.ndim < 2 or x.shape[0] < 1:
            raise _fail(path, f"x_{split} has shape {x.shape}; inputs are (N, ...) with "
                              f"N >= 1 samples of at least one value")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise _fail(path, f"x_{split} holds NaN or infinite values")
        if shape is None:
            shape = tuple(int(s) for s in x.shape[1:])
        elif tuple(x.shape[1:]) != shape:
            raise _fail(path, f"x_{split} has samples of shape {tuple(x.shape[1:])}, x_train "
                              f"of shape {shape}: every split needs the same")
        if y.dtype.kind not in "iu":
            raise _fail(path, f"y_{split} has dtype {y.dtype} "
                              f"({_INPUT_KINDS.get(y.dtype.kind, y.dtype.kind)}); labels are "
                              f"integers")
        if y.ndim != 1:
            raise _fail(path, f"y_{split} has shape {y.shape}; labels are (N,), one per sample")
        if len(y) != len(x):
            raise _fail(path, f"x_{split} has {len(x)} samples but y_{split} has {len(y)} "
                              f"labels")
        if y.min() < 0 or y.max() >= MAX_CLASSES:
            raise _fail(path, f"y_{split} holds labels outside [0, {MAX_CLASSES})")
    if "x_val" not in arrays and len(arrays["x_train"]) < 2:
        raise _fail(path, "x_train needs at least 2 samples to hold out a validation split "
                          "(or give x_val, y_val)")
    if _classes(arrays) < 2:
        raise _fail(path, "the labels name only one class; classification needs at least 2")


def _classes(arrays: dict[str, np.ndarray]) -> int:
    return 1 + max(int(arrays[n].max()) for n in ("y_train", "y_val", "y_test") if n in arrays)


def describe(path: str | Path) -> ArraysInfo:
    """Read and check a data file; what it holds, with the sha256 of its bytes."""
    path = Path(path)
    sha = file_sha256(path) if path.is_file() else ""
    arrays = read_arrays(path)
    x_train = arrays["x_train"]
    val = len(arrays["x_val"]) if "x_val" in arrays else 0
    return ArraysInfo(path.resolve(), sha, tuple(int(s) for s in x_train.shape[1:]),
                      _classes(arrays),
                      {"train": len(x_train), "val": val, "test": len(arrays["x_test"])},
                      str(x_train.dtype))


def _holdout(n: int) -> int:
    """Samples held out for validation from ``n`` training samples (at least 1, at most
    ``n - 1``)."""
    return min(n - 1, max(1, math.ceil(n * HOLDOUT_FRACTION)))


def _as_float(x: np.ndarray) -> torch.Tensor:
    if x.dtype == np.uint8:
        return torch.from_numpy(x.astype(np.float32) / np.float32(255.0))
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def load_split_arrays(path: str | Path, split: str, sha256: str | None = None,
                      limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``split`` (:data:`ARRAY_SPLITS`) of a data file as float32 inputs and int64 labels
    (``limit``: the first samples). With ``sha256`` (the run's record) a file whose bytes
    changed is refused with :class:`DatasetError`."""
    path = Path(path)
    if split not in ARRAY_SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose from {', '.join(ARRAY_SPLITS)}")
    if sha256 is not None:
        if not path.is_file():
            raise _fail(path, "the run's data file is missing (the run recorded this path)")
        current = file_sha256(path)
        if current != sha256:
            raise _fail(path, f"the data file changed since the run trained on it (sha256 "
                              f"{current[:12]}, the run recorded {sha256[:12]}); restore it, "
                              f"or train a new run on the new file")
    arrays = read_arrays(path)
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    if "x_val" in arrays:
        x_val, y_val = arrays["x_val"], arrays["y_val"]
    else:
        cut = len(x_train) - _holdout(len(x_train))
        x_val, y_val = x_train[cut:], y_train[cut:]
        x_train, y_train = x_train[:cut], y_train[:cut]
    parts = {"train": (x_train, y_train), "val": (x_val, y_val),
             "test": (arrays["x_test"], arrays["y_test"]),
             "train-full": (np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val]))}
    x, y = parts[split]
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return _as_float(x), torch.from_numpy(y.astype(np.int64))
