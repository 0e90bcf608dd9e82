"""The Gaussian-mixture oracle itself: its score is the gradient of its log-density, which is normalised."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

import scoreflow as sf


@given(st.floats(0.0, 1.0), st.integers(0, 10_000))
def test_score_is_the_gradient_of_log_prob(t, seed):
    sde = sf.VESDE()
    gm = sf.GaussianMixture.ring(weights=[1, 2, 3, 4, 1, 2, 3, 4])
    x = (torch.randn(16, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 4).requires_grad_()
    tt = torch.full((16,), t, dtype=torch.float64)
    (grad,) = torch.autograd.grad(gm.log_prob(x, tt, sde).sum(), x)
    torch.testing.assert_close(gm.score(x.detach(), tt, sde), grad)


def test_density_is_normalised_at_every_time():
    gm = sf.GaussianMixture(torch.tensor([[-1.0], [2.0]]), torch.tensor([0.3, 0.6]), weights=[1, 3])
    grid = torch.linspace(-40, 40, 40001, dtype=torch.float64)[:, None]
    for t in (None, 0.2, 0.6):
        tt = None if t is None else torch.full((len(grid),), t, dtype=torch.float64)
        mass = torch.trapezoid(torch.exp(gm.log_prob(grid, tt, sf.VESDE(sigma_max=5.0))), grid[:, 0])
        assert abs(float(mass) - 1) < 1e-6


def test_samples_follow_the_weights():
    gm = sf.GaussianMixture.ring(weights=[1, 2, 3, 4, 1, 2, 3, 4])
    x, labels = gm.sample(40_000, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(labels, minlength=8).double() / len(labels)
    assert (freq - gm.weights).abs().max() < 0.01
    assert (gm.assign(x) == labels).double().mean() > 0.999
