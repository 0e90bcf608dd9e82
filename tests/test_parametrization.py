"""Parameterisations and EDM preconditioning against closed forms (Gaussian mixtures under linear SDEs)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import scoreflow as sf
from scoreflow.models.base import ScoreNet, make_denoiser_fn, make_score_fn
from scoreflow.models.parametrization import (
    PARAMETRIZATIONS,
    denoised_from_score,
    noise_estimate,
    scale_and_std,
    target_for,
    to_score,
)
from scoreflow.models.preconditioning import EDMPreconditioner
from scoreflow.training.losses import LogNormalTimeSampler, dsm_loss

F64 = torch.float64


def _sdes():
    from scoreflow_vp.sde import SubVPSDE, VPSDE

    return {"ve": sf.VESDE(sigma_min=0.01, sigma_max=20.0), "vp": VPSDE(), "subvp": SubVPSDE()}


def _mixture() -> sf.GaussianMixture:
    return sf.GaussianMixture([[1.0, -2.0, 0.5], [-1.5, 0.5, 2.0], [0.0, 3.0, -1.0]], [0.3, 0.6, 0.2],
                              [0.5, 0.3, 0.2])


class _ExactNet(ScoreNet):
    """A 'network' predicting exactly what its parameterisation asks, from the mixture's exact denoiser."""

    def __init__(self, gm: sf.GaussianMixture, sde, parametrization: str) -> None:
        super().__init__()
        self.gm, self.sde, self.parametrization = gm, sde, parametrization

    def forward(self, x, t):
        d = self.gm.denoiser(x, t, self.sde)
        alpha, std = scale_and_std(self.sde, x, t)
        z_hat = (x - alpha * d) / std
        if self.parametrization == "score":
            return -z_hat / std
        if self.parametrization == "noise":
            return z_hat
        if self.parametrization == "data":
            return d
        s = std / alpha
        return (z_hat - s * d) / torch.sqrt(1 + s**2)  # E[v | x]: v is linear in (z, x0)


