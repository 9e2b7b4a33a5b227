"""COCO-format masks: RLE decoding (both forms), polygons, the loader, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from whetstone.data import DatasetError, load_coco_masks, polygon_mask, rle_decode

Image = pytest.importorskip("PIL.Image", reason="Pillow (the plot extra) is not installed")


def runs_of(mask: np.ndarray) -> list[int]:
    """COCO run lengths of a mask: column-major, alternating 0 / 1, starting with 0s."""
    flat = mask.flatten(order="F").astype(np.int64)
    counts, current, run = [], 0, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = v, 1
    counts.append(run)
    return counts


def encode_counts(counts: list[int]) -> str:
    """Compressed RLE string, written from the format's description (test-side encoder)."""
    out = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            group = x & 0x1F
            x >>= 5
            more = x != -1 if group & 0x10 else x != 0
            if more:
                group |= 0x20
            out.append(chr(group + 48))
    return "".join(out)


# ---------------------------------------------------------------------------- rle_decode

def test_uncompressed_rle_is_column_major() -> None:
    # counts 1, 2, 1 over a 2x2 mask: F-order [0, 1, 1, 0]
    mask = rle_decode({"size": [2, 2], "counts": [1, 2, 1]})
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, [[False, True], [True, False]])
    # 2 rows x 3 columns, counts 0, 2, 4: the first column set
    np.testing.assert_array_equal(rle_decode({"size": [2, 3], "counts": [0, 2, 4]}),
                                  [[True, False, False], [True, False, False]])


@pytest.mark.parametrize("text, size, counts", [
    ("121", [2, 2], [1, 2, 1]),
    # 4th count stored as 2 - 5 = -3: group 29 (0x1d, sign bit 0x10 set) -> chr(77) 'M'
    ("251M", [2, 5], [2, 5, 1, 2]),
    # 100 = 4 + 3 * 32: groups 4 | 32 -> 'T', then 3 -> '3'; 44 = 12 + 1 * 32 -> '\\', '1'
    ("T3\\1", [12, 12], [100, 44]),
])
def test_compressed_rle_hand_made(text: str, size: list[int], counts: list[int]) -> None:
    got = rle_decode({"size": size, "counts": text})
    expected = rle_decode({"size": size, "counts": counts})
    np.testing.assert_array_equal(got, expected)
    assert runs_of(got) == counts
    assert encode_counts(counts) == text
    np.testing.assert_array_equal(rle_decode({"size": size, "counts": text.encode()}),
                                  expected)


def test_compressed_rle_round_trip_random_masks() -> None:
    rng = np.random.default_rng(0)
    for h, w, p in [(7, 5, 0.5), (31, 40, 0.1), (64, 48, 0.97), (3, 3, 0.0), (6, 9, 1.0)]:
        mask = rng.random((h, w)) < p
        counts = runs_of(mask)
        np.testing.assert_array_equal(rle_decode({"size": [h, w], "counts": counts}), mask)
        text = encode_counts(counts)
        np.testing.assert_array_equal(rle_decode({"size": [h, w], "counts": text}), mask)


def test_compressed_rle_large_runs_and_deltas() -> None:
    mask = np.zeros((300, 200), dtype=bool)
    mask[10:290, 5:195] = True
    mask[100:120, 50:150] = False
    counts = runs_of(mask)
    np.testing.assert_array_equal(
        rle_decode({"size": [300, 200], "counts": encode_counts(counts)}), mask)


@pytest.mark.parametrize("rle, match", [
    ({"size": [2, 2], "counts": [1, 2]}, "sum to 3, not h \\* w = 2 \\* 2 = 4"),
    ({"size": [2, 2], "counts": "12"}, "sum to 3"),
    ({"size": [2, 2], "counts": [5, -1]}, "negative"),
    ({"size": [2, 2], "counts": "1\x7f"}, "outside the characters"),
    ({"size": [2, 2], "counts": "1P"}, "middle of a number"),
    ({"size": [2], "counts": [4]}, "size must be"),
    ({"size": [2, -2], "counts": [4]}, "size must be"),
    ({"counts": [4]}, "'size' and 'counts'"),
    ({"size": [2, 2], "counts": [1.5, 2.5]}, "list of integers"),
])
def test_bad_rle(rle: dict, match: str) -> None:
    with pytest.raises(DatasetError, match=match):
        rle_decode(rle)


# -------------------------------------------------------------------------- polygon_mask

def test_polygon_mask_fills_the_outline_and_inside() -> None:
    mask = polygon_mask([[2, 2, 6, 2, 6, 6, 2, 6]], 10, 12)
    assert mask.shape == (10, 12) and mask.dtype == bool
    expected = np.zeros((10, 12), dtype=bool)
    expected[2:7, 2:7] = True
    np.testing.assert_array_equal(mask, expected)


