"""Segmentation scores: confusion matrix, pixel accuracy, IoU (hand-computed cases)."""

from __future__ import annotations

import numpy as np
import pytest

from whetstone.metrics.segmentation import confusion_matrix, segmentation_scores


def test_confusion_matrix_hand_counted() -> None:
    target = np.array([[[0, 0, 1],
                        [1, 2, 2]]])
    pred = np.array([[[0, 1, 1],
                      [1, 2, 0]]])
    c = confusion_matrix(pred, target, 3)
    assert c.dtype == np.int64
    # rows: target 0 -> pred {0, 1}; target 1 -> pred {1, 1}; target 2 -> pred {2, 0}
    np.testing.assert_array_equal(c, [[1, 1, 0],
                                      [0, 2, 0],
                                      [1, 0, 1]])


def test_scores_hand_computed() -> None:
    c = np.array([[1, 1, 0],
                  [0, 2, 0],
                  [1, 0, 1]])
    s = segmentation_scores(c)
    assert s["pixel_accuracy"] == pytest.approx(4 / 6)
    # class 0: tp 1, row 2, column 2 -> 1 / 3; class 1: tp 2, row 2, col 3 -> 2 / 3;
    # class 2: tp 1, row 2, column 1 -> 1 / 2
    assert s["iou"] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert s["mean_iou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_absent_class_is_none_and_left_out_of_the_mean() -> None:
    target = np.array([[0, 0], [3, 3]])
    pred = np.array([[0, 3], [3, 3]])
    s = segmentation_scores(confusion_matrix(pred, target, 4))
    assert s["iou"][1] is None and s["iou"][2] is None
    assert s["iou"][0] == pytest.approx(1 / 2)   # tp 1, union 2
    assert s["iou"][3] == pytest.approx(2 / 3)   # tp 2, union 3
    assert s["mean_iou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert s["pixel_accuracy"] == pytest.approx(3 / 4)


def test_class_only_predicted_counts_with_zero_iou() -> None:
    s = segmentation_scores(confusion_matrix(np.array([1, 0]), np.array([0, 0]), 2))
    assert s["iou"] == [0.5, 0.0]
    assert s["mean_iou"] == pytest.approx(0.25)


def test_batches_sum_to_the_whole() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, size=(6, 7, 8))
    pred = np.where(rng.random((6, 7, 8)) < 0.6, target, rng.integers(0, 5, size=(6, 7, 8)))
    whole = confusion_matrix(pred, target, 5)
    parts = confusion_matrix(pred[:2], target[:2], 5) + confusion_matrix(pred[2:], target[2:], 5)
    np.testing.assert_array_equal(whole, parts)
    assert whole.sum() == target.size
    assert segmentation_scores(whole)["pixel_accuracy"] == pytest.approx(
        float((pred == target).mean()))


def test_perfect_prediction() -> None:
    t = np.array([[0, 1], [2, 1]])
    s = segmentation_scores(confusion_matrix(t, t, 3))
    assert s == {"pixel_accuracy": 1.0, "iou": [1.0, 1.0, 1.0], "mean_iou": 1.0}


@pytest.mark.parametrize("pred, target, classes, match", [
    (np.zeros((2, 2), int), np.zeros((2, 3), int), 2, "same shape"),
    (np.zeros((2, 2)), np.zeros((2, 2), int), 2, "integer"),
    (np.full((2, 2), 2), np.zeros((2, 2), int), 2, "outside 0..1"),
    (np.zeros((2, 2), int), np.full((2, 2), -1), 2, "outside 0..1"),
    (np.zeros((2, 2), int), np.zeros((2, 2), int), 0, "classes"),
])
def test_confusion_matrix_rejects(pred, target, classes, match) -> None:
    with pytest.raises(ValueError, match=match):
        confusion_matrix(pred, target, classes)


@pytest.mark.parametrize("c, match", [
    (np.zeros((2, 3), int), "square"),
    (np.zeros((2, 2), int), "empty"),
    (np.array([[1, -1], [0, 1]]), "negative"),
    (np.eye(2), "integer"),
])
def test_scores_reject(c, match) -> None:
    with pytest.raises(ValueError, match=match):
        segmentation_scores(c)