@pytest.mark.parametrize("sde_name", ["ve", "vp", "subvp"])
def test_exact_denoiser_is_tweedie_of_exact_score(sde_name):
    sde, gm = _sdes()[sde_name], _mixture()
    g = torch.Generator().manual_seed(0)
    x0, _ = gm.sample(64, generator=g, dtype=torch.float64)
    t = torch.rand(64, generator=g, dtype=F64) * 0.9 + 0.05
    xt, _, _ = sde.perturb(x0, t, generator=g)
    tweedie = denoised_from_score(gm.score(xt, t, sde), xt, t, sde)
    torch.testing.assert_close(gm.denoiser(xt, t, sde), tweedie, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("sde_name", ["ve", "vp", "subvp"])
@pytest.mark.parametrize("parametrization", PARAMETRIZATIONS)
def test_every_parametrization_converts_to_the_exact_score_and_denoiser(sde_name, parametrization):
    sde, gm = _sdes()[sde_name], _mixture()
    net = _ExactNet(gm, sde, parametrization)
    g = torch.Generator().manual_seed(1)
    x0, _ = gm.sample(50, generator=g, dtype=torch.float64)
    t = torch.rand(50, generator=g, dtype=F64) * 0.95 + 0.02
    xt, _, _ = sde.perturb(x0, t, generator=g)
    torch.testing.assert_close(make_score_fn(net, sde)(xt, t), gm.score(xt, t, sde), rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(make_denoiser_fn(net, sde)(xt, t), gm.denoiser(xt, t, sde), rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("sde_name", ["ve", "vp", "subvp"])
@pytest.mark.parametrize("parametrization", PARAMETRIZATIONS)
def test_targets_convert_back_to_the_true_noise(sde_name, parametrization):
    """target_for gives what a perfect single-sample prediction would be; reading it back gives z exactly."""
    sde = _sdes()[sde_name]
    g = torch.Generator().manual_seed(2)
    x0, z = torch.randn(16, 4, generator=g, dtype=F64), torch.randn(16, 4, generator=g, dtype=F64)
    t = torch.rand(16, generator=g, dtype=F64) * 0.9 + 0.05
    alpha, std = scale_and_std(sde, x0, t)
    xt = alpha * x0 + std * z
    out = target_for(parametrization, x0, z, t, sde)
    torch.testing.assert_close(noise_estimate(out, xt, t, sde, parametrization), z, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(to_score(out, xt, t, sde, parametrization), -z / std, rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(parametrization=st.sampled_from(PARAMETRIZATIONS), seed=st.integers(0, 2**31 - 1),
       sde_name=st.sampled_from(["ve", "vp", "subvp"]))
def test_loss_of_each_parametrization_equals_the_score_loss_it_stands_for(parametrization, seed, sde_name):
    """dsm_loss on a network of any parameterisation equals the tutorial's score loss on the score it stands for."""
    sde = _sdes()[sde_name]
    g = torch.Generator().manual_seed(seed)
    weights = torch.randn(3, 3, generator=g, dtype=F64)

    class Net(ScoreNet):
        def forward(self, x, t):
            return torch.tanh(x @ weights) * (1 + t[:, None])

    net = Net()
    net.parametrization = parametrization
    x, z = torch.randn(8, 3, generator=g, dtype=F64), torch.randn(8, 3, generator=g, dtype=F64)
    t = torch.rand(8, generator=g, dtype=F64) * 0.9 + 0.05
    score = make_score_fn(net, sde)
    mean, std = sde.marginal_prob(x, t)
    xt = mean + std[:, None] * z
    reference = ((score(xt, t) * std[:, None] + z) ** 2).sum(1)
    for weighting in ("sigma2", "edm"):
        loss = dsm_loss(net, sde, x, t, z, weighting=weighting, sigma_data=0.7)
        factor = 1.0 if weighting == "sigma2" else 1 + sde.noise_level(t) ** 2 / 0.49
        torch.testing.assert_close(loss, reference * factor, rtol=1e-8, atol=1e-10)


def test_score_loss_is_bitwise_unchanged_for_score_networks():
    """The tutorial's loss ||s std + z||^2 (the mnist-tutorial preset's) is computed exactly as before."""
    sde = sf.VESDE(sigma_min=0.01, sigma_max=22.0)
    net = sf.UNet(sde, image_size=8, padding="same").float()
    g = torch.Generator().manual_seed(0)
    x, z = torch.rand(4, 1, 8, 8, generator=g).float(), torch.randn(4, 1, 8, 8, generator=g, dtype=F64).float()
    t = (torch.rand(4, generator=g, dtype=F64) * 0.9 + 0.1).float()
    mean, std = sde.marginal_prob(x, t)
    xt = mean + std[:, None, None, None] * z
    old = ((net(xt, t) * std[:, None, None, None] + z) ** 2).reshape(4, -1).sum(1)
    assert torch.equal(dsm_loss(net, sde, x, t, z), old)


@pytest.mark.parametrize("sde_name", ["ve", "vp", "subvp"])
def test_edm_preconditioning_is_exact_for_gaussian_data_with_zero_network(sde_name):
    """For x_0 ~ N(0, sd^2 I) the exact denoiser is c_skip y, so F = 0 is the optimum at every noise level;
    c_in y has unit variance."""
    sde, sd = _sdes()[sde_name], 0.7
    class Zero(torch.nn.Module):
        def forward(self, x, c):
            return torch.zeros_like(x)

    pre = EDMPreconditioner(Zero(), sde, sigma_data=sd)
    gm = sf.GaussianMixture([[0.0, 0.0]], [sd])
    g = torch.Generator().manual_seed(3)
    t = torch.rand(200, generator=g, dtype=F64) * 0.95 + 0.03
    xt, _, _ = sde.perturb(gm.sample(200, generator=g, dtype=torch.float64)[0], t, generator=g)
    torch.testing.assert_close(pre(xt, t), gm.denoiser(xt, t, sde), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(make_score_fn(pre, sde)(xt, t), gm.score(xt, t, sde), rtol=1e-7, atol=1e-9)
    _, _, _, c_in, _ = pre.coefficients(t)
    alpha, std = scale_and_std(sde, xt, t)
    y_var = sd**2 + (std / alpha) ** 2  # variance of y = x_t / alpha
    torch.testing.assert_close((c_in[:, None] ** 2 * y_var), torch.ones_like(y_var), rtol=1e-9, atol=1e-9)


def test_edm_preconditioner_passes_c_noise_and_scaled_input():
    sde = sf.VESDE(sigma_min=0.01, sigma_max=20.0)
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, x, c):
            seen["x"], seen["c"] = x, c
            return torch.ones_like(x)

    pre = EDMPreconditioner(Spy(), sde, sigma_data=0.5)
    x, t = torch.randn(5, 2, dtype=F64), torch.linspace(0.1, 0.9, 5, dtype=F64)
    d = pre(x, t)
    s = sde.noise_level(t)
    torch.testing.assert_close(seen["c"], torch.log(s) / 4)
    torch.testing.assert_close(seen["x"], x / torch.sqrt(s**2 + 0.25)[:, None])
    c_skip, c_out = 0.25 / (s**2 + 0.25), s * 0.5 / torch.sqrt(s**2 + 0.25)
    torch.testing.assert_close(d, c_skip[:, None] * x + c_out[:, None])


def test_preconditioner_refuses_a_score_network_and_bad_sigma_data():
    sde = sf.VESDE()
    with pytest.raises(ValueError, match="raw network"):
        EDMPreconditioner(sf.UNet(sde, image_size=8, padding="same"), sde)
    for bad in (0.0, -1.0, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match="sigma_data"):
            EDMPreconditioner(torch.nn.Identity(), sde, sigma_data=bad)


def test_unknown_parametrization_is_refused_with_the_allowed_ones():
    class Net(ScoreNet):
        parametrization = "epsilon"

        def forward(self, x, t):
            return x

    with pytest.raises(ValueError, match="'score', 'noise', 'data', 'v'"):
        make_score_fn(Net(), sf.VESDE())


@pytest.mark.parametrize("sde_name", ["ve", "vp"])
def test_log_normal_times_have_log_normal_noise_levels(sde_name):
    sde = _sdes()[sde_name]
    sampler = LogNormalTimeSampler(sde, 1e-5, p_mean=-1.0, p_std=0.5)
    t = sampler.sample(20_000, torch.Generator().manual_seed(0))
    log_s = torch.log(sde.noise_level(t))
    assert abs(float(log_s.mean()) + 1.0) < 0.02 and abs(float(log_s.std()) - 0.5) < 0.02
