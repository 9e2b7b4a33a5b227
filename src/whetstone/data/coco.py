"""Binary masks of one category from COCO-format instance annotations (e.g. COCO people).

For users who have COCO: download ``annotations/instances_val2017.json`` (in
``annotations_trainval2017.zip``) and the images folder ``val2017/`` (``val2017.zip``) from
https://cocodataset.org, then::

    images, masks = load_coco_masks("annotations/instances_val2017.json", "val2017/",
                                    category="person", size=64)

The annotation file layout (the official ``instances_*.json``)::

    {"images": [{"id", "file_name", "height", "width"}, ...],
     "annotations": [{"id", "image_id", "category_id", "iscrowd",
                      "segmentation": [[x1, y1, x2, y2, ...], ...]            # polygons
                                   or {"counts": [...] | "string", "size": [h, w]}}, ...],
     "categories": [{"id", "name"}, ...]}

Run-length encoding (RLE): the mask is read in column-major order (down the first column,
then the next) and ``counts`` holds the lengths of the alternating runs, starting with a run
of 0s (possibly empty); the counts sum to ``h * w``. The compressed form writes the counts
as a string: each count ``x`` (for the 4th count on, ``x - counts[i - 2]``, which may be
negative) is cut into 5-bit groups, least significant first; each group is one character
``chr(48 + g)``, where ``g`` holds the 5 bits, plus 32 when more groups follow. The last group
carries the sign: when its bit ``0x10`` is set the number is negative (the bits read are
sign-extended, two's complement). :func:`rle_decode` implements both forms (no pycocotools needed).

Polygons are filled with Pillow's ``ImageDraw.polygon`` (vertices rounded to the pixel grid,
the boundary included), so masks can differ from pycocotools' rasterisation by a pixel along
the outline. Pillow comes with matplotlib (the ``plot`` extra).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from whetstone.data.errors import DatasetError

__all__ = ["load_coco_masks", "polygon_mask", "rle_decode"]


def _pillow() -> Any:
    try:
        from PIL import Image, ImageDraw
    except ImportError as exc:  # pragma: no cover - Pillow is installed with matplotlib
        raise ImportError(
            "whetstone.data.coco needs Pillow to draw polygons and read images; install the "
            "plot extra (pip install 'whetstone[plot]', matplotlib brings Pillow) or "
            "pip install pillow") from exc
    return Image, ImageDraw


def _decode_counts_string(text: str) -> list[int]:
    """The counts of a compressed RLE string (see the module docstring)."""
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        value = 0
        shift = 0
        more = True
        while more:
            if pos >= len(text):
                raise DatasetError("compressed RLE counts end in the middle of a number "
                                   "(last character has the continuation bit)")
            group = ord(text[pos]) - 48
            if not 0 <= group < 64:
                raise DatasetError(f"compressed RLE counts hold {text[pos]!r} at position "
                                   f"{pos}, outside the characters '0'..'o'")
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            pos += 1
            shift += 5
            if not more and group & 0x10:
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def rle_decode(rle: Mapping[str, Any]) -> np.ndarray:
    """Decode a COCO run-length encoding into a boolean mask.

    Args:
        rle: ``{"size": [h, w], "counts": [c0, c1, ...]}`` (uncompressed) or
            ``{"size": [h, w], "counts": "..."}`` (compressed string, ``str`` or ASCII
            ``bytes``). Runs alternate 0, 1, 0, ... starting with 0, in column-major order
            (see the module docstring).

    Returns:
        bool ``(h, w)``: ``mask.flatten(order="F")`` is ``c0`` False, ``c1`` True, ...

    Raises:
        whetstone.data.DatasetError: a malformed dict or size, a bad compressed string,
            negative counts, or counts that do not sum to ``h * w``.
    """
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise DatasetError(f"an RLE must be a dict with 'size' and 'counts', got {rle!r:.80}")
    size = rle["size"]
    if (not isinstance(size, Sequence) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                       for v in size)):
        raise DatasetError(f"RLE size must be [height, width] (non-negative integers), got "
                           f"{size!r:.80}")
    h, w = int(size[0]), int(size[1])
    raw = rle["counts"]
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise DatasetError(f"compressed RLE counts are not ASCII: {exc}") from None
    if isinstance(raw, str):
        counts = _decode_counts_string(raw)
    elif isinstance(raw, Sequence) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in raw):
        counts = [int(v) for v in raw]
    else:
        raise DatasetError("RLE counts must be a list of integers or a compressed string, "
                           f"got {type(raw).__name__}")
    if any(c < 0 for c in counts):
        raise DatasetError(f"RLE counts hold a negative run length ({min(counts)})")
    total = sum(counts)
    if total != h * w:
        raise DatasetError(f"RLE counts sum to {total}, not h * w = {h} * {w} = {h * w}")
    values = np.arange(len(counts)) % 2 == 1
    flat = np.repeat(values, np.asarray(counts, dtype=np.int64))
    return np.ascontiguousarray(flat.reshape(w, h).T)


def polygon_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Fill COCO polygons into a boolean mask (their union).

    Args:
        polygons: ``[[x1, y1, x2, y2, ...], ...]``, each with at least 3 points, in pixel
            coordinates (``x`` along the width).
        height: the mask's height in pixels.
        width: the mask's width in pixels.

    Returns:
        bool ``(height, width)``: the pixels Pillow's ``ImageDraw.polygon`` fills for any of
        the polygons (outline included; parts outside the image are cut off).

    Raises:
        whetstone.data.DatasetError: a polygon with an odd number of coordinates, fewer than
            3 points, or values that are not finite numbers; a bad size.
        ImportError: Pillow is not installed.
    """
    if (isinstance(height, bool) or isinstance(width, bool) or not isinstance(height, int)
            or not isinstance(width, int) or height < 0 or width < 0):
        raise DatasetError(f"polygon_mask needs a non-negative integer height and width, got "
                           f"{height!r} x {width!r}")
    if isinstance(polygons, str | bytes) or not isinstance(polygons, Sequence):
        raise DatasetError(f"polygons must be a list of coordinate lists, got "
                           f"{type(polygons).__name__}")
    Image, ImageDraw = _pillow()
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for i, poly in enumerate(polygons):
        try:
            xy = np.asarray(poly, dtype=np.float64)
        except (TypeError, ValueError):
            raise DatasetError(f"polygon {i} is not a list of numbers") from None
        if xy.ndim != 1 or len(xy) % 2 or len(xy) < 6:
            raise DatasetError(f"polygon {i} must be a flat list of at least 3 (x, y) pairs, "
                               f"got {xy.size} values")
        if not np.isfinite(xy).all():
            raise DatasetError(f"polygon {i} holds a non-finite coordinate")
        if height and width:
            draw.polygon([(float(x), float(y)) for x, y in xy.reshape(-1, 2)],
                         fill=1, outline=1)
    return np.asarray(canvas, dtype=np.uint8).astype(bool)


