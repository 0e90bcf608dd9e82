"""Where this process stands in a ``torch.distributed`` group (torchrun), and sums over its ranks: the bottom-layer
helpers both training (sharded batches, checkpoints) and tuning (shared warm-up draws) use."""

from __future__ import annotations

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the process group; ``(0, 1)`` outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def reduce_over_ranks(values: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """``values`` summed (or their maximum, ``op="max"``) over the ranks, in float64; every rank gets the result (a
    collective: call it on every rank). Outside a group: ``values`` as they are."""
    if world()[1] == 1:
        return values
    out = values.detach().to(torch.float64).clone()
    dist.all_reduce(out, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return out
