"""k-diffusion's denoiser convention D(x, sigma), both ways, against a Gaussian mixture's exact denoiser."""

from __future__ import annotations

import pytest
import torch

import scoreflow as sf
from scoreflow.models.base import make_score_fn
from scoreflow.oracles import GaussianMixture

F64 = torch.float64


def _sdes():
    from scoreflow_vp.sde import SubVPSDE, VPSDE

    return {"ve": sf.VESDE(sigma_min=0.01, sigma_max=20.0), "vp": VPSDE(), "subvp": SubVPSDE()}


@pytest.fixture(scope="module")
def mixture():
    return GaussianMixture.ring()


def _reference_ve():
    """The variance-exploding form every linear SDE shares: x = x_0 + sigma n."""
    return sf.VESDE(sigma_min=1e-4, sigma_max=500.0)


@pytest.mark.parametrize("name", ["ve", "vp", "subvp"])
def test_to_denoiser_is_the_exact_denoiser_of_the_variance_exploding_form(name, mixture):
    sde = _sdes()[name]
    denoiser = sf.to_denoiser(mixture.score_model(sde), sde)
    ref = _reference_ve()
    g = torch.Generator().manual_seed(0)
    y = torch.randn(64, 2, generator=g, dtype=F64) * 3
    for sigma in (0.05, 0.7, 4.0):
        s = torch.full((64,), sigma, dtype=F64)
        expected = mixture.denoiser(y, ref.time_at_noise_level(s), ref)
        torch.testing.assert_close(denoiser(y, s), expected, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(denoiser(y, sigma), expected, rtol=1e-6, atol=1e-6)  # a plain float too


def test_to_denoiser_refuses_levels_outside_the_sde(mixture):
    sde = sf.VESDE(sigma_min=0.01, sigma_max=20.0)
    denoiser = sf.to_denoiser(mixture.score_model(sde), sde)
    with pytest.raises(ValueError, match=r"noise level sigma must lie in \(0, 20\]"):
        denoiser(torch.zeros(2, 2, dtype=F64), torch.tensor([0.5, 30.0], dtype=F64))


@pytest.mark.parametrize(("sigma_min", "sigma_max"), [(0.002, 80.0), (0.01, 50.0)])
def test_from_denoiser_gives_the_exact_score_on_its_own_sde(sigma_min, sigma_max, mixture):
    ref = _reference_ve()

    def exact(x, sigma):
        return mixture.denoiser(x, ref.time_at_noise_level(sigma.to(F64)), ref)

    model, sde = sf.from_denoiser(exact, sigma_min, sigma_max)
    ends = sde.noise_level(torch.tensor([sde.default_eps, sde.T], dtype=F64))
    torch.testing.assert_close(ends, torch.tensor([sigma_min, sigma_max], dtype=F64), rtol=1e-9, atol=0)
    score = make_score_fn(model, sde)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(1), dtype=F64) * 2
    for t in (sde.default_eps, 0.3, 1.0):
        tt = torch.full((32,), t, dtype=F64)
        torch.testing.assert_close(score(x, tt), mixture.score(x, tt, sde), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("sigma_data", [0.5, 2.0])
def test_from_denoiser_with_sigma_data_preconditions_a_raw_network_as_k_diffusion_does(sigma_data, mixture):
    """F(c_in x, s) = (D(x, s) - c_skip x) / c_out for the exact D: the preconditioned model has the exact score;
    F = 0 gives D = c_skip x, the exact denoiser of N(0, sigma_data^2) data."""
    ref = _reference_ve()

    def exact(x, sigma):
        return mixture.denoiser(x, ref.time_at_noise_level(sigma.to(F64)), ref)

    def coefficients(sigma, like):
        s = torch.as_tensor(sigma, dtype=F64).reshape(-1, *([1] * (like.dim() - 1)))
        total = s**2 + sigma_data**2
        return sigma_data**2 / total, s * sigma_data / total.sqrt(), 1 / total.sqrt()

    def raw(u, sigma):
        c_skip, c_out, c_in = coefficients(sigma, u)
        x = u / c_in
        return (exact(x, sigma) - c_skip * x) / c_out

    model, sde = sf.from_denoiser(raw, 0.01, 40.0, sigma_data=sigma_data)
    score = make_score_fn(model, sde)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(2), dtype=F64) * 2
    for t in (sde.default_eps, 0.4, 1.0):
        tt = torch.full((16,), t, dtype=F64)
        torch.testing.assert_close(score(x, tt), mixture.score(x, tt, sde), rtol=1e-6, atol=1e-6)
    zero, _ = sf.from_denoiser(lambda u, sigma: torch.zeros_like(u), 0.01, 40.0, sigma_data=sigma_data)
    s = torch.full((16,), 3.0, dtype=F64)
    torch.testing.assert_close(zero.denoiser(x, s), sigma_data**2 / (9.0 + sigma_data**2) * x)
    network = torch.nn.Linear(2, 2)
    wrapped, _ = sf.from_denoiser(network, 0.01, 40.0, sigma_data=sigma_data)
    assert {id(p) for p in wrapped.parameters()} == {id(p) for p in network.parameters()}
    with pytest.raises(ValueError, match="sigma_data must be a finite positive number"):
        sf.from_denoiser(raw, 0.01, 40.0, sigma_data=0.0)


def test_from_denoiser_refuses_noise_levels_it_was_not_trained_on(mixture):
    model, sde = sf.from_denoiser(lambda x, s: x, 0.002, 80.0)
    with pytest.raises(ValueError, match=r"trained on noise levels \[0.002, 80\].*default_eps"):
        model(torch.zeros(1, 2), torch.tensor([1e-4]))
    with pytest.raises(ValueError, match="need 0 < sigma_min < sigma_max"):
        sf.from_denoiser(lambda x, s: x, 1.0, 0.5)


def test_round_trip_through_the_denoiser_convention_samples_the_same(mixture):
    """A scoreflow model turned into D(x, sigma) and back samples what the original samples (same grid)."""
    sde = sf.VESDE(sigma_min=0.01, sigma_max=50.0)
    denoiser = sf.to_denoiser(mixture.score_model(sde), sde)
    model, back = sf.from_denoiser(denoiser, denoiser.sigma_min, denoiser.sigma_max)
    times = sf.create("schedule", "karras").times(sde, 20, sde.default_eps)
    sigmas = sde.noise_level(times)
    grid = back.time_at_noise_level(sigmas)  # the same noise levels on the other SDE's clock
    start = torch.randn(200, 2, generator=torch.Generator().manual_seed(2), dtype=F64) * float(sigmas[0])
    one = sf.Sampler(predictor="ddim", times=times).sample(mixture.score_model(sde), sde, (200, 2), init=start,
                                                           dtype=F64)
    two = sf.Sampler(predictor="ddim", times=grid).sample(model, back, (200, 2), init=start, dtype=F64)
    torch.testing.assert_close(one.samples, two.samples, rtol=1e-6, atol=1e-6)
