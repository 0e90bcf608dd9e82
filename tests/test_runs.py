"""Sampling in blocks: the reported NFE is per sample, whatever the block size."""

from __future__ import annotations

import pytest
import torch

import scoreflow as sf
from scoreflow.evaluation.runs import sample_many


@pytest.mark.parametrize("batch_size", [4, 8, 16])
def test_reported_nfe_does_not_grow_with_the_number_of_blocks(oracle, ve, batch_size):
    score = oracle.score_model(ve)
    sampler = sf.Sampler(predictor="euler", num_steps=10)
    result = sample_many(score, ve, (2,), 16, batch_size=batch_size, sampler=sampler)
    x, nfe = result
    assert x.shape == (16, 2) and nfe == 10 and result.samples is x and result.nfe == 10
    ode = sf.ProbabilityFlowSampler(solver="euler", rtol=1e-3, atol=1e-3)
    _, ode_nfe = sample_many(score, ve, (2,), 16, batch_size=batch_size, sampler=ode)
    assert ode_nfe == 100  # torchdiffeq's fixed-grid euler: num_steps evaluations per sample


def test_same_seed_same_samples(oracle, ve):
    score = oracle.score_model(ve)
    sampler = sf.Sampler(predictor="euler", num_steps=5)
    a, _ = sample_many(score, ve, (2,), 8, batch_size=8, sampler=sampler, seed=3)
    b, _ = sample_many(score, ve, (2,), 8, batch_size=8, sampler=sampler, seed=3)
    assert torch.equal(a, b)


def test_probability_flow_sampler_is_ode_sample_with_the_samplers_shape(oracle, ve):
    score = oracle.score_model(ve)
    ode = sf.ProbabilityFlowSampler(solver="rk4", solver_options={"num_steps": 6}, eps=1e-2)
    a = ode.sample(score, ve, (5, 2), generator=torch.Generator().manual_seed(1))
    b = sf.ode_sample(score, ve, (5, 2), sampler=sf.ProbabilityFlowSampler(
                          solver=sf.TorchdiffeqSolver(method="rk4", num_steps=6), eps=1e-2),
                      generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.samples, b.samples) and a.nfe == b.nfe == 24
    start = torch.randn(5, 2, dtype=torch.float64) * ve.sigma_max
    assert ode.sample(score, ve, (5, 2), init=start).samples.dtype == torch.float64
    reports = []
    ode.sample(score, ve, (5, 2), callback=reports.append)
    assert [r["nfe"] for r in reports] == [24] and reports[0]["x"].shape == (5, 2)
    trajectory = sf.Sampler(predictor=sf.TorchsdeSolver(method="euler"), num_steps=7, eps=1e-2)
    reports.clear()
    result = trajectory.sample(score, ve, (5, 2), callback=reports.append)
    assert [r["nfe"] for r in reports] == [result.nfe] and torch.equal(reports[0]["x"], result.samples)
    with pytest.raises(sf.UnknownOptionError, match="bogus"):
        sf.ProbabilityFlowSampler(solver="rk4", solver_options={"bogus": 1})
    with pytest.raises(ValueError, match="eps must lie in"):
        sf.ProbabilityFlowSampler(eps=2.0).check(ve)
