"""What a network is trained to do, and how it is scored: the :class:`Task` protocol.

A task owns everything that depends on the kind of output, so that the training loop, the
run folders and the evaluation of the conventional, binary and spiking networks stay the same
for every task:

- :meth:`Task.target`: what the network should output for a batch ``(x, y)`` of the data
  (the labels, the input itself, the masks);
- :meth:`Task.loss`: the training loss of an output batch against its targets;
- :meth:`Task.score`: the sum over the batch of a per-sample score, higher is better (the
  number of correct predictions, the PSNR of each reconstruction, each image's pixel
  accuracy); :func:`whetstone.training.fit` divides its running sum by the sample count;
- :meth:`Task.meter`: a streaming :class:`Meter` that scores a whole split (accuracy; MSE and
  PSNR; per-class IoU) from output batches of any network, torch or spiking;
- :meth:`Task.decision`: what the network decides from its output (a class, a class per
  pixel, the values themselves), which :class:`Agreement` compares between two networks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor


class Meter(ABC):
    """Accumulates output and target batches; :meth:`compute` gives the split's scores."""

    primary: ClassVar[str]
    """The key of :meth:`compute` that ranks networks (higher is better)."""

    @abstractmethod
    def update(self, output: Tensor, target: Tensor) -> None:
        """Add one batch (any floating dtype; targets as :meth:`Task.target` gives them)."""

    @abstractmethod
    def compute(self) -> dict[str, Any]:
        """The scores of everything added so far (JSON values)."""


class Task(ABC):
    """The protocol of a supervised task (see the module docstring)."""

    name: ClassVar[str]
    metric: ClassVar[str]
    """Name of the per-sample score :meth:`score` sums (``"accuracy"``, ``"psnr"``, ...)."""
    discrete: ClassVar[bool]
    """True when :meth:`decision` gives labels (compared for equality), False for values
    (compared by their largest absolute difference)."""

    def target(self, x: Tensor, y: Tensor) -> Tensor:
        """What the network should output for the batch ``(x, y)``; ``y`` by default."""
        return y

    @abstractmethod
    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Mean training loss of the batch (a 0-dim tensor)."""

    @abstractmethod
    def score(self, output: Tensor, target: Tensor) -> Tensor:
        """Sum over the batch of the per-sample :attr:`metric` (a 0-dim tensor)."""

    @abstractmethod
    def meter(self) -> Meter:
        """A fresh :class:`Meter` for this task."""

    @abstractmethod
    def decision(self, output: Tensor) -> Tensor:
        """What the network decides from ``output`` (compared by :class:`Agreement`)."""

    def chance(self, output: Tensor) -> float | None:
        """The score of guessing, if the task has one (:func:`whetstone.training.fit`'s
        divergence check compares the training score with it); ``None`` by default."""
        return None

    def config(self) -> dict[str, Any]:
        """The task's settings (JSON), recorded in summaries."""
        return {}


class Agreement:
    """How far two networks' decisions agree over a split (e.g. the torch model's and its
    spiking network's).

    For a discrete task: ``agreement``, the fraction of equal decisions (samples, or pixels
    for segmentation). For values: ``max_abs_difference``, the largest absolute difference
    of any output value, and ``agreement`` = 1 if it is 0 else the fraction of exactly equal
    values.
    """

    def __init__(self, task: Task) -> None:
        self.task = task
        self.equal = 0
        self.total = 0
        self.max_diff = 0.0

    def update(self, a: Tensor, b: Tensor) -> None:
        """Add the outputs ``a`` and ``b`` of the same batch from the two networks."""
        if a.shape != b.shape:
            raise ValueError(f"outputs of different shapes: {tuple(a.shape)} and "
                             f"{tuple(b.shape)}")
        da, db = self.task.decision(a), self.task.decision(b)
        self.equal += int((da == db).sum())
        self.total += int(da.numel())
        if not self.task.discrete and a.numel():
            diff = (a.double() - b.double()).abs().max()
            self.max_diff = max(self.max_diff, float(diff))

    def compute(self) -> dict[str, Any]:
        out: dict[str, Any] = {"agreement": self.equal / self.total if self.total else None}
        if not self.task.discrete:
            out["max_abs_difference"] = self.max_diff
        return out


def as_tensor(values: Any) -> Tensor:
    """``values`` (a tensor or a numpy array) as a CPU tensor, without a copy where possible."""
    return values if isinstance(values, Tensor) else torch.as_tensor(values)
