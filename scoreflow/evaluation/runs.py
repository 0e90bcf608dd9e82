"""Sampling and likelihood over many samples, in fixed blocks sharded across torchrun ranks.

Block ``b`` always uses the generator seeded with ``block_seed(seed, b)`` and the same
block size, so the gathered result is identical whatever the number of processes.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, NamedTuple

import torch

from scoreflow.errors import SamplingInterrupted

from scoreflow.training import distributed as ddp


class _Terminated(Exception):
    """SIGTERM, raised where the process is, like KeyboardInterrupt for SIGINT."""


@contextlib.contextmanager
def _sigterm_interrupts(active: bool):
    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def block_seed(seed: int, block: int) -> int:
    """The seed of block ``block`` of a run seeded with ``seed``."""
    return (seed * 1_000_003 + block) % (2**63 - 1)


def _blocks(n: int, size: int) -> list[tuple[int, int]]:
    return [(b, min(size, n - b * size)) for b in range((n + size - 1) // size)]


class GatheredSamples(NamedTuple):
    """What :func:`sample_many` returns: every rank's blocks in order, and the NFE one sample took."""

    samples: torch.Tensor
    nfe: int


def sample_many(model, sde, sample_shape: tuple[int, ...], n: int, *, sampler, batch_size: int = 64, seed: int = 0,
                device: str = "cpu", progress: bool = False, interruptible: bool = False) -> GatheredSamples:
    """``n`` samples in blocks of ``batch_size`` (this rank's blocks, gathered); returns ``(samples, nfe)`` as a
    :class:`GatheredSamples`.

    ``sampler`` is anything with the :class:`~scoreflow.Sampler`'s ``sample(model, sde, shape, *, generator,
    device, progress)``: a ``Sampler`` or a :class:`~scoreflow.ProbabilityFlowSampler`.

    With ``interruptible`` (one process), SIGINT or SIGTERM stop sampling and raise
    :class:`~scoreflow.errors.SamplingInterrupted` holding the blocks finished so far.

    ``nfe`` is the number of score evaluations one sample took: the largest over blocks (the same
    for every block with fixed-step samplers), never a sum that would grow with the number of blocks.
    """
    from tqdm.auto import tqdm

    if n <= 0 or batch_size <= 0:
        raise ValueError(f"num_samples and batch_size must be positive, got {n} and {batch_size}")
    from scoreflow.validators import check_request

    check_request(f"{n} samples of shape {tuple(sample_shape)}", n, sample_shape)  # before the block list
    blocks = _blocks(n, batch_size)
    mine = {}
    nfe = 0
    try:
        with _sigterm_interrupts(interruptible and ddp.world()[1] == 1):
            for b in tqdm(ddp.my_blocks(len(blocks)), desc="sampling", disable=not (progress and ddp.is_main())):
                size = blocks[b][1]
                g = torch.Generator(device=device).manual_seed(block_seed(seed, b))
                shape = (size, *sample_shape)
                steps = progress and ddp.is_main()  # a per-step bar inside each block's bar
                res = sampler.sample(model, sde, shape, generator=g, device=device, progress=steps)
                mine[b] = res.samples.cpu()
                nfe = max(nfe, res.nfe)
    except (KeyboardInterrupt, _Terminated) as exc:
        if not interruptible:
            raise
        finished = [mine[b] for b in range(len(blocks)) if b in mine]
        done = torch.cat(finished) if finished else torch.zeros((0, *sample_shape))
        signum = signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT
        raise SamplingInterrupted(f"{signum.name} after {len(done)} of {n} samples", done, nfe,
                                  128 + int(signum)) from None
    gathered: dict[int, torch.Tensor] = {}
    for part in ddp.gather_objects(mine):
        gathered.update(part)
    return GatheredSamples(torch.cat([gathered[b] for b in range(len(blocks))]), max(ddp.gather_objects(nfe)))


def mean_and_standard_error(values: torch.Tensor) -> dict[str, float]:
    """``{"n", "mean", "std_error"}`` of per-sample values (bits/dim, log-densities): the standard error of the
    mean is ``std / sqrt(n)`` (NaN for one value)."""
    values = values.double().reshape(-1)
    n = len(values)
    return {"n": n, "mean": float(values.mean()) if n else float("nan"),
            "std_error": float(values.std() / n**0.5) if n > 1 else float("nan")}


def likelihood_many(model, sde, x: torch.Tensor, *, batch_size: int = 64, seed: int = 0, progress: bool = False,
                    **options: Any) -> dict[str, torch.Tensor]:
    """Per-sample ``logp`` and ``bpd`` of ``x`` in blocks sharded across ranks, with a running bpd, and the
    evaluations each block took (``nfe``, one entry per block)."""
    from tqdm.auto import tqdm

    from scoreflow.flow.likelihood import log_likelihood

    blocks = _blocks(len(x), batch_size)
    mine: dict[int, tuple[torch.Tensor, torch.Tensor, int]] = {}
    bar = tqdm(ddp.my_blocks(len(blocks)), desc="likelihood", disable=not (progress and ddp.is_main()))
    running = []
    for b in bar:
        chunk = x[b * batch_size: b * batch_size + blocks[b][1]]
        g = torch.Generator().manual_seed(block_seed(seed, b))
        res = log_likelihood(model, sde, chunk, generator=g, **options)
        mine[b] = (res.logp.cpu(), res.bpd.cpu(), res.nfe)
        running.append(res.bpd)
        bar.set_postfix(bpd=f"{float(torch.cat(running).mean()):.4f}")
    gathered: dict[int, tuple[torch.Tensor, torch.Tensor, int]] = {}
    for part in ddp.gather_objects(mine):
        gathered.update(part)
    return {"logp": torch.cat([gathered[b][0] for b in range(len(blocks))]),
            "bpd": torch.cat([gathered[b][1] for b in range(len(blocks))]),
            "nfe": torch.tensor([gathered[b][2] for b in range(len(blocks))])}
