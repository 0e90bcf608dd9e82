"""torch.distributed helpers: set-up from torchrun's environment, sharding and gathering."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from scoreflow.process_group import world


def init_from_env(device: str = "cpu") -> bool:
    """Join the process group torchrun describes (``WORLD_SIZE > 1``); returns whether distributed.

    ``device`` is checked first: an unknown name or a device this machine lacks raises ``ValueError``."""
    from scoreflow.device import resolve_device

    resolve_device(device)
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    return True


def shutdown(*, wait: bool) -> None:
    """Leave the process group before the process exits (``wait``: first let every rank finish).

    Exiting with a live gloo group while another rank still talks to it can abort that rank
    ("terminate called without an active exception"), so every command ends here.
    """
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def is_main() -> bool:
    """Whether this process is rank 0 (the one that writes files)."""
    return world()[0] == 0


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if world()[1] > 1:
        dist.barrier()


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list when not distributed)."""
    rank, size = world()
    if size == 1:
        return [obj]
    out: list[Any] = [None] * size
    dist.all_gather_object(out, obj)
    return out


def mean_across_ranks(value: float) -> float:
    """Average a float over ranks (for logging)."""
    rank, size = world()
    if size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t[0]) / size


def max_across_ranks(value: int) -> int:
    """The largest of an integer over ranks (every rank gets it: a collective, so call it on all ranks)."""
    rank, size = world()
    if size == 1:
        return value
    t = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t[0])


def my_blocks(n_blocks: int) -> list[int]:
    """Block indices this rank handles: ``rank, rank + world, ...``."""
    rank, size = world()
    return list(range(rank, n_blocks, size))
