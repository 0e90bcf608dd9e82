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
    x, nfe = sample_many(score, ve, (2,), 16, batch_size=batch_size, sampler=sampler)
    assert x.shape == (16, 2) and nfe == 10
    _, ode_nfe = sample_many(score, ve, (2,), 16, batch_size=batch_size, ode_solver="euler",
                             ode_options={"rtol": 1e-3, "atol": 1e-3})
    assert ode_nfe == 100  # torchdiffeq's fixed-grid euler: num_steps evaluations per sample


def test_same_seed_same_samples(oracle, ve):
    score = oracle.score_model(ve)
    sampler = sf.Sampler(predictor="euler", num_steps=5)
    a, _ = sample_many(score, ve, (2,), 8, batch_size=8, sampler=sampler, seed=3)
    b, _ = sample_many(score, ve, (2,), 8, batch_size=8, sampler=sampler, seed=3)
    assert torch.equal(a, b)
