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
        shard: ``(rank, world_size)`` for data-parallel training: this process takes the
            indices that :class:`torch.utils.data.DistributedSampler` gives ``rank`` of
            ``world_size`` (the epoch's permutation, padded to a multiple of
            ``world_size``, every ``world_size``-th entry from ``rank``), so that batch ``k``
            of all ranks together is batch ``k`` of one process with ``world_size`` times
            the batch size. ``(0, 1)`` (the default) is the whole dataset.

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
        shard: tuple[int, int] = (0, 1),
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
        rank, world = (int(v) for v in shard)
        if not (world >= 1 and 0 <= rank < world):
            raise ValueError(f"shard must be (rank, world_size) with 0 <= rank < world_size, "
                             f"got {shard}")
        self.shard = (rank, world)
        total = int(x.shape[0])
        self.dataset_size: int = total if world == 1 else -(-total // world)
        self.epoch = 0

    def __len__(self) -> int:
        """Number of batches per epoch."""
        if self.drop_last:
            return self.dataset_size // self.batch_size
        return -(-self.dataset_size // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = None
        rank, world = self.shard
        if world > 1:
            from torch.utils.data import DistributedSampler

            sampler = DistributedSampler(range(int(self.x.shape[0])), num_replicas=world,
                                         rank=rank, shuffle=self.shuffle, seed=self.seed)
            sampler.set_epoch(self.epoch)
            perm = torch.tensor(list(sampler), dtype=torch.int64)
        elif self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            perm = torch.randperm(self.dataset_size, generator=gen)
        self.epoch += 1  # counted when iter() is called, not on the first next()
        return self._batches(perm)

    def state_dict(self) -> dict[str, int]:
        """Where the data order stands: the epoch whose permutation the next ``iter()`` draws."""
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore :meth:`state_dict` (resuming a run: the same batches in the same order)."""
        epoch = state.get("epoch")
        if set(state) != {"epoch"} or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"ArrayLoader state must be {{'epoch': int >= 0}}, got {state!r}")
        self.epoch = epoch

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
