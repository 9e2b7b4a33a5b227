"""In-memory batching of image tensors."""

from __future__ import annotations

from collections.abc import Iterator

import torch

__all__ = ["ArrayLoader", "to_float"]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """Convert uint8 images to float32 in [0, 1], channels first.

    ``(N, H, W)`` (grayscale) becomes ``(N, 1, H, W)``; ``(N, H, W, 3)`` (HWC
    colour, as returned for CIFAR) becomes ``(N, 3, H, W)``. The result is a new
    contiguous tensor on the same device.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"to_float expects uint8 images, got {images.dtype}")
    if images.ndim == 3:
        x = images.unsqueeze(1)
    elif images.ndim == 4 and images.shape[-1] in (1, 3):
        x = images.permute(0, 3, 1, 2)
    else:
        raise ValueError(
            f"to_float expects (N, H, W) or (N, H, W, C) images with C in (1, 3), "
            f"got shape {tuple(images.shape)}"
        )
    return x.to(torch.float32).div_(255.0).contiguous()


class ArrayLoader:
    """Iterate over ``(x, y)`` tensors in mini-batches, without per-sample Python work.

    Args:
        x: inputs, first dimension ``N``.
        y: targets, first dimension ``N``.
        batch_size: samples per batch (the last batch may be smaller unless
            ``drop_last``).
        shuffle: draw a fresh permutation each epoch. Epoch ``k`` (counting
            from 0 for the first ``iter()``) uses a ``torch.Generator`` seeded
            with ``seed + k``, so the order is reproducible.
        seed: base seed for shuffling.
        drop_last: skip a final batch smaller than ``batch_size``.

    Each iteration yields ``(xb, yb)`` with ``xb.shape[0] == yb.shape[0]``. The
    permutation is applied on the tensors' device; without shuffling the batches
    are views (slices) of ``x`` and ``y``; with shuffling each batch is gathered
    from the permuted indices (one ``index_select`` per batch, no full copy).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.x = x
        self.y = y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.dataset_size: int = int(x.shape[0])
        self.epoch = 0

    def __len__(self) -> int:
        """Number of batches per epoch."""
        if self.drop_last:
            return self.dataset_size // self.batch_size
        return -(-self.dataset_size // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = None
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            perm = torch.randperm(self.dataset_size, generator=gen)
        self.epoch += 1  # counted when iter() is called, not on the first next()
        return self._batches(perm)

    def _batches(
        self, perm: torch.Tensor | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        bs = self.batch_size
        if perm is None:
            for i in range(len(self)):
                yield self.x[i * bs : (i + 1) * bs], self.y[i * bs : (i + 1) * bs]
            return
        px = perm.to(self.x.device)
        py = px if self.y.device == self.x.device else perm.to(self.y.device)
        for i in range(len(self)):
            sl = slice(i * bs, (i + 1) * bs)
            yield self.x.index_select(0, px[sl]), self.y.index_select(0, py[sl])
