"""torch.distributed from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the process group when launched by torchrun (nccl on GPU, gloo on CPU); else one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    return DistInfo(rank, world, local_rank, device)


def rank_slice(order: np.ndarray, info: DistInfo) -> np.ndarray:
    """This rank's share of an epoch's sample order — the one place that decides it. The order is
    padded with its own first samples to a multiple of the world size (as torch's
    DistributedSampler does), so every rank runs the same number of steps and together they see
    every sample; the ranks' shares are disjoint but for those few padding repeats."""
    per = -(-len(order) // info.world)  # ceil
    padded = np.concatenate([order, order[: per * info.world - len(order)]])
    return padded[info.rank * per:(info.rank + 1) * per]


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
