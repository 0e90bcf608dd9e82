"""scoreflow-vp against scoreflow's conformance kit and the VP closed forms."""

from __future__ import annotations

import math

import torch

import scoreflow as sf
from scoreflow import testing
from scoreflow_vp import VPSDE


def test_conformance():
    testing.check_sde(VPSDE())
    testing.check_sde(VPSDE(beta_min=0.5, beta_max=5.0))


def test_marginals_match_the_closed_form():
    sde = VPSDE()
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    mean, std = sde.marginal_prob(torch.ones(3, 1, dtype=torch.float64), t)
    log_alpha = -0.25 * t**2 * 19.9 - 0.5 * t * 0.1
    torch.testing.assert_close(mean[:, 0], torch.exp(log_alpha))
    torch.testing.assert_close(std, torch.sqrt(1 - torch.exp(2 * log_alpha)))
    assert math.isclose(float(std[-1]), 1.0, rel_tol=1e-4)  # the prior N(0, I) is reached at T


def test_samples_the_mixture_with_euler_and_langevin():
    testing.check_predictor(sf.EulerMaruyama(), VPSDE())
    testing.check_corrector(sf.Langevin(), VPSDE())


def test_ode_likelihood_is_exact():
    sde = VPSDE()
    gm = testing.ring_oracle()
    x, _ = gm.sample(200, generator=torch.Generator().manual_seed(0))
    res = sf.log_likelihood(gm.score_model(sde), sde, x, estimator="exact")
    assert float((res.logp.double() - gm.log_prob(x)).abs().mean()) < 0.1


def test_closed_form_inverse_noise_levels():
    from scoreflow_vp import SubVPSDE

    t = torch.linspace(0.01, 1.0, 50, dtype=torch.float64)
    for sde in (VPSDE(), SubVPSDE(), sf.VESDE()):
        s = sde.noise_level(t)
        torch.testing.assert_close(sde.time_at_noise_level(s), t)
        torch.testing.assert_close(sf.SDE.time_at_noise_level(sde, s), t)  # the generic bisection
