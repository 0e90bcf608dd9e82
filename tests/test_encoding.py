"""Probability-flow encoding, decoding and interpolation against exact answers."""

from __future__ import annotations

import math

import pytest
import torch

import scoreflow as sf

F64 = torch.float64


def _gaussian(ve):
    """One Gaussian N(mu, 0.3^2 I): the flow keeps ``(x - mu) / sqrt(0.3^2 + std(t)^2)`` constant."""
    mu = torch.tensor([[1.0, -2.0]], dtype=F64)
    return sf.GaussianMixture(mu, 0.3), mu


def _total_std(ve, t: float, s: float = 0.3) -> float:
    _, std = ve.marginal_prob(torch.zeros(1, 1, dtype=F64), torch.tensor([t], dtype=F64))
    return math.sqrt(s**2 + float(std[0]) ** 2)


def test_encode_is_the_exact_flow_map_of_a_gaussian(ve):
    gm, mu = _gaussian(ve)
    x = mu + 0.3 * torch.randn(64, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    res = sf.encode(gm.score_model(ve), ve, x, sampler=sf.ProbabilityFlowSampler(rtol=1e-8, atol=1e-8))
    exact = mu + (x - mu) * _total_std(ve, ve.T) / _total_std(ve, 1e-3)
    torch.testing.assert_close(res.latents, exact, atol=1e-4 * float(exact.abs().max()), rtol=0)
    assert res.nfe > 0


@pytest.mark.parametrize(("solver", "tolerance"), [("dopri5", 1e-3), ("rk4", 2e-2)])
def test_decode_inverts_encode_on_the_ring(ve, oracle, solver, tolerance):
    x, _ = oracle.sample(200, generator=torch.Generator().manual_seed(1), dtype=F64)
    score = oracle.score_model(ve)
    flow = sf.ProbabilityFlowSampler(solver=solver if solver == "dopri5" else
                                     sf.TorchdiffeqSolver(method="rk4", num_steps=400))
    z = sf.encode(score, ve, x, sampler=flow).latents
    back = sf.decode(score, ve, z, sampler=flow).samples
    assert float((back - x).abs().mean()) < tolerance


def test_latents_of_data_are_distributed_as_the_prior(ve, oracle):
    x, _ = oracle.sample(2000, generator=torch.Generator().manual_seed(2), dtype=F64)
    z = sf.encode(oracle.score_model(ve), ve, x).latents / ve.prior_std
    n = z.numel()
    assert abs(float(z.mean())) < 3 / math.sqrt(n)
    assert abs(float(z.var()) - 1) < 3 * math.sqrt(2 / n)


def test_the_check_can_fail_a_wrong_score(ve, oracle):
    """Half the true score gives latents far from the prior's spread."""
    x, _ = oracle.sample(500, generator=torch.Generator().manual_seed(2), dtype=F64)
    exact = oracle.score_model(ve)
    z = sf.encode(lambda y, t: 0.5 * exact(y, t), ve, x).latents / ve.prior_std
    assert abs(float(z.var()) - 1) > 3 * math.sqrt(2 / z.numel())


def test_interpolation_ends_reconstruct_the_two_items_and_stays_on_the_shell(ve, oracle):
    x, _ = oracle.sample(2, generator=torch.Generator().manual_seed(3), dtype=F64)
    res = sf.interpolate(oracle.score_model(ve), ve, x[0], x[1], 7)
    assert res.samples.shape == (7, 2)
    torch.testing.assert_close(res.samples[0], x[0], atol=1e-3, rtol=0)
    torch.testing.assert_close(res.samples[-1], x[1], atol=1e-3, rtol=0)
    # every frame decodes to a point of the mixture (within 4 component std of a mode)
    nearest = torch.cdist(res.samples, oracle.means.reshape(8, 2).to(F64)).min(1).values
    assert float(nearest.max()) < 4 * 0.25


def test_slerp_interpolates_norm_and_angle():
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 5.0])
    path = sf.flow.slerp(a, b, torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    assert math.isclose(float(path[1].norm()), 4.0, rel_tol=1e-6)
    assert math.isclose(float(path[1][0]), float(path[1][1]), rel_tol=1e-6)  # halfway along the arc


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda s, v: sf.encode(s, v, torch.zeros(3)), ValueError, r"x must have shape \(batch, ...\)"),
    (lambda s, v: sf.encode(s, v, torch.zeros(3, 2, dtype=torch.long)), TypeError, "floating-point"),
    (lambda s, v: sf.encode(s, v, torch.full((3, 2), float("nan"))), ValueError, "x"),
    (lambda s, v: sf.encode(s, v, torch.zeros(3, 2), sampler=sf.ProbabilityFlowSampler(eps=2.0)), ValueError, "eps"),
    (lambda s, v: sf.encode(s, v, torch.zeros(3, 2), sampler=sf.ProbabilityFlowSampler(denoise=True)), ValueError,
     "denoise=False"),
    (lambda s, v: sf.decode(s, v, torch.zeros(3, 2), sampler="dopri5"), TypeError, "ProbabilityFlowSampler"),
    (lambda s, v: sf.decode(s, v, torch.zeros(0, 2)), ValueError, "latents must have shape"),
    (lambda s, v: sf.interpolate(s, v, torch.zeros(2), torch.zeros(2), 1), ValueError, "the number of frames must be an integer in"),
    (lambda s, v: sf.interpolate(s, v, torch.zeros(2), torch.zeros(3), 3), ValueError, "one shape"),
])
def test_bad_input_is_refused(ve, oracle, call, error, match):
    with pytest.raises(error, match=match):
        call(oracle.score_model(ve), ve)
