"""to_float and ArrayLoader."""

from __future__ import annotations

import pytest
import torch

from whetstone.data import ArrayLoader, to_float


def test_to_float_gray_and_colour() -> None:
    gray = torch.tensor([[[0, 255], [51, 102]]], dtype=torch.uint8)  # (1, 2, 2)
    out = to_float(gray)
    assert out.shape == (1, 1, 2, 2) and out.dtype == torch.float32
    torch.testing.assert_close(out[0, 0], torch.tensor([[0.0, 1.0], [0.2, 0.4]]))

    hwc = torch.arange(2 * 4 * 5 * 3, dtype=torch.int64).remainder(256).to(torch.uint8)
    hwc = hwc.reshape(2, 4, 5, 3)
    chw = to_float(hwc)
    assert chw.shape == (2, 3, 4, 5) and chw.is_contiguous()
    torch.testing.assert_close(chw[1, 2, 3, 4], hwc[1, 3, 4, 2].float() / 255)


def test_to_float_rejects_bad_input() -> None:
    with pytest.raises(TypeError):
        to_float(torch.zeros(2, 3, 3))
    with pytest.raises(ValueError):
        to_float(torch.zeros(2, 3, dtype=torch.uint8))
    with pytest.raises(ValueError):
        to_float(torch.zeros(2, 3, 3, 5, dtype=torch.uint8))


def _data(n: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(n * 2, dtype=torch.float32).reshape(n, 2)
    return x, torch.arange(n)


@pytest.mark.parametrize(("n", "bs", "drop_last", "expected"),
                         [(10, 3, False, 4), (10, 3, True, 3), (9, 3, False, 3), (2, 5, True, 0)])
def test_len(n: int, bs: int, drop_last: bool, expected: int) -> None:
    x, y = _data(n)
    loader = ArrayLoader(x, y, bs, drop_last=drop_last)
    assert len(loader) == expected == len(list(loader))
    assert loader.dataset_size == n


def test_unshuffled_batches_are_ordered_slices() -> None:
    x, y = _data(10)
    batches = list(ArrayLoader(x, y, 4))
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[0][0].data_ptr() == x.data_ptr()  # a view, no copy


def test_shuffle_is_deterministic_and_changes_each_epoch() -> None:
    x, y = _data(50)
    a = ArrayLoader(x, y, 8, shuffle=True, seed=3)
    b = ArrayLoader(x, y, 8, shuffle=True, seed=3)
    epochs_a = [torch.cat([yb for _, yb in a]) for _ in range(3)]
    epochs_b = [torch.cat([yb for _, yb in b]) for _ in range(3)]
    for ea, eb in zip(epochs_a, epochs_b, strict=True):
        assert torch.equal(ea, eb)
        assert sorted(ea.tolist()) == list(range(50))
    assert not torch.equal(epochs_a[0], epochs_a[1])
    assert not torch.equal(epochs_a[0], torch.arange(50))
    c = ArrayLoader(x, y, 8, shuffle=True, seed=4)
    assert not torch.equal(torch.cat([yb for _, yb in c]), epochs_a[0])


def test_shuffled_pairs_stay_aligned_and_drop_last() -> None:
    x, y = _data(11)
    loader = ArrayLoader(x, y, 4, shuffle=True, drop_last=True)
    seen = []
    for xb, yb in loader:
        assert xb.shape == (4, 2)
        torch.testing.assert_close(xb[:, 0], yb.float() * 2)
        seen += yb.tolist()
    assert len(seen) == 8 and len(set(seen)) == 8


def test_epoch_counts_on_iter_call() -> None:
    x, y = _data(6)
    loader = ArrayLoader(x, y, 2, shuffle=True)
    it0, it1 = iter(loader), iter(loader)  # two epochs started before consuming either
    assert not torch.equal(torch.cat([b[1] for b in it0]), torch.cat([b[1] for b in it1]))


def test_mismatched_lengths_and_bad_batch_size() -> None:
    x, y = _data(5)
    with pytest.raises(ValueError):
        ArrayLoader(x, y[:4], 2)
    with pytest.raises(ValueError):
        ArrayLoader(x, y, 0)
