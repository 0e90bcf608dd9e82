"""Conformance checks for SDEs, predictors, correctors and ODE solvers.

Plugin authors call these on their components (in the spirit of scikit-learn's
``check_estimator``); scoreflow's own suite runs them over every registered
component, so installed plugins are checked too.  Each check raises
``AssertionError`` with a message saying what is wrong.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from scoreflow.oracles import MixtureReport, mixture_report
from scoreflow.flow.solvers import ODESolver
from scoreflow.oracles import GaussianMixture
from scoreflow.sampling.base import Corrector, GridPosition, Predictor, TrajectorySolver
from scoreflow.sampling.protocol import SamplerProtocol
from scoreflow.sampling.sampler import Sampler
from scoreflow.sde.base import SDE
from scoreflow.sde.ve import VESDE

SHAPES = ((5, 3), (4, 2, 3), (3, 1, 4, 4))

#: Tolerances of the statistical checks, for ``n = 4000`` samples of the ring oracle.
#: Mode-weight TV from multinomial noise alone averages 0.016 there; the spread ratio's
#: standard error is 0.008 and the mean log-density's 0.016; measured sampler biases at
#: 500 steps are below 0.015 (spread) and 0.05 (log-density).
MIXTURE_TOLERANCES = {"weight_tv": 0.05, "spread_ratio": 0.04, "logp_gap": 0.1}


def ring_oracle() -> GaussianMixture:
    """The reference target: 8 Gaussians of std 0.25 on a radius-4 circle, unequal weights."""
    return GaussianMixture.ring(weights=[1, 2, 3, 4, 1, 2, 3, 4])


def binary_images_oracle(dim: int = 64) -> GaussianMixture:
    """A high-dimensional target: 10 Gaussians of std 0.1 around seeded binary 'images', unequal weights."""
    means = torch.rand(10, dim, generator=torch.Generator().manual_seed(0)).round()
    return GaussianMixture(means, 0.1, weights=[1, 2, 3, 4, 5, 1, 2, 3, 4, 5])


def assert_mixture_close(
    gm: GaussianMixture, x: torch.Tensor, *, reference_logp: float | None = None,
    tolerances: dict[str, float] | None = None, label: str = "samples",
) -> MixtureReport:
    """Assert that ``x`` reproduces ``gm``'s mode weights, spread and mean log-density."""
    tol = {**MIXTURE_TOLERANCES, **(tolerances or {})}
    if reference_logp is None:
        reference_logp = gm.entropy_estimate(200_000, generator=torch.Generator().manual_seed(1234))
    assert torch.isfinite(x).all(), f"{label}: non-finite samples"
    rep = mixture_report(gm, x, reference_logp)
    problems = []
    if rep.weight_tv > tol["weight_tv"]:
        problems.append(f"mode-weight TV {rep.weight_tv:.4f} > {tol['weight_tv']}")
    if abs(rep.spread_ratio - 1) > tol["spread_ratio"]:
        problems.append(f"spread ratio {rep.spread_ratio:.4f} not within 1 +- {tol['spread_ratio']}")
    if abs(rep.logp_gap) > tol["logp_gap"]:
        problems.append(f"mean log-density gap {rep.logp_gap:.4f} beyond +- {tol['logp_gap']}")
    assert not problems, f"{label} do not match the mixture: " + "; ".join(problems)
    return rep


