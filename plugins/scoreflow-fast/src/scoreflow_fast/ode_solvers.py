"""Few-step probability-flow solvers: EDM's Heun, DPM-Solver-2/3 and DPM-Solver++(2M).

All work in the scaled variable of :mod:`scoreflow_fast.sigma`, walk ``num_steps``
intervals of a noise-level schedule from ``T`` to ``eps``, then finish with the
denoiser ``D`` (the step to ``s = 0``, one more evaluation).
"""

from __future__ import annotations

import math

import attrs
import torch

import scoreflow
from scoreflow_fast.sigma import SCHEDULES, Denoiser, sigma_grid


def _schedule(instance, attribute, value):
    if value not in SCHEDULES:
        raise ValueError(f"Unknown schedule {value!r}. Available: {', '.join(SCHEDULES)}.")


@attrs.define(kw_only=True)
class _SigmaSolver(scoreflow.TrajectorySolver):
    schedule: str = attrs.field(default="karras", validator=_schedule)
    rho: float = attrs.field(default=7.0, validator=attrs.validators.gt(0))
    requires = frozenset({"linear_marginals"})

    def solve(self, x, t_start, t_end, num_steps, *, sde, score, generator=None):
        den = Denoiser(sde, score)
        sigmas = sigma_grid(sde, t_start, t_end, num_steps, self.schedule, rho=self.rho)
        alpha_start = float(sde.marginal_scale(torch.tensor([t_start], dtype=torch.float64))[0])
        y = self.integrate(x / alpha_start, sigmas, den)
        y = den(y, sigmas[-1])  # the last step, to s = 0
        return y, den.nfe

    def integrate(self, y: torch.Tensor, sigmas: list[float], den: Denoiser) -> torch.Tensor:
        raise NotImplementedError


@attrs.define(kw_only=True)
class EDMHeun(_SigmaSolver):
    """Karras et al. (2022) Algorithm 1: Heun's 2nd-order method on the rho = 7 schedule (2 NFE/step)."""

    def integrate(self, y, sigmas, den):
        for s, s_next in zip(sigmas[:-1], sigmas[1:]):
            d = (y - den(y, s)) / s
            y_euler = y + (s_next - s) * d
            d_next = (y_euler - den(y_euler, s_next)) / s_next
            y = y + (s_next - s) * (d + d_next) / 2
        return y


@attrs.define(kw_only=True)
class DPMSolver2(_SigmaSolver):
    """DPM-Solver-2 (Lu et al. 2022): midpoint in log-SNR, noise prediction (2 NFE/step)."""

    def integrate(self, y, sigmas, den):
        for s, s_next in zip(sigmas[:-1], sigmas[1:]):
            s_mid = math.sqrt(s * s_next)
            eps_t = den.eps(y, s)
            u = y + (s_mid - s) * eps_t
            y = y + (s_next - s) * den.eps(u, s_mid)
        return y


@attrs.define(kw_only=True)
class DPMSolver3(_SigmaSolver):
    """DPM-Solver-3 (Lu et al. 2022, r1 = 1/3, r2 = 2/3), noise prediction (3 NFE/step)."""

    def integrate(self, y, sigmas, den):
        r1, r2 = 1 / 3, 2 / 3
        for s, s_next in zip(sigmas[:-1], sigmas[1:]):
            h = math.log(s / s_next)
            s1, s2 = s * math.exp(-r1 * h), s * math.exp(-r2 * h)
            eps_t = den.eps(y, s)
            u1 = y - (s - s1) * eps_t
            d1 = den.eps(u1, s1) - eps_t
            u2 = y - (s - s2) * eps_t - (s2 * r2 / r1) * (math.expm1(r2 * h) / (r2 * h) - 1) * d1
            d2 = den.eps(u2, s2) - eps_t
            y = y - (s - s_next) * eps_t - (s_next / r2) * (math.expm1(h) / h - 1) * d2
        return y


@attrs.define(kw_only=True)
class DPMSolverPP2M(_SigmaSolver):
    """DPM-Solver++(2M) (Lu et al. 2022b): multistep 2nd order, data prediction (1 NFE/step)."""

    def integrate(self, y, sigmas, den):
        prev_d, prev_h = None, None
        for s, s_next in zip(sigmas[:-1], sigmas[1:]):
            d = den(y, s)
            h = math.log(s / s_next)
            if prev_d is None:
                d_hat = d
            else:
                r = prev_h / h
                d_hat = (1 + 1 / (2 * r)) * d - (1 / (2 * r)) * prev_d
            y = (s_next / s) * y - math.expm1(-h) * d_hat
            prev_d, prev_h = d, h
        return y
