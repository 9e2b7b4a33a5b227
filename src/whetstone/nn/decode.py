"""N-hot output populations: the class key, encoding, and the softmax decode (method.md §3).

A population of ``W`` binary output neurons encodes ``C`` classes; class ``c`` owns the
code ``K[c]`` (``W // C`` ones). The decode logits are

    logits = (2 a - 1) @ (2 K - 1)^T            a: (N, W) in [0, 1],  K: (C, W) in {0, 1}

For binary ``a`` the logit of class ``c`` is ``W - 2 * hamming(a, K[c])``. Equivalently it is
the affine map ``a @ (4K - 2)^T - (2K - 1).sum(1)``, which is how the decode exports.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def key_generator(
    num_classes: int, width: int, overlapping: bool = True, seed: int | None = None
) -> Tensor:
    """Random class key, a ``(num_classes, width)`` float tensor of 0/1 with ``width // C`` ones.

    Each class draws ``width // num_classes`` distinct neuron indices. With
    ``overlapping=False`` drawn indices leave the pool, so codes are disjoint. With
    overlapping codes, a draw that repeats an earlier class's code is redrawn (two classes
    with one code could never be told apart). ``seed`` makes the key reproducible.
    """
    if num_classes < 1 or width < num_classes:
        raise ValueError(f"need width >= num_classes >= 1, got C={num_classes}, W={width}")
    per_class = width // num_classes
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    key = torch.zeros(num_classes, width)
    pool = torch.arange(width)
    codes: set[tuple[int, ...]] = set()
    for c in range(num_classes):
        for _attempt in range(1000):
            choice = pool[torch.randperm(len(pool), generator=gen)[:per_class]]
            code = tuple(sorted(choice.tolist()))
            if not overlapping or code not in codes:
                break
        else:  # pragma: no cover - only with absurdly small populations
            raise ValueError(f"cannot draw {num_classes} distinct codes of {per_class}/{width}")
        codes.add(code)
        key[c, choice] = 1.0
        if not overlapping:
            keep = torch.ones(len(pool), dtype=torch.bool)
            keep[torch.isin(pool, choice)] = False
            pool = pool[keep]
    return key


def decode_logits(outputs: Tensor, key: Tensor) -> Tensor:
    """Decode logits ``(2a - 1) @ (2K - 1)^T``: ``(N, W), (C, W) -> (N, C)``."""
    return (2.0 * outputs - 1.0) @ (2.0 * key - 1.0).T


def decode(outputs: Tensor, key: Tensor) -> Tensor:
    """Class indices ``(N,)`` from population outputs ``(N, W)``: argmax of the decode logits."""
    return decode_logits(outputs, key).argmax(dim=1)


def encode(labels: Tensor, key: Tensor) -> Tensor:
    """Population codes ``(N, W)`` of class indices ``(N,)``: ``onehot(labels) @ K``."""
    return key[labels.long()]


def decode_affine(key: Tensor) -> tuple[Tensor, Tensor]:
    """The decode as an affine layer: weight ``4K - 2`` ``(C, W)``, bias ``-(2K - 1).sum(1)``."""
    return 4.0 * key - 2.0, -(2.0 * key - 1.0).sum(dim=1)


class SoftmaxDecode(nn.Module):
    """Fixed (not trained) decode of an N-hot population to class logits.

    Input ``(N, W)``, output ``(N, C)`` logits ``(2a - 1) @ (2K - 1)^T``; the softmax belongs
    to the loss (:class:`torch.nn.CrossEntropyLoss`). The key is a buffer (saved, not trained).
    """

    def __init__(self, key: Tensor) -> None:
        super().__init__()
        key = torch.as_tensor(key, dtype=torch.float32)
        if key.ndim != 2 or not bool(((key == 0) | (key == 1)).all()):
            raise ValueError("key must be a (num_classes, width) tensor of zeros and ones")
        self.register_buffer("key", key)

    @property
    def num_classes(self) -> int:
        return int(self.key.shape[0])

    @property
    def width(self) -> int:
        return int(self.key.shape[1])

    def forward(self, outputs: Tensor) -> Tensor:
        if outputs.shape[-1] != self.width:
            raise ValueError(f"SoftmaxDecode expects {self.width} outputs, got {outputs.shape[-1]}")
        return decode_logits(outputs, self.key.to(outputs.dtype))

    def extra_repr(self) -> str:
        return f"classes={self.num_classes}, width={self.width}"
