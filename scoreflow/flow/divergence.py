"""The probability-flow ODE augmented with its divergence (the instantaneous change of variables), the probe
vectors of its trace estimators, and the change of its time variable to the log noise level."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from scoreflow.flow.probability_flow import ProbabilityFlowODE
from scoreflow.sde.noise_levels import times_and_rates
from scoreflow.tensor import as_time, per_sample_dim, sum_except_batch

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE


def make_probes(
    x: torch.Tensor, estimator: str, n_probes: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Probe vectors of shape ``(P, *x.shape)``: Gaussian, Rademacher or the standard basis."""
    if estimator == "exact":
        dim = per_sample_dim(x)
        eye = torch.eye(dim, dtype=x.dtype, device=x.device)
        return eye[:, None, :].expand(dim, x.shape[0], dim).reshape(dim, *x.shape)
    shape = (n_probes, *x.shape)
    # drawn where the generator lives (a CPU generator with CUDA data works), then moved: the same seed
    # gives the same probes on every device
    where = generator.device if generator is not None else x.device
    if estimator == "gaussian":
        return torch.randn(shape, dtype=x.dtype, device=where, generator=generator).to(x.device)
    bits = torch.randint(0, 2, shape, device=where, generator=generator)
    return (bits.to(x.dtype) * 2 - 1).to(x.device)


class DivergenceODE(nn.Module):
    """Augmented dynamics ``(x, delta) -> (F(x, t), div F(x, t))``."""

    def __init__(self, flow: ProbabilityFlowODE, probes: torch.Tensor, exact: bool) -> None:
        super().__init__()
        self.flow = flow
        self.register_buffer("probes", probes)
        self.exact = exact

    def forward(self, t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x = state[0]
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            drift = self.flow(as_time(t, x.shape[0], x), x)
            vjp = batched_vjp(drift, x, self.probes)
        per_probe = sum_except_batch((vjp * self.probes).flatten(0, 1)).reshape(self.probes.shape[0], -1)
        div = per_probe.sum(0) if self.exact else per_probe.mean(0)
        return drift.detach(), div.detach()


class LogNoiseLevelTime(nn.Module):
    """Dynamics in ``t`` rewritten in ``u = log s(t)`` (``s`` the SDE's noise level): ``dy/du = dy/dt dt/du``.

    In ``t`` the tutorial's VE SDE packs half of the log noise range into ``t < 10^-3``, where the
    probability flow changes fastest; in ``u`` the same solver takes even steps through it.
    ``dt/du = s / (ds/dt)``, with ``ds/dt`` from autograd on :meth:`SDE.noise_level` in float64.
    """

    def __init__(self, func: nn.Module, sde: SDE) -> None:
        super().__init__()
        self.func, self.sde = func, sde

    def forward(self, u: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        t64, dt_du = times_and_rates(self.sde, u.detach().to("cpu", torch.float64).reshape(1))
        ref = state[0]
        out = self.func(torch.tensor(float(t64[0]), dtype=ref.dtype, device=ref.device), state)
        return tuple(o * float(dt_du[0]) for o in out)


def batched_vjp(out: torch.Tensor, x: torch.Tensor, probes: torch.Tensor) -> torch.Tensor:
    """``probes[i]^T d out / d x`` for every probe, in one batched backward pass."""
    if probes.shape[0] == 1:
        return torch.autograd.grad(out, x, probes[0])[0].unsqueeze(0)
    try:
        return torch.autograd.grad(out, x, probes, is_grads_batched=True, retain_graph=True)[0]
    except RuntimeError:  # an op without a batching rule: fall back to one VJP per probe
        rows = [torch.autograd.grad(out, x, p, retain_graph=True)[0] for p in probes]
        return torch.stack(rows)
