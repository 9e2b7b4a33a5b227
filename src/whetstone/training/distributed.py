"""Data-parallel training over several processes with ``torch.distributed`` (DDP).

``torchrun --nproc-per-node N -m whetstone train ...`` starts N processes; each finds its rank
in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), joins the process group
(``gloo`` on the CPU, ``nccl`` on CUDA), trains a ``DistributedDataParallel`` copy of the
model on its shard of every batch (:class:`~whetstone.data.ArrayLoader`'s ``shard``;
per-process batch ``batch_size / N``, so the global batch is the recipe's) and averages
gradients with the others. Epoch metrics (loss, accuracy, samples) are summed over the
processes before anyone uses them, so every rank sees the same training loss and the adaptive
sharpener decides alike everywhere; a stop request (SIGINT/SIGTERM on any rank) is agreed on
by all before the next batch. Only rank 0 writes the run folder and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    """This process's place in a data-parallel job."""

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over all processes, in place; returns it."""
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any(self, flag: bool, device: str | torch.device = "cpu") -> bool:
        """True on every rank if ``flag`` is True on any rank."""
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def gather(self, obj: object) -> list[object]:
        """Every rank's ``obj`` (picklable Python values exchanged in memory only), by rank."""
        out: list[object] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        dist.barrier()


def launched() -> bool:
    """True in a process started by ``torchrun`` (or any launcher) for more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: str | torch.device = "cpu") -> Distributed | None:
    """Join the process group described by the environment; ``None`` for a single process.

    The backend is ``nccl`` for a CUDA ``device`` (each process then uses GPU ``LOCAL_RANK``)
    and ``gloo`` otherwise. Joining twice reuses the group.
    """
    if not launched():
        return None
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank, backend)


def shutdown_distributed() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_initialized():
        dist.destroy_process_group()
