"""Training on several processes with PyTorch's own DistributedDataParallel.

Nothing home-made: ``torchrun`` starts the processes and sets ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE``; with ``WORLD_SIZE`` > 1 the trainer joins
the process group (``gloo`` on CPUs, ``nccl`` on GPUs), wraps the network in
``DistributedDataParallel`` (gradients are averaged across processes at every
step) and gives each process every world-th batch of the epoch's shuffled
order. Rank 0 alone validates, writes checkpoints and registers the model;
what it decides (the metrics, whether to stop) is broadcast so every process
takes the same branch, which DDP needs (each step is a collective call).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; the defaults are a single process."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we called init_process_group, so we tear it down

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (pickled; keep it small)."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def my_batches(self, starts: list[int]) -> list[int]:
        """This rank's share of the epoch's batch starts, equal in number on every rank.

        DDP averages gradients in a collective call per step, so every rank must
        take the same number of steps: the remainder that does not divide evenly
        is left out of the epoch (the next epoch's shuffle covers it).
        """
        if self.world == 1:
            return starts
        per_rank = max(1, len(starts) // self.world)
        return [starts[(self.rank + k * self.world) % len(starts)] for k in range(per_rank)]

    def close(self, finished: bool) -> None:
        """Leave the process group.

        After a finished run every rank first waits for the others, so none tears
        its connections down while a peer still reads from them (gloo aborts the
        process when a pair closes under it). After a failure there is no
        waiting: the peers may never arrive, and torchrun stops them.
        """
        if self.owns_group:
            import torch.distributed as dist

            try:
                if finished:
                    dist.barrier()
            finally:
                dist.destroy_process_group()


def setup(device: str) -> Dist:
    """Join the process group when launched by torchrun with more than one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local_rank)  # "cuda" then means this process's GPU
    owns = False
    if not dist.is_initialized():
        # Imported once a group exists (Adam's constructor and DDP import it), torch._dynamo
        # keeps references to the default group (torch 2.13): destroy_process_group then
        # left gloo's three threads running into the interpreter's exit, which aborted a
        # finished run now and then (SIGABRT after the model was registered; 1 run in 57 here).
        import torch._dynamo

        dist.init_process_group("nccl" if device == "cuda" else "gloo")
        owns = True
    return Dist(
        rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank, owns_group=owns
    )
