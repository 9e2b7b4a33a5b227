"""Datasets for whetstone: loading, fetching and batching.

``load(name, split)`` returns uint8 tensors (images ``(N, 28, 28)`` or ``(N, 32, 32, 3)``,
labels ``(N,)``) from the local data folder, fetching and caching them on first use. ``split``
is ``"train"``, ``"val"`` (the last 5,000 images of the official training set, held out for
every choice of recipe, epoch or checkpoint), ``"test"`` or ``"train-full"`` (train + val);
``to_float`` turns images into float network inputs and ``ArrayLoader`` batches tensors in
memory. ``load_segmentation`` composes a digit-segmentation set (canvases of non-overlapping
MNIST digits with 11-class masks) from an MNIST split, deterministically from a seed;
``load_coco_masks`` reads binary masks of one category (e.g. COCO people) from COCO-format
instance annotations.
"""

from whetstone.data.cifar import read_cifar_bin
from whetstone.data.coco import load_coco_masks, polygon_mask, rle_decode
from whetstone.data.errors import DatasetError
from whetstone.data.idx import read_idx, write_idx
from whetstone.data.loader import ArrayLoader, to_float
from whetstone.data.segmentation import (
    CANVAS_SIZE,
    SEGMENTATION_CLASSES,
    compose_digits,
    load_segmentation,
)
from whetstone.data.sources import DATASETS, SPLITS, VALIDATION_SIZE, default_data_dir, load

__all__ = [
    "DATASETS",
    "ArrayLoader",
    "CANVAS_SIZE",
    "DatasetError",
    "SEGMENTATION_CLASSES",
    "SPLITS",
    "VALIDATION_SIZE",
    "compose_digits",
    "default_data_dir",
    "load",
    "load_coco_masks",
    "load_segmentation",
    "polygon_mask",
    "read_cifar_bin",
    "read_idx",
    "rle_decode",
    "to_float",
    "write_idx",
]
