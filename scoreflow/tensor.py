"""Rank-agnostic tensor helpers shared by SDEs, samplers, estimators and plugins.

Public for plugin authors: a per-sample ``(B,)`` tensor (noise level, step size, drift
coefficient) meets a batch of any rank through :func:`batch_broadcast`.
"""

from __future__ import annotations

import torch

__all__ = ["as_time", "batch_broadcast", "check_finite", "per_sample_dim", "randn_like", "sum_except_batch"]


def batch_broadcast(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample ``(B,)`` tensor so it broadcasts against ``like`` of any rank."""
    return values.reshape(values.shape[0], *([1] * (like.dim() - 1)))


def sum_except_batch(x: torch.Tensor) -> torch.Tensor:
    """Sum every dimension but the first: ``(B, ...) -> (B,)``."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def per_sample_dim(x: torch.Tensor) -> int:
    """Number of scalar entries in one sample of a batch."""
    return int(x[0].numel()) if x.shape[0] > 0 else int(torch.Size(x.shape[1:]).numel())


def as_time(t: float | torch.Tensor, batch: int, like: torch.Tensor) -> torch.Tensor:
    """Return ``t`` as a ``(B,)`` tensor with ``like``'s dtype and device."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.dim() == 0:
        return t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"time must be a scalar or have shape ({batch},), got {tuple(t.shape)}")
    return t


def randn_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``torch.randn_like`` that honours a ``torch.Generator``."""
    return torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)


def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise ``ValueError`` naming ``name`` if ``x`` holds NaN or infinity."""
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")