def test_polygon_mask_union_and_clipping() -> None:
    mask = polygon_mask([[0, 0, 1, 0, 1, 1, 0, 1], [3, 3, 20, 3, 20, 20, 3, 20]], 5, 5)
    expected = np.zeros((5, 5), dtype=bool)
    expected[0:2, 0:2] = True
    expected[3:, 3:] = True
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("polygons, match", [
    ([[1, 2, 3, 4, 5]], "at least 3"),
    ([[1, 2, 3, 4]], "at least 3"),
    ([[1, 2, 3, "a", 5, 6]], "not a list of numbers"),
    ([[1, 2, 3, float("nan"), 5, 6]], "non-finite"),
    ("1 2 3", "list of coordinate lists"),
])
def test_bad_polygons(polygons, match: str) -> None:
    with pytest.raises(DatasetError, match=match):
        polygon_mask(polygons, 8, 8)


# ----------------------------------------------------------------------- load_coco_masks

def person_disc() -> np.ndarray:
    yy, xx = np.mgrid[:16, :16]
    return (yy - 9) ** 2 + (xx - 7) ** 2 <= 16


def uncompressed_region() -> np.ndarray:
    m = np.zeros((16, 16), dtype=bool)
    m[10:14, 1:5] = True
    return m


def write_coco(root: Path) -> dict:
    """Four images: a.png (person polygon + person uncompressed RLE + dog polygon), b.png
    (person compressed RLE, crowd), c.jpg (a dog only), d.png (4x8, person in column 2)."""
    rng = np.random.default_rng(3)
    pixels = {
        "a.png": rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8),
        "b.png": rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8),
        "c.jpg": rng.integers(0, 256, size=(12, 20, 3), dtype=np.uint8),
        "d.png": rng.integers(0, 256, size=(4, 8, 3), dtype=np.uint8),
    }
    (root / "images").mkdir()
    for name, arr in pixels.items():
        Image.fromarray(arr).save(root / "images" / name)
    column = np.zeros((4, 8), dtype=bool)
    column[:, 2] = True
    data = {
        "images": [
            {"id": 11, "file_name": "a.png", "height": 16, "width": 16},
            {"id": 12, "file_name": "b.png", "height": 16, "width": 16},
            {"id": 13, "file_name": "c.jpg", "height": 12, "width": 20},
            {"id": 14, "file_name": "d.png", "height": 4, "width": 8},
        ],
        "annotations": [
            {"id": 1, "image_id": 11, "category_id": 1, "iscrowd": 0,
             "segmentation": [[1, 1, 5, 1, 5, 3, 1, 3]]},
            {"id": 2, "image_id": 11, "category_id": 1, "iscrowd": 0,
             "segmentation": {"size": [16, 16], "counts": runs_of(uncompressed_region())}},
            {"id": 3, "image_id": 11, "category_id": 18, "iscrowd": 0,
             "segmentation": [[8, 8, 15, 8, 15, 15, 8, 15]]},
            {"id": 4, "image_id": 12, "category_id": 1, "iscrowd": 1,
             "segmentation": {"size": [16, 16],
                              "counts": encode_counts(runs_of(person_disc()))}},
            {"id": 5, "image_id": 13, "category_id": 18, "iscrowd": 0,
             "segmentation": [[0, 0, 4, 0, 4, 4]]},
            {"id": 6, "image_id": 14, "category_id": 1, "iscrowd": 0,
             "segmentation": {"size": [4, 8], "counts": runs_of(column)}},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    }
    (root / "instances.json").write_text(json.dumps(data))
    return {"pixels": pixels, "data": data}


def test_load_coco_masks_exact(tmp_path: Path) -> None:
    made = write_coco(tmp_path)
    images, masks = load_coco_masks(tmp_path / "instances.json", tmp_path / "images", size=16)
    assert images.shape == (4, 3, 16, 16) and str(images.dtype) == "torch.uint8"
    assert masks.shape == (4, 16, 16) and str(masks.dtype) == "torch.int64"
    # a.png: the polygon (outline included) and the RLE region; the dog is not a person
    expected_a = np.zeros((16, 16), dtype=np.int64)
    expected_a[1:4, 1:6] = 1
    expected_a[10:14, 1:5] = 1
    np.testing.assert_array_equal(masks[0].numpy(), expected_a)
    np.testing.assert_array_equal(images[0].numpy(),
                                  made["pixels"]["a.png"].transpose(2, 0, 1))
    # b.png: the compressed-RLE crowd disc
    np.testing.assert_array_equal(masks[1].numpy(), person_disc().astype(np.int64))
    assert masks[1].sum() == 49
    np.testing.assert_array_equal(images[1].numpy(),
                                  made["pixels"]["b.png"].transpose(2, 0, 1))
    # c.jpg holds no person: kept, all background
    assert masks[2].sum() == 0 and images[2].float().std() > 10
    # d.png (4 x 8, column 2) at 16 x 16: rows floor((2i+1) 4 / 32), columns
    # floor((2j+1) 8 / 32) = j // 2, so output columns 4 and 5 are set
    expected_d = np.zeros((16, 16), dtype=np.int64)
    expected_d[:, 4:6] = 1
    np.testing.assert_array_equal(masks[3].numpy(), expected_d)


def test_load_coco_masks_downsizes_with_nearest(tmp_path: Path) -> None:
    write_coco(tmp_path)
    images, masks = load_coco_masks(tmp_path / "instances.json", tmp_path / "images", size=2)
    assert images.shape == (4, 3, 2, 2)
    # d.png 4 x 8 -> 2 x 2 samples rows [1, 3], columns [2, 6]: column 2 is set
    np.testing.assert_array_equal(masks[3].numpy(), [[1, 0], [1, 0]])
    # a.png 16 -> 2 samples rows and columns [4, 12]: only (12, 4) is set (the RLE square)
    np.testing.assert_array_equal(masks[0].numpy(), [[0, 0], [1, 0]])


def test_load_coco_masks_category_and_limit(tmp_path: Path) -> None:
    write_coco(tmp_path)
    _, dogs = load_coco_masks(tmp_path / "instances.json", tmp_path / "images",
                              category="dog", size=16, limit=2)
    assert dogs.shape == (2, 16, 16)
    expected = np.zeros((16, 16), dtype=np.int64)
    expected[8:16, 8:16] = 1
    np.testing.assert_array_equal(dogs[0].numpy(), expected)
    assert dogs[1].sum() == 0
    none, none_masks = load_coco_masks(tmp_path / "instances.json", tmp_path / "images",
                                       limit=0)
    assert none.shape == (0, 3, 64, 64) and none_masks.shape == (0, 64, 64)


def _rewrite(root: Path, change) -> None:
    path = root / "instances.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_errors_name_the_file_and_problem(tmp_path: Path) -> None:
    write_coco(tmp_path)
    ann = tmp_path / "instances.json"
    images = tmp_path / "images"
    with pytest.raises(DatasetError, match="missing.json: annotation file not found"):
        load_coco_masks(tmp_path / "missing.json", images)
    with pytest.raises(DatasetError, match="unknown category 'cat'.*'person', 'dog'"):
        load_coco_masks(ann, images, category="cat")
    with pytest.raises(ValueError, match="size must be"):
        load_coco_masks(ann, images, size=0)
    with pytest.raises(ValueError, match="limit must be"):
        load_coco_masks(ann, images, limit=-1)

    (images / "b.png").unlink()
    with pytest.raises(DatasetError, match=r"b\.png: image file not found \(image 12"):
        load_coco_masks(ann, images)
    (images / "b.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"b\.png: cannot read the image"):
        load_coco_masks(ann, images)


def test_malformed_json(tmp_path: Path) -> None:
    write_coco(tmp_path)
    ann = tmp_path / "instances.json"
    ann.write_text('{"images": [}')
    with pytest.raises(DatasetError, match="instances.json: malformed JSON"):
        load_coco_masks(ann, tmp_path / "images")
    ann.write_text('{"images": [], "categories": []}')
    with pytest.raises(DatasetError, match="missing or malformed 'annotations'"):
        load_coco_masks(ann, tmp_path / "images")


@pytest.mark.parametrize("change, match", [
    (lambda d: d["annotations"][1]["segmentation"]["counts"].append(1),
     r"annotation 2 \(image 11\): RLE counts sum to 257, not h \* w"),
    (lambda d: d["annotations"][3]["segmentation"].update(counts="0"),
     r"annotation 4 \(image 12\): RLE counts sum to 0"),
    (lambda d: d["annotations"][1]["segmentation"].update(size=[8, 32]),
     r"annotation 2 .*RLE size \[8, 32\] differs"),
    (lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3]]),
     r"annotation 1 .*polygon 0 must be"),
    (lambda d: d["annotations"][0].update(image_id=99),
     r"annotation 1 refers to image_id 99"),
    (lambda d: d["images"][0].update(height=17),
     r"a\.png: image is 16x16 \(width x height\), but .*instances.json says 16x17"),
    (lambda d: d["images"][1].update(id=11), "image id 11 appears twice"),
    (lambda d: d["images"][0].pop("file_name"), r"lacks \['file_name'\]"),
])
def test_bad_entries(tmp_path: Path, change, match: str) -> None:
    write_coco(tmp_path)
    _rewrite(tmp_path, change)
    with pytest.raises(DatasetError, match=match):
        load_coco_masks(tmp_path / "instances.json", tmp_path / "images")
