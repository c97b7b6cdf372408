"""The process group as torchrun describes it: rank and world from the environment, NCCL on GPUs, gloo on the CPU.

There is no launcher of ours: `torchrun --nproc_per_node N [--nnodes M ...] -m latentsync train ...` starts the
processes; a plain `latentsync train ...` is a world of one. Any number of GPUs per node works, because the device is
LOCAL_RANK's, not the global rank modulo the local GPU count (which the official `init_dist` assumes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from latentsync.errors import LatentSyncError


class DistributedError(LatentSyncError, RuntimeError):
    """The torchrun environment asks for something this machine cannot give (e.g. more ranks than GPUs)."""


@dataclass(frozen=True)
class DistEnv:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistEnv:
    """Join the process group torchrun set up (if any) and pick this rank's device (`device` overrides it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is not None:
        chosen = torch.device(device)
    elif torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"local rank {local_rank} has no GPU (this node has {torch.cuda.device_count()}); "
                "set torchrun's --nproc_per_node to at most the node's GPU count"
            )
        chosen = torch.device("cuda", local_rank)
    else:
        chosen = torch.device("cpu")
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
    return DistEnv(rank, local_rank, world, chosen)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce(values: torch.Tensor, op: str = "mean") -> torch.Tensor:
    """The mean (or max) of `values` over the ranks (a world of one returns them unchanged)."""
    if not dist.is_initialized():
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return values if op == "max" else values / dist.get_world_size()


def gather_objects(obj: object) -> list[object]:
    """Every rank's `obj`, in rank order (e.g. the random states a checkpoint keeps per rank)."""
    if not dist.is_initialized():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
