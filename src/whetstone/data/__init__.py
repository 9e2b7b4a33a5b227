"""Datasets for whetstone: loading, fetching and batching.

``load(name, split)`` returns uint8 tensors (images ``(N, 28, 28)`` or ``(N, 32, 32, 3)``,
labels ``(N,)``) from the local data folder, fetching and caching them on first use. ``split``
is ``"train"``, ``"val"`` (the last 5,000 images of the official training set, held out for
every choice of recipe, epoch or checkpoint), ``"test"`` or ``"train-full"`` (train + val);
``to_float`` turns images into float network inputs and ``ArrayLoader`` batches tensors in
memory.
"""

from whetstone.data.cifar import read_cifar_bin
from whetstone.data.errors import DatasetError
from whetstone.data.idx import read_idx, write_idx
from whetstone.data.loader import ArrayLoader, to_float
from whetstone.data.sources import DATASETS, SPLITS, VALIDATION_SIZE, default_data_dir, load

__all__ = [
    "DATASETS",
    "ArrayLoader",
    "DatasetError",
    "SPLITS",
    "VALIDATION_SIZE",
    "default_data_dir",
    "load",
    "read_cifar_bin",
    "read_idx",
    "to_float",
    "write_idx",
]
