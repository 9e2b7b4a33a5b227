"""Sharpenable activation layers: state (the sharpness buffer) around the pure functions.

Every layer holds its sharpness ``s`` in a buffer, so it is saved in ``state_dict`` and can
change between batches without rebuilding the model. The schedules in
:mod:`whetstone.sharpening` find these layers by type (:class:`Sharpenable`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from . import functional as F
from .surrogate import Surrogate, spike


class Sharpenable(nn.Module, ABC):
    """Base class of activations with a sharpness ``s`` in ``[0, 1]`` and a firing threshold.

    Args:
        sharpness: initial sharpness (0 soft, 1 exact step).
        surrogate: optional backward strategy used at ``s == 1`` (see
            :mod:`whetstone.nn.surrogate`); the forward stays exactly binary.
    """

    threshold: float = F.BRELU_THRESHOLD

    def __init__(self, sharpness: float = 0.0, surrogate: Surrogate | None = None) -> None:
        super().__init__()
        self.register_buffer("_sharpness", torch.tensor(0.0, dtype=torch.float64))
        self._value = 0.0  # host copy of the buffer: reading it never waits for a GPU
        self.set_sharpness(sharpness)
        self.surrogate = surrogate

    @property
    def sharpness(self) -> float:
        """Current sharpness as a Python float (backed by a buffer).

        The value is mirrored on the host, so the forward pass and the schedules read it
        without a device-to-host copy (which on a GPU would stall every batch). Writes go
        through this setter or :meth:`load_state_dict`, which keep both in step.
        """
        return self._value

    @sharpness.setter
    def sharpness(self, value: float) -> None:
        self.set_sharpness(value)

    def set_sharpness(self, value: float) -> None:
        """Set the sharpness: the same as assigning :attr:`sharpness`, but cheaper.

        Schedules call this on every batch. It bypasses ``nn.Module.__setattr__`` (whose
        checks cost more than the rest together) and writes the buffer only when the value
        changes; the buffer and the host copy always hold the same value, because every write
        goes through here or through :meth:`load_state_dict`.
        """
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"sharpness must lie in [0, 1], got {value}")
        if value != self.__dict__.get("_value"):
            self._sharpness.fill_(value)
            self.__dict__["_value"] = value

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,  # type: ignore[no-untyped-def]
                              missing_keys, unexpected_keys, error_msgs) -> None:
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)
        value = float(self._sharpness)
        if not 0.0 <= value <= 1.0:
            error_msgs.append(f"{prefix}_sharpness: {value} does not lie in [0, 1]")
            self._sharpness.fill_(self._value)  # keep the buffer equal to the host copy
            return
        self._value = value

    @abstractmethod
    def soft(self, x: Tensor, sharpness: float) -> Tensor:
        """The activation for ``s < 1``."""

    def forward(self, x: Tensor) -> Tensor:
        s = self._value
        if s >= 1.0:
            return spike(x, self.threshold, self.surrogate)
        return self.soft(x, s)

    def extra_repr(self) -> str:
        extra = f", surrogate={self.surrogate}" if self.surrogate is not None else ""
        return f"sharpness={self.sharpness:.4g}{extra}"


class SpikingBReLU(Sharpenable):
    """Sharpenable bounded ReLU; spikes ``1[x >= 0.5]`` at sharpness 1.

    ``y = clip((x - 0.5) / (1 - s + 0.001) + 0.5, 0, 1)`` for ``s < 1``. Any input shape.
    """

    threshold = F.BRELU_THRESHOLD

    def soft(self, x: Tensor, sharpness: float) -> Tensor:
        return F.brelu(x, sharpness)


class SpikingSigmoid(Sharpenable):
    """Sharpenable sigmoid; spikes ``1[x >= 0]`` at sharpness 1.

    ``y = 1 / (1 + exp(-k x))``, ``k = 4 ln(2 + sqrt 3) / (1 - s + 0.001)``, ``k x`` clipped
    to ``[-40, 40]``. Any input shape.
    """

    threshold = F.SIGMOID_THRESHOLD

    def soft(self, x: Tensor, sharpness: float) -> Tensor:
        return F.sigmoid(x, sharpness)
