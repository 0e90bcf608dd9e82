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


def _unipc_coefficients(h: float, rks: list[float]) -> tuple[float, list[float]]:
    """``B(h)`` and the right-hand side ``b`` of UniPC's order conditions (the "bh2" variant).

    Data prediction in ``lambda = -log s``: ``h_phi_k`` are ``h phi_k(h)`` of the exponential
    integrator, ``B(h) = e^{-h} - 1`` (Zhao et al. 2023, eq. 8 and the B2(h) choice).
    """
    hh = -h
    b_h = math.expm1(hh)
    h_phi_k = math.expm1(hh) / hh - 1
    factorial, b = 1, []
    for i in range(1, len(rks) + 1):
        b.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    return b_h, b


@attrs.define(kw_only=True)
class UniPC(_SigmaSolver):
    """UniPC (Zhao et al. 2023): a multistep predictor (UniP) and a corrector (UniC), data prediction.

    Each step evaluates the denoiser once at the predicted point; UniC then re-solves the step
    just taken with that evaluation included (no extra NFE), and UniP extrapolates from the corrected
    point with the last ``order`` denoiser outputs. Lower orders are used while history builds up and,
    as the reference implementation does for short schedules, on the last steps.

    Args:
        order: Order of the predictor (1 to 3); the corrector adds one.
    """

    order: int = attrs.field(default=3, validator=[attrs.validators.ge(1), attrs.validators.le(3)])

    def integrate(self, y, sigmas, den):
        lambdas = [-math.log(s) for s in sigmas]
        outputs: list[torch.Tensor] = []  # denoiser outputs at sigmas[0..i]
        last_y = None
        n = len(sigmas) - 1
        for i in range(n):
            d = den(y, sigmas[i])
            if i > 0:  # UniC: redo the step sigmas[i-1] -> sigmas[i] with the new evaluation
                y = self._update(last_y, lambdas, outputs, i - 1, self._order(i - 1, n), corrector_output=d)
            outputs.append(d)
            last_y = y
            y = self._update(y, lambdas, outputs, i, self._order(i, n))
        return y

    def _order(self, i: int, n: int) -> int:
        """Warm-up while history builds, and lower order at the end of short schedules."""
        order = min(self.order, i + 1)
        if n < 15:
            order = min(order, n - i)
        return max(order, 1)

    @staticmethod
    def _update(y, lambdas, outputs, i, order, corrector_output=None):
        """One UniP step from ``lambdas[i]`` to ``lambdas[i + 1]`` (UniC when ``corrector_output``)."""
        h = lambdas[i + 1] - lambdas[i]
        m0 = outputs[i]
        rks, diffs = [], []
        for k in range(1, order):
            rk = (lambdas[i - k] - lambdas[i]) / h
            rks.append(rk)
            diffs.append((outputs[i - k] - m0) / rk)
        rks.append(1.0)
        b_h, b = _unipc_coefficients(h, rks)
        ratio = math.exp(lambdas[i] - lambdas[i + 1])  # s_{i+1} / s_i
        base = ratio * y - math.expm1(-h) * m0
        if corrector_output is None:
            if not diffs:
                return base
            rhos = [0.5] if order == 2 else _solve([[r ** p for r in rks[:-1]] for p in range(order - 1)], b[:-1])
            return base - b_h * sum(r * d for r, d in zip(rhos, diffs))
        if order == 1:
            rhos = [0.5]
        else:
            rhos = _solve([[r ** p for r in rks] for p in range(order)], b)
        correction = sum(r * d for r, d in zip(rhos[:-1], diffs)) if diffs else 0
        return base - b_h * (correction + rhos[-1] * (corrector_output - m0))


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Solve a small linear system in float64."""
    a = torch.tensor(matrix, dtype=torch.float64)
    return torch.linalg.solve(a, torch.tensor(rhs, dtype=torch.float64)).tolist()