def check_sde(sde: SDE) -> None:
    """Shapes, dtypes, determinism, normalised prior and marginal std against ``int g^2``."""
    for shape in SHAPES:
        for dtype in (torch.float32, torch.float64):
            x = torch.randn(shape, dtype=dtype)
            t = torch.rand(shape[0], dtype=dtype) * 0.9 + 0.05
            drift, diffusion = sde.sde(x, t)
            assert drift.shape == x.shape and drift.dtype == dtype, f"sde drift {drift.shape}/{drift.dtype}"
            assert diffusion.shape == (shape[0],), f"diffusion must be (B,), got {tuple(diffusion.shape)}"
            mean, std = sde.marginal_prob(x, t)
            assert mean.shape == x.shape and mean.dtype == dtype, "marginal_prob mean keeps x's shape and dtype"
            assert std.shape == (shape[0],) and std.dtype == dtype, "marginal_prob std is (B,) in x's dtype"
            f, G = sde.discretize(x, t)
            assert f.shape == x.shape and G.shape == (shape[0],), "discretize returns (f like x, G of shape (B,))"
            z = sde.prior_sampling(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
            assert z.shape == shape and z.dtype == dtype, "prior_sampling keeps shape and dtype"
            z2 = sde.prior_sampling(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
            assert torch.equal(z, z2), "prior_sampling is not deterministic for a given generator"
            logp = sde.prior_logp(z)
            assert logp.shape == (shape[0],) and logp.dtype == dtype, "prior_logp returns (B,) in z's dtype"
    _check_prior_normalised(sde)
    _check_marginal_variance(sde)


def _check_prior_normalised(sde: SDE) -> None:
    scale = float(sde.prior_sampling((20000, 1), generator=torch.Generator().manual_seed(0),
                                     dtype=torch.float64).std())
    grid = torch.linspace(-12 * scale, 12 * scale, 20001, dtype=torch.float64)
    mass = torch.trapezoid(torch.exp(sde.prior_logp(grid[:, None])), grid)
    assert abs(float(mass) - 1) < 1e-3, f"prior density integrates to {float(mass):.5f}, not 1"


def _check_marginal_variance(sde: SDE) -> None:
    """For a linear SDE ``dx = a(t) x dt + g dw``, ``var(t) = e^{2A(t)} int_0^t e^{-2A(s)} g(s)^2 ds``."""
    ts = torch.linspace(0, sde.T, 20001, dtype=torch.float64)
    ones = torch.ones(len(ts), 1, dtype=torch.float64)
    drift, g = sde.sde(ones, ts)
    a_int = _cumulative_trapezoid(drift[:, 0], ts)
    var = torch.exp(2 * a_int) * _cumulative_trapezoid(torch.exp(-2 * a_int) * g**2, ts)
    for i in (2000, 5000, 10000, 20000):
        _, std = sde.marginal_prob(ones[:1], ts[i : i + 1])
        expected = float(std[0]) ** 2
        assert math.isclose(expected, float(var[i]), rel_tol=1e-3, abs_tol=1e-8), (
            f"marginal variance {expected:.6g} at t={float(ts[i]):.3f} differs from the integral of the "
            f"SDE's g^2 ({float(var[i]):.6g})"
        )


def _cumulative_trapezoid(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    steps = (y[1:] + y[:-1]) / 2 * (x[1:] - x[:-1])
    return torch.cat([torch.zeros(1, dtype=y.dtype), torch.cumsum(steps, 0)])


def _sample_check(sampler: SamplerProtocol, sde: SDE, label: str, dim: int = 2) -> MixtureReport:
    if dim == 2:
        gm, n, tolerances = ring_oracle(), 4000, None
    else:
        # log p of a D-dim sample has std ~ sqrt(D/2): 3 standard errors of the mean at n = 600
        gm, n = binary_images_oracle(dim), 600
        tolerances = {"weight_tv": 0.08, "spread_ratio": 0.03, "logp_gap": 3 * (dim / 2 / n) ** 0.5}
    res = sampler.sample(gm.score_model(sde), sde, (n, dim), generator=torch.Generator().manual_seed(7))
    assert res.samples.shape == (n, dim) and res.samples.dtype == torch.float32, f"{label}: wrong shape or dtype"
    small = [sampler.sample(gm.score_model(sde), sde, (16, dim), generator=torch.Generator().manual_seed(3)).samples
             for _ in range(2)]
    assert torch.equal(*small), f"{label}: same generator gave different samples"
    assert res.nfe > 0, f"{label}: reported no score evaluations"
    return assert_mixture_close(gm, res.samples, label=label, tolerances=tolerances)


def check_predictor(predictor: Predictor | TrajectorySolver, sde: SDE | None = None, *, num_steps: int = 500) -> MixtureReport:
    """Shape/dtype kept, determinism, and correct samples of the ring oracle with the exact score.

    Samples on the SDE's own ``default_schedule`` and ``default_eps``, so a plugin SDE whose noise level is
    not exponential in ``t`` is judged on the grid it asks for."""
    sde = sde or VESDE()
    predictor.check_sde(sde)
    if isinstance(predictor, Predictor):  # a TrajectorySolver has no single step to check
        x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
        t = torch.full((3,), 0.5, dtype=torch.float64)
        state = predictor.init_state(GridPosition(torch.tensor([0.5, 0.49], dtype=torch.float64)), sde)
        step = predictor.step(x, t, -0.01, sde=sde, score=standard_gaussian_score(sde),
                              generator=torch.Generator().manual_seed(0), state=state)
        assert step.x.shape == x.shape and step.x.dtype == x.dtype, "predictor step must keep shape and dtype"
    sampler = Sampler(predictor=predictor, num_steps=num_steps)
    return _sample_check(sampler, sde, _label(predictor, sde, sampler), predictor.conformance_dim)


def check_corrector(corrector: Corrector, sde: SDE | None = None, *, num_steps: int = 500) -> MixtureReport:
    """As :func:`check_predictor`, for a corrector run after the Euler-Maruyama predictor."""
    sde = sde or VESDE()
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    t = torch.full((3,), 0.5, dtype=torch.float64)
    corrector.check_sde(sde)
    step = corrector.step(x, t, sde=sde, score=standard_gaussian_score(sde), generator=torch.Generator().manual_seed(0))
    assert step.x.shape == x.shape and step.x.dtype == x.dtype, "corrector step must keep shape and dtype"
    sampler = Sampler(predictor="euler", corrector=corrector, num_steps=num_steps)
    return _sample_check(sampler, sde, _label(corrector, sde, sampler))


def _label(component, sde: SDE, sampler: Any) -> str:
    """Names what a failed check ran: the component and its options, the SDE, schedule, steps and eps."""
    grid = (f"schedule {type(sampler.schedule_for(sde)).__name__}, " if hasattr(sampler, "schedule_for")
            else "its own steps, ")
    return f"{component!r} on {sde!r} ({sampler.num_steps} steps, {grid}eps {sampler.eps_for(sde):g})"


def standard_gaussian_score(sde: SDE):
    """Exact score of ``N(0, I)`` data under ``sde`` for any shape: ``-(x - 0) / (alpha^2 + std^2)``."""

    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha = sde.marginal_scale(t)
        _, std = sde.marginal_prob(x, t)
        var = (alpha**2 + std**2).reshape(-1, *[1] * (x.dim() - 1))
        return -x / var

    return score


def check_ode_solver(solver: ODESolver) -> None:
    """Solves ``dy/dt = -y`` backwards from 1 to 0 (``y(0) = e y(1)``), tensors and tuples, any dtype.

    The 1% tolerance checks that the right equation is solved in the right
    direction, not the solver's accuracy (low-order methods are allowed).
    """
    for dtype in (torch.float32, torch.float64):
        y0 = torch.randn(4, 3, dtype=dtype)
        res = solver.solve(lambda t, y: -y, y0, 1.0, 0.0)
        assert res.y1.shape == y0.shape and res.y1.dtype == dtype, "ODE solver must keep shape and dtype"
        assert res.nfe > 0, "ODE solver reported no evaluations"
        torch.testing.assert_close(res.y1, y0 * math.e, rtol=1e-2, atol=1e-2)
        pair = solver.solve(lambda t, s: (-s[0], s[0].sum(1)), (y0, torch.zeros(4, dtype=dtype)), 1.0, 0.0)
        torch.testing.assert_close(pair[0][1], y0.sum(1) * (1 - math.e), rtol=1e-2, atol=1e-2)