def _nearest_indices(source: int, target: int) -> np.ndarray:
    """``floor((i + 1/2) * source / target)`` for ``i < target``: the source pixel whose
    span holds the centre of target pixel ``i`` (exact integer arithmetic)."""
    return ((2 * np.arange(target, dtype=np.int64) + 1) * source) // (2 * target)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    try:
        data = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: malformed JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object with 'images', 'annotations' and "
                           f"'categories', got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: missing or malformed {key!r} list")
        if not all(isinstance(item, dict) for item in data[key]):
            raise DatasetError(f"{path}: every entry of {key!r} must be an object")
    return data


def _annotation_mask(ann: dict[str, Any], h: int, w: int) -> np.ndarray:
    seg = ann.get("segmentation")
    if isinstance(seg, list):
        return polygon_mask(seg, h, w)
    if isinstance(seg, dict):
        if list(seg.get("size", [])) != [h, w]:
            raise DatasetError(f"RLE size {seg.get('size')!r} differs from the image's "
                               f"[height, width] = [{h}, {w}]")
        return rle_decode(seg)
    raise DatasetError("segmentation must be a polygon list or an RLE dict, got "
                       f"{type(seg).__name__}")


def load_coco_masks(
    annotations: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    category: str = "person",
    size: int = 64,
    limit: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and binary masks of one category from a COCO-format annotation file.

    For each image (in the order of the file's ``"images"`` list, the first ``limit`` of them):
    ``mask[y, x] = 1`` where any annotation of the category covers the pixel (polygons,
    uncompressed or compressed RLE; crowd regions, ``iscrowd = 1``, count too), else 0.
    Images without the category are kept, with an all-background mask. The image (as RGB)
    is resized to ``size x size`` with Pillow's bilinear filter and the mask with nearest
    neighbour, ``mask_out[i, j] = mask[floor((i + 1/2) h / size), floor((j + 1/2) w / size)]``;
    the aspect ratio is not kept.

    Args:
        annotations: the JSON file, e.g. ``annotations/instances_val2017.json``.
        images_dir: the folder of the images, e.g. ``val2017/``.
        category: the category's ``name`` in ``"categories"`` (all ids with that name).
        size: output height and width (>= 1).
        limit: at most this many images; default all.

    Returns:
        ``(images, masks)``: uint8 ``(N, 3, size, size)`` and int64 ``(N, size, size)`` in
        ``{0, 1}``.

    Raises:
        whetstone.data.DatasetError: a missing annotation file or image, malformed JSON or
            entries, an unknown category (the message lists the file's), an annotation
            naming an unknown image, a bad polygon or RLE (e.g. counts not summing to
            ``h * w``), or an image whose size differs from its entry; each message names
            the file and, where it applies, the image and annotation ids.
        ValueError: a bad ``size`` or ``limit``.
        ImportError: Pillow is not installed.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an integer >= 1, got {size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 0):
        raise ValueError(f"limit must be a non-negative integer or None, got {limit!r}")
    path = Path(annotations)
    folder = Path(images_dir)
    data = _read_json(path)
    names = [c.get("name") for c in data["categories"]]
    wanted = {c.get("id") for c in data["categories"] if c.get("name") == category}
    if not wanted:
        listed = ", ".join(repr(n) for n in names[:20]) + (" ..." if len(names) > 20 else "")
        raise DatasetError(f"{path}: unknown category {category!r}; the file has "
                           f"{listed or 'no categories'}")
    entries: dict[Any, dict[str, Any]] = {}
    for entry in data["images"]:
        missing = [k for k in ("id", "file_name", "height", "width") if k not in entry]
        if missing:
            raise DatasetError(f"{path}: image entry {entry.get('id', '?')!r} lacks {missing}")
        h, w = entry["height"], entry["width"]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (h, w)):
            raise DatasetError(f"{path}: image {entry['id']!r} has height/width {h!r}/{w!r}, "
                               f"not positive integers")
        if not isinstance(entry["file_name"], str) or not entry["file_name"]:
            raise DatasetError(f"{path}: image {entry['id']!r} has no usable file_name")
        if entry["id"] in entries:
            raise DatasetError(f"{path}: image id {entry['id']!r} appears twice")
        entries[entry["id"]] = entry
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for ann in data["annotations"]:
        if ann.get("category_id") not in wanted:
            continue
        if ann.get("image_id") not in entries:
            raise DatasetError(f"{path}: annotation {ann.get('id', '?')!r} refers to image_id "
                               f"{ann.get('image_id')!r}, which is not in 'images'")
        by_image.setdefault(ann["image_id"], []).append(ann)

    Image, _ = _pillow()
    chosen = data["images"] if limit is None else data["images"][:limit]
    images = np.zeros((len(chosen), 3, size, size), dtype=np.uint8)
    masks = np.zeros((len(chosen), size, size), dtype=np.int64)
    for n, entry in enumerate(chosen):
        image_id, h, w = entry["id"], entry["height"], entry["width"]
        file = folder / entry["file_name"]
        if not file.is_file():
            raise DatasetError(f"{file}: image file not found (image {image_id!r} of {path})")
        try:
            with Image.open(file) as opened:
                picture = opened.convert("RGB")
        except OSError as exc:  # PIL.UnidentifiedImageError is an OSError
            raise DatasetError(f"{file}: cannot read the image ({exc})") from None
        if picture.size != (w, h):
            raise DatasetError(f"{file}: image is {picture.size[0]}x{picture.size[1]} "
                               f"(width x height), but {path} says {w}x{h}")
        mask = np.zeros((h, w), dtype=bool)
        for ann in by_image.get(image_id, []):
            try:
                mask |= _annotation_mask(ann, h, w)
            except DatasetError as exc:
                raise DatasetError(f"{path}: annotation {ann.get('id', '?')!r} (image "
                                   f"{image_id!r}): {exc}") from None
        resized = picture.resize((size, size), getattr(Image, "Resampling", Image).BILINEAR)
        images[n] = np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1)
        masks[n] = mask[_nearest_indices(h, size)][:, _nearest_indices(w, size)]
    return torch.from_numpy(images), torch.from_numpy(masks)
