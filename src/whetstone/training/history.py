"""Per-epoch records of a training run and their ``metrics.jsonl`` log."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EpochRecord:
    """What :func:`whetstone.training.fit` measures in one epoch.

    The ``*_accuracy`` fields hold the task's score named by :attr:`metric` (for
    classification the accuracy, a fraction; PSNR in dB for reconstruction), the ``val_*``
    ones the score named by :attr:`val_metric` (the task's meter's primary score: the same,
    except segmentation, trained on pixel accuracy and validated on mean IoU)."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_accuracy: float | None
    """Validation accuracy at the layers' current sharpness."""
    val_accuracy_binary: float | None
    """Validation accuracy of the fully sharpened network (every layer at 1)."""
    sharpness: list[float]
    """Per-layer sharpness at the end of the epoch, forward order."""
    epoch_time: float
    """Seconds spent training (forward, backward, optimizer, schedule); no evaluation."""
    eval_time: float = 0.0
    metric: str = "accuracy"
    """Name of the score in ``train_accuracy``."""
    val_metric: str = "accuracy"
    """Name of the score in ``val_accuracy`` and ``val_accuracy_binary``."""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class History(list[EpochRecord]):
    """The list of :class:`EpochRecord` a run produced (``history[-1]`` is the last epoch)."""

    def column(self, name: str) -> list[Any]:
        """One field across epochs, e.g. ``history.column("val_accuracy_binary")``."""
        return [getattr(r, name) for r in self]

    @classmethod
    def read_jsonl(cls, path: str | Path) -> History:
        """Read a ``metrics.jsonl`` written by :class:`MetricsLog`."""
        out = cls()
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    out.append(EpochRecord(**json.loads(line)))
                except (json.JSONDecodeError, TypeError) as exc:
                    raise ValueError(f"{path}: line {n} is not an epoch record: {exc}") from exc
        return out


class MetricsLog:
    """Appends one JSON line per epoch to ``metrics.jsonl`` (flushed at once)."""

    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not append:
            self.path.write_text("", encoding="utf-8")

    def write(self, record: EpochRecord) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record.to_dict()) + "\n")
