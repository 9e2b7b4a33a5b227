"""Batch augmentations applied inside the training loop (on whole batches, no per-sample loop)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Translate each image of ``x`` ``(N, C, H, W)`` by up to ``max_shift`` pixels (zero fill).

    Image ``i`` becomes ``out[i, :, r, c] = pad(x)[i, :, r + dy_i, c + dx_i]`` with ``dy_i``,
    ``dx_i`` drawn uniformly from ``0..2 * max_shift`` (``generator``; ``dy`` for all images
    first, then ``dx``) and ``pad`` adding ``max_shift`` zero pixels on each side: one
    indexed copy out of the view of every image's ``(2 max_shift + 1)^2`` windows.
    """
    n, c, h, w = x.shape
    p = max_shift
    padded = F.pad(x, (p, p, p, p))
    dy = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(x.device)
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)  # (N, C, 2p+1, 2p+1, H, W), a view
    return windows[torch.arange(n, device=x.device), :, dy, dx]  # (N, C, H, W)


def random_flip(x: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image of ``x`` ``(N, C, H, W)`` left-right with probability 1/2."""
    flip = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def parse_augment(spec: str) -> tuple[int, bool]:
    """``(max_shift, flip)`` of an augmentation spec: ``"+"``-joined parts among ``"shift"``
    (2 pixels), ``"shift-N"`` and ``"flip"`` (random left-right mirroring), e.g.
    ``"shift-4+flip"``."""
    shift, flip = 0, False
    for part in spec.split("+"):
        if part == "flip":
            flip = True
        else:
            shift = parse_shift(part)
    return shift, flip


def parse_shift(spec: str) -> int:
    """Maximum shift of an augmentation spec: ``"shift"`` is 2 pixels, ``"shift-N"`` N."""
    if spec == "shift":
        return 2
    if spec.startswith("shift-") and spec[6:].isdigit():
        return int(spec[6:])
    raise ValueError(
        f"unknown augment {spec!r}; choose 'shift', 'shift-N', 'flip' (joined by '+') or none")


class Augmented:
    """Wraps a batch iterable and applies :func:`random_shift` (``max_shift > 0``) and
    :func:`random_flip` (``flip``) to every input batch."""

    def __init__(self, loader: Iterable[tuple[Tensor, Tensor]], max_shift: int = 2,
                 seed: int = 0, flip: bool = False) -> None:
        self.loader = loader
        self.max_shift = max_shift
        self.flip = flip
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def state_dict(self) -> dict[str, Any]:
        """The random generator's state and the wrapped loader's (if it has one)."""
        inner = getattr(self.loader, "state_dict", None)
        return {"generator": self.generator.get_state(),
                "loader": inner() if inner is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`: the same augmentation draws from here on."""
        if set(state) != {"generator", "loader"}:
            raise ValueError(f"Augmented state needs 'generator' and 'loader', got {sorted(state)}")
        self.generator.set_state(state["generator"])
        if state["loader"] is not None:
            self.loader.load_state_dict(state["loader"])  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for x, y in self.loader:
            if self.max_shift:
                x = random_shift(x, self.max_shift, self.generator)
            if self.flip:
                x = random_flip(x, self.generator)
            yield x, y
