"""scoreflow-vp against scoreflow's conformance kit and the VP closed forms."""

from __future__ import annotations

import math

import pytest
import torch

import scoreflow as sf
from scoreflow import testing
from scoreflow.training import dsm_loss
from scoreflow_vp import AncestralSampling, SubVPSDE, VPSDE


def test_conformance():
    testing.check_sde(VPSDE())
    testing.check_sde(VPSDE(beta_min=0.5, beta_max=5.0))
    testing.check_sde(SubVPSDE())


def test_ancestral_sampling_conforms():
    testing.check_predictor(AncestralSampling(), VPSDE())


def test_ancestral_sampling_needs_the_discrete_chain():
    with pytest.raises(sf.IncompatibleComponentsError, match="discrete_betas"):
        sf.Sampler(predictor=AncestralSampling(), num_steps=3).sample(lambda x, t: -x, SubVPSDE(), (2, 2))


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
    t = torch.linspace(0.01, 1.0, 50, dtype=torch.float64)
    for sde in (VPSDE(), SubVPSDE(), sf.VESDE()):
        s = sde.noise_level(t)
        torch.testing.assert_close(sde.time_at_noise_level(s), t)
        torch.testing.assert_close(sf.SDE.time_at_noise_level(sde, s), t)  # the generic bisection


def _bars(n: int) -> torch.Tensor:
    """Seeded 8x8 images in [-1, 1]: a horizontal bar at a random row."""
    rows = torch.randint(1, 7, (n,), generator=torch.Generator().manual_seed(0))
    images = -torch.ones(n, 1, 8, 8)
    images[torch.arange(n), 0, rows, 1:7] = 1.0
    return images


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE()], ids=["vp", "subvp"])
def test_the_unet_trains_under_vp_and_subvp(sde):
    """The issue's "the U-Net works with them": its denoising score-matching loss falls under each."""
    torch.manual_seed(0)
    net = sf.UNet(sde, image_size=8, channels=(16, 32, 32, 32), embed_dim=32)
    x = _bars(64)
    t_eval = torch.linspace(0.05, 1.0, 64)
    z_eval = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = float(dsm_loss(net, sde, x, t_eval, z_eval).mean())
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(2)
    for _ in range(100):
        t = torch.rand(len(x), generator=g) * (1 - 0.05) + 0.05
        loss = dsm_loss(net, sde, x, t, torch.randn(x.shape, generator=g)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(dsm_loss(net, sde, x, t_eval, z_eval).mean())
    assert after < 0.6 * before, f"{sde}: loss {before:.2f} -> {after:.2f}"
