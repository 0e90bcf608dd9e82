"""Few-step probability-flow solvers as step-wise predictors.

EDM's Heun, DPM-Solver-2/3, DPM-Solver++(2M) and (3M), UniPC, iPNDM and DEIS (tAB). Each works in
the scaled variable of :mod:`scoreflow_fast.sigma` (``y = x / alpha``, noise level ``s``), takes one
step of :class:`scoreflow.Sampler`'s grid per call (any schedule; ``karras`` unless the user picks
another), keeps its history in a :class:`SigmaState` of its own for each sampling call, and finishes with the
denoiser ``D`` at the last noise level (the step to ``s = 0``, one more evaluation). A corrector may
follow any of them: multistep methods keep their history of denoiser outputs, which stays valid.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch

import scoreflow
from scoreflow.tensor import randn_like
from scoreflow_fast.sigma import Denoiser


@attrs.define
class SigmaState:
    """What one of these solvers keeps for one sampling call: the grid as noise levels ``s_i`` and scales
    ``alpha_i`` (float64, computed once) and the method's history of earlier evaluations.

    Attributes:
        grid: The call's grid and the step being taken (moved by the sampler).
        sigmas: Noise level at every grid time.
        alphas: Scale ``alpha(t)`` at every grid time.
        history: The method's earlier evaluations, in the order the method keeps them (DPM-Solver++ keeps
            ``(denoised, h)`` pairs, iPNDM and DEIS noise predictions, UniPC denoiser outputs).
        last_y: UniPC: the point its last step started from (the corrector re-solves that step).
        returned: UniPC: what its last step returned (to see whether a corrector moved it since).
    """

    grid: scoreflow.GridPosition
    sigmas: list[float]
    alphas: list[float]
    history: list[Any] = attrs.field(factory=list)
    last_y: torch.Tensor | None = None
    returned: torch.Tensor | None = None


@attrs.define(kw_only=True)
class _SigmaPredictor(scoreflow.Predictor):
    """Shared by the solvers: converts ``x`` to the scaled variable and back around :meth:`advance`."""

    requires = frozenset({"linear_marginals"})
    preferred_schedule = "karras"

    def init_state(self, grid: scoreflow.GridPosition, sde) -> SigmaState:
        times = grid.times.to(torch.float64)
        return SigmaState(grid, sde.noise_level(times).tolist(), sde.marginal_scale(times).tolist())

    def step(self, x, t, dt, *, sde, score, generator=None, state: SigmaState) -> scoreflow.Step:
        i = state.grid.index
        a, a_next = state.alphas[i], state.alphas[i + 1]
        y = x if a == 1.0 else x / a
        y = self.advance(y, i, state.sigmas, Denoiser(sde, score), state)
        x_next = y if a_next == 1.0 else y * a_next
        return scoreflow.Step(x_next, x_next)

    def finish(self, x, *, sde, score, state: SigmaState):
        a = state.alphas[-1]
        return Denoiser(sde, score)(x if a == 1.0 else x / a, state.sigmas[-1])

    def advance(self, y: torch.Tensor, i: int, sigmas: list[float], den: Denoiser,
                state: SigmaState) -> torch.Tensor:
        """``y`` at ``sigmas[i + 1]`` from ``y`` at ``sigmas[i]``."""
        raise NotImplementedError


@attrs.define(kw_only=True)
class EDMHeun(_SigmaPredictor):
    """Karras et al. (2022) Algorithm 1: Heun's 2nd-order method (2 NFE/step).

    Args:
        last_step_euler: Take the last step with Euler's method only (1 NFE), as EDM does for its last
            step: on a few-step grid the last step's ratio of noise levels is large and Heun's correction,
            extrapolated from far outside its range, overshoots (the ring oracle's gap at NFE 10 went
            from 18 to below 1).
    """

    last_step_euler: bool = True

    def advance(self, y, i, sigmas, den, state):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = (y - den(y, s)) / s
        y_euler = y + (s_next - s) * d
        if self.last_step_euler and i == len(sigmas) - 2:
            return y_euler
        d_next = (y_euler - den(y_euler, s_next)) / s_next
        return y + (s_next - s) * (d + d_next) / 2


@attrs.define(kw_only=True)
class DDIM(_SigmaPredictor):
    """DDIM (Song, Meng & Ermon 2021): the first-order exponential integrator in the denoiser form,
    ``y_next = D + (s_next / s) (y - D)`` in the scaled variable (1 NFE/step), which is also Euler's method in the
    noise level (k-diffusion's ``sample_euler``). With ``eta > 0`` the stochastic DDIM: the step goes to
    ``s_down = sqrt(s_next^2 - s_up^2)`` and adds noise of level ``s_up = eta s_next sqrt(1 - s_next^2 / s^2)``
    (at most ``s_next``), the variance of diffusers' ``DDIMScheduler(eta)`` and k-diffusion's
    ``sample_euler_ancestral``; ``eta = 1`` is DDPM's ancestral step.

    Attributes:
        eta: Share of the noise redrawn each step (0: deterministic DDIM).
    """

    eta: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))

    def step(self, x, t, dt, *, sde, score, generator=None, state: SigmaState) -> scoreflow.Step:
        i = state.grid.index
        a, a_next = state.alphas[i], state.alphas[i + 1]
        s, s_next = state.sigmas[i], state.sigmas[i + 1]
        y = x if a == 1.0 else x / a
        d = Denoiser(sde, score)(y, s)
        s_up = min(s_next, self.eta * s_next * math.sqrt(max(0.0, 1 - (s_next / s) ** 2))) if self.eta else 0.0
        s_down = math.sqrt(s_next**2 - s_up**2)
        mean = d + (s_down / s) * (y - d)
        y_next = mean + randn_like(y, generator) * s_up if s_up > 0 else mean
        scale = 1.0 if a_next == 1.0 else a_next
        return scoreflow.Step(y_next * scale, mean * scale)


@attrs.define(kw_only=True)
class DPMSolver2(_SigmaPredictor):
    """DPM-Solver-2 (Lu et al. 2022): midpoint in log-SNR, noise prediction (2 NFE/step)."""

    def advance(self, y, i, sigmas, den, state):
        s, s_next = sigmas[i], sigmas[i + 1]
        s_mid = math.sqrt(s * s_next)
        eps_t = den.eps(y, s)
        u = y + (s_mid - s) * eps_t
        return y + (s_next - s) * den.eps(u, s_mid)


@attrs.define(kw_only=True)
class DPMSolver3(_SigmaPredictor):
    """DPM-Solver-3 (Lu et al. 2022, r1 = 1/3, r2 = 2/3), noise prediction (3 NFE/step)."""

    def advance(self, y, i, sigmas, den, state):
        r1, r2 = 1 / 3, 2 / 3
        s, s_next = sigmas[i], sigmas[i + 1]
        h = math.log(s / s_next)
        s1, s2 = s * math.exp(-r1 * h), s * math.exp(-r2 * h)
        eps_t = den.eps(y, s)
        u1 = y - (s - s1) * eps_t
        d1 = den.eps(u1, s1) - eps_t
        u2 = y - (s - s2) * eps_t - (s2 * r2 / r1) * (math.expm1(r2 * h) / (r2 * h) - 1) * d1
        d2 = den.eps(u2, s2) - eps_t
        return y - (s - s_next) * eps_t - (s_next / r2) * (math.expm1(h) / h - 1) * d2


@attrs.define(kw_only=True)
class DPMSolverPP2M(_SigmaPredictor):
    """DPM-Solver++(2M) (Lu et al. 2022b): multistep 2nd order, data prediction (1 NFE/step)."""

    def advance(self, y, i, sigmas, den, state):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = den(y, s)
        h = math.log(s / s_next)
        if not state.history:
            d_hat = d
        else:
            prev_d, prev_h = state.history[-1]
            r = prev_h / h
            d_hat = (1 + 1 / (2 * r)) * d - (1 / (2 * r)) * prev_d
        state.history[:] = [(d, h)]
        return (s_next / s) * y - math.expm1(-h) * d_hat


@attrs.define(kw_only=True)
class DPMSolverPP2MSDE(_SigmaPredictor):
    """DPM-Solver++(2M) for the reverse SDE (Lu et al. 2022b; k-diffusion's ``sample_dpmpp_2m_sde``, midpoint
    variant): the exponential-integrator step of :class:`DPMSolverPP2M` with a fraction ``eta`` of the reverse
    SDE's noise; each step keeps ``e^{-eta h}`` of the state and adds fresh noise of variance
    ``s_next^2 (1 - e^{-2 eta h})`` (``h = log(s / s_next)``). ``eta = 0`` is the ODE solver. 1 NFE per step.

    Attributes:
        eta: Share of the reverse SDE's noise (1: the SDE; 0: the probability-flow ODE).
        s_noise: Scale of the added noise (1 is exact).
    """

    #: uniform in log s: on the ring oracle at NFE 10 and 20 the gap is 3x and 2.5x smaller than on the Karras grid
    preferred_schedule = "log_sigma"

    eta: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    s_noise: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))

    def step(self, x, t, dt, *, sde, score, generator=None, state: SigmaState) -> scoreflow.Step:
        i = state.grid.index
        a, a_next = state.alphas[i], state.alphas[i + 1]
        y = x if a == 1.0 else x / a
        s, s_next = state.sigmas[i], state.sigmas[i + 1]
        d = Denoiser(sde, score)(y, s)
        h = math.log(s / s_next)
        eta_h = self.eta * h
        keep = -math.expm1(-h - eta_h)  # 1 - e^{-(1 + eta) h}
        y_next = (s_next / s) * math.exp(-eta_h) * y + keep * d
        if state.history:
            prev_d, prev_h = state.history[-1]
            y_next = y_next + 0.5 * keep * (h / prev_h) * (d - prev_d)
        state.history[:] = [(d, h)]
        mean = y_next
        if self.eta and self.s_noise:
            noise = randn_like(y, generator)
            y_next = y_next + noise * (s_next * math.sqrt(-math.expm1(-2 * eta_h)) * self.s_noise)
        scale = 1.0 if a_next == 1.0 else a_next
        return scoreflow.Step(y_next * scale, mean * scale)


@attrs.define(kw_only=True)
class DPMSolverPP3M(_SigmaPredictor):
    """DPM-Solver++(3M) (Lu et al. 2022b): multistep 3rd order, data prediction (1 NFE/step).

    Orders 1 and 2 while the history builds up; then the last three denoiser outputs on the
    (non-uniform) grid give ``d1 ~ h D'`` and ``d2 ~ h^2 D''/2`` (D's derivatives in ``lambda = -log s``),
    and the step adds ``phi_2 d1 - 2 phi_3 d2``, the exact integral of that quadratic against the
    exponential weight. k-diffusion's ``dpmpp_3m_sde`` (``eta = 0``) and the DPM-Solver reference code
    add ``phi_2 d1 - phi_3 d2``: half the second-derivative term, which made the method second order in
    our convergence test (global order 2.1 against 3.2 here; tests/test_fast.py).
    """

    def advance(self, y, i, sigmas, den, state):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = den(y, s)
        h = math.log(s / s_next)
        history = state.history  # [(d, h), ...] of earlier steps, newest last
        y_next = (s_next / s) * y - math.expm1(-h) * d
        phi_2 = math.expm1(-h) / h + 1
        if len(history) >= 2:
            (d_2, h_2), (d_1, h_1) = history[-2], history[-1]
            r0, r1 = h_1 / h, h_2 / h
            d1_0 = (d - d_1) / r0
            d1_1 = (d_1 - d_2) / r1
            d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            phi_3 = phi_2 / h - 0.5
            y_next = y_next + phi_2 * d1 - 2 * phi_3 * d2
        elif history:
            d_1, h_1 = history[-1]
            y_next = y_next + phi_2 * (d - d_1) / (h_1 / h)
        history.append((d, h))
        del history[:-2]
        return y_next


# Adams-Bashforth coefficients for equal steps, newest first (iPNDM's fixed multistep weights).
_AB_COEFFICIENTS = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}


def _order_positive(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4:
        raise ValueError(f"{attribute.name} must be an integer from 1 to 4, got {value!r}")


@attrs.define(kw_only=True)
class IPNDM(_SigmaPredictor):
    """Improved PNDM (Zhang & Chen 2023; Zhou et al. 2024): Adams-Bashforth on ``dy/ds = eps`` with the
    fixed equal-step weights, lower orders while the history builds up (1 NFE/step).

    Args:
        max_order: Highest Adams-Bashforth order (4, the papers' choice).
    """

    max_order: int = attrs.field(default=4, validator=_order_positive)

    def advance(self, y, i, sigmas, den, state):
        s, s_next = sigmas[i], sigmas[i + 1]
        eps_now = den.eps(y, s)
        history = state.history  # noise predictions, newest first
        history.insert(0, eps_now)
        del history[self.max_order:]
        weights = _AB_COEFFICIENTS[len(history)]
        slope = sum(w * e for w, e in zip(weights, history))
        return y + (s_next - s) * slope


def _lagrange_integrals(nodes: list[float], a: float, b: float) -> list[float]:
    """``int_a^b l_j(s) ds`` for the Lagrange basis ``l_j`` on ``nodes`` (exact: Gauss-Legendre in float64)."""
    points, weights = _gauss_legendre(len(nodes))
    half, mid = (b - a) / 2, (a + b) / 2
    out = []
    for j, nj in enumerate(nodes):
        total = 0.0
        for p, w in zip(points, weights):
            s = mid + half * p
            basis = 1.0
            for k, nk in enumerate(nodes):
                if k != j:
                    basis *= (s - nk) / (nj - nk)
            total += w * basis
        out.append(total * half)
    return out


def _gauss_legendre(n: int) -> tuple[list[float], list[float]]:
    import numpy as np

    points, weights = np.polynomial.legendre.leggauss(max(n, 1))
    return points.tolist(), weights.tolist()


@attrs.define(kw_only=True)
class DEIS(_SigmaPredictor):
    """DEIS with the time-based Adams-Bashforth rule ``tAB`` (Zhang & Chen 2023), 1 NFE/step.

    In the scaled variable the probability-flow ODE is ``dy/ds = eps(y, s)`` with no linear part, so
    the exponential integrator reduces to integrating the Lagrange polynomial through the last
    ``order + 1`` noise predictions exactly over the step, with the grid's own (unequal) spacing,
    in the noise level ``s`` (EDM's time variable), as Zhou et al. (2024) run it.

    Args:
        order: Polynomial order (3 is the paper's tAB3); lower while the history builds up.
    """

    order: int = attrs.field(default=3, validator=_order_positive)

    def advance(self, y, i, sigmas, den, state):
        s, s_next = sigmas[i], sigmas[i + 1]
        eps_now = den.eps(y, s)
        history = state.history  # (s, eps), newest first
        history.insert(0, (s, eps_now))
        del history[self.order + 1:]
        nodes = [h[0] for h in history]
        coefficients = _lagrange_integrals(nodes, s, s_next)
        return y + sum(c * e for c, (_, e) in zip(coefficients, history))


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
class UniPC(_SigmaPredictor):
    """UniPC (Zhao et al. 2023): a multistep predictor (UniP) and a corrector (UniC), data prediction.

    Each step evaluates the denoiser once at the current point; UniC first re-solves the step just
    taken with that evaluation included (no extra NFE), then UniP extrapolates from the corrected
    point with the last ``order`` denoiser outputs. Lower orders are used while history builds up and,
    as the reference implementation does for short schedules, on the last steps. If a corrector moved
    ``x`` between steps, UniC's correction is added to where it left ``x``.

    Args:
        order: Order of the predictor (1 to 3); the corrector adds one.
        denoise_is_last_step: Count the final denoising step (:meth:`finish`, a first-order step to noise level
            0) as the last step when lowering the order at the end of short schedules, as diffusers'
            ``UniPCMultistepScheduler`` does (``lower_order_final`` with its final step to 0; with ``order=2`` it
            then reproduces that scheduler on the same timesteps). The default counts to the grid's last point,
            as the reference implementation (which ends at ``eps``) does: on coarse grids that span the whole
            noise range the higher order of the last step can blow up (NFE 5 on the diffusers MNIST model from
            noise level 157), while on truncated grids it helps (NFE 5 from 33: Frechet distance 40.5 against
            46.2).
    """

    order: int = attrs.field(default=3, validator=[attrs.validators.ge(1), attrs.validators.le(3)])
    denoise_is_last_step: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def advance(self, y, i, sigmas, den, state):
        lambdas = [-math.log(s) for s in sigmas]
        n = len(sigmas) - 1
        outputs: list[torch.Tensor] = state.history  # denoiser outputs at sigmas[0..i-1]
        d = den(y, sigmas[i])
        if i > 0:  # UniC: redo the step sigmas[i-1] -> sigmas[i] with the new evaluation
            corrected = self._update(state.last_y, lambdas, outputs, i - 1, self._order(i - 1, n),
                                     corrector_output=d)
            returned = state.returned
            y = corrected if torch.equal(y, returned) else y + (corrected - returned)
        outputs.append(d)
        state.last_y = y
        y_next = self._update(y, lambdas, outputs, i, self._order(i, n))
        state.returned = y_next
        if len(outputs) > self.order + 1:
            outputs[len(outputs) - self.order - 2] = None  # keep memory bounded; older outputs are never read
        return y_next

    def _order(self, i: int, n: int) -> int:
        """Warm-up while history builds, and lower order at the end of short schedules (counted to the grid's
        last point, or to the final denoising step with :attr:`denoise_is_last_step`)."""
        order = min(self.order, i + 1)
        last = n + 1 if self.denoise_is_last_step else n
        if last < 15:
            order = min(order, last - i)
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
