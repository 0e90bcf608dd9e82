"""Noise-level calculus of an SDE with linear marginals: integration bounds, times and rates in the log noise
level, time derivatives by autograd."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE


def log_noise_bounds(sde: SDE, eps: float) -> tuple[float, float]:
    """``(log s(eps), log s(T))``: where an integration in the log noise level starts and ends."""
    levels = sde.noise_level(torch.tensor([eps, sde.T], dtype=torch.float64))
    return math.log(float(levels[0])), math.log(float(levels[1]))


def times_and_rates(sde: SDE, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``t(u)`` and ``dt/du = s / (ds/dt)`` at log noise levels ``u`` (float64; ``ds/dt`` by autograd on
    :meth:`SDE.noise_level`)."""
    t64 = sde.time_at_noise_level(torch.exp(u.to(torch.float64)))
    level, ds_dt = value_and_time_derivative(sde.noise_level, t64)
    return t64, level / ds_dt


def value_and_time_derivative(fn: Callable[[torch.Tensor], torch.Tensor],
                              t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``fn(t)`` and ``d fn / dt`` elementwise at float64 times ``t`` (autograd; ``None`` where ``fn`` does not
    depend on ``t``, as a VE SDE's ``marginal_scale``)."""
    with torch.enable_grad():
        t_var = t.to(torch.float64).clone().requires_grad_(True)
        value = fn(t_var)
        if not value.requires_grad:
            return value.detach(), None
        (derivative,) = torch.autograd.grad(value.sum(), t_var)
    return value.detach(), derivative
