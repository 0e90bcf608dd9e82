"""Properties of the SDE math (hypothesis) and the VE SDE's closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import scoreflow as sf
from scoreflow.testing import check_sde

sigma_pairs = st.tuples(st.floats(1e-3, 1.0), st.floats(2.0, 100.0))
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(lambda s: (3, *s))
dtypes = st.sampled_from([torch.float32, torch.float64])


@given(sigma_pairs, st.floats(0.0, 1.0))
def test_marginal_variance_is_integral_of_g_squared(sigmas, t_end):
    sde = sf.VESDE(sigma_min=sigmas[0], sigma_max=sigmas[1])
    ts = torch.linspace(0, t_end, 4001, dtype=torch.float64)
    _, g = sde.sde(torch.zeros(len(ts), 1, dtype=torch.float64), ts)
    integral = torch.trapezoid(g**2, ts)
    _, std = sde.marginal_prob(torch.zeros(1, 1, dtype=torch.float64), torch.tensor([t_end], dtype=torch.float64))
    assert math.isclose(float(std[0]) ** 2, float(integral), rel_tol=1e-4, abs_tol=1e-10)


@given(sigma_pairs, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_marginal_std_increases_with_t(sigmas, a, b):
    sde = sf.VESDE(sigma_min=sigmas[0], sigma_max=sigmas[1])
    lo, hi = sorted((a, b))
    std = sde.marginal_std(torch.tensor([lo, hi], dtype=torch.float64))
    assert std[0] <= std[1]


@given(sigma_pairs, shapes, dtypes)
def test_prior_logp_is_the_gaussian_density(sigmas, shape, dtype):
    sde = sf.VESDE(sigma_min=sigmas[0], sigma_max=sigmas[1])
    z = sde.prior_sampling(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    expected = torch.distributions.Normal(0.0, sde.prior_std).log_prob(z.double()).reshape(shape[0], -1).sum(1)
    logp = sde.prior_logp(z)
    assert logp.dtype == dtype and logp.shape == (shape[0],)
    torch.testing.assert_close(logp.double(), expected, rtol=1e-5, atol=1e-3 if dtype == torch.float32 else 1e-9)


@given(shapes, dtypes)
def test_any_rank_and_dtype_kept(shape, dtype):
    sde = sf.VESDE()
    x = torch.randn(shape, dtype=dtype)
    t = torch.rand(shape[0], dtype=dtype)
    drift, g = sde.sde(x, t)
    mean, std = sde.marginal_prob(x, t)
    xt, z, std2 = sde.perturb(x, t, generator=torch.Generator().manual_seed(1))
    assert drift.shape == mean.shape == xt.shape == z.shape == x.shape
    assert g.shape == std.shape == (shape[0],)
    assert {drift.dtype, g.dtype, mean.dtype, std.dtype, xt.dtype} == {dtype}
    torch.testing.assert_close(std, std2)


@given(st.floats(1.5, 60.0), st.floats(0.0, 1.0))
def test_tutorial_constructor_is_the_same_sde(sigma, t):
    sde = sf.VESDE.tutorial(sigma)
    tt = torch.tensor([t], dtype=torch.float64)
    _, g = sde.sde(torch.zeros(1, 1, dtype=torch.float64), tt)
    _, std = sde.marginal_prob(torch.zeros(1, 1, dtype=torch.float64), tt)
    assert math.isclose(float(g[0]), sigma**t, rel_tol=1e-9)  # notebook: diffusion_coeff = sigma^t
    # the notebook's marginal_prob_std, sqrt((sigma^(2t) - 1) / (2 ln sigma)), with sigma^(2t) - 1 written as
    # expm1 so the reference itself keeps full precision at tiny t (hypothesis found t = 1e-12)
    notebook_std = math.sqrt(math.expm1(2 * t * math.log(sigma)) / (2 * math.log(sigma)))
    assert math.isclose(float(std[0]), notebook_std, rel_tol=1e-9, abs_tol=1e-12)


def test_tutorial_values():
    sde = sf.VESDE.tutorial()
    assert math.isclose(sde.sigma_min, 1 / math.sqrt(2 * math.log(25)))
    assert math.isclose(sde.sigma_max, 25 / math.sqrt(2 * math.log(25)))


def test_discretize_is_the_exact_ve_transition(ve):
    x = torch.randn(4, 2, dtype=torch.float64)
    t = torch.full((4,), 0.5, dtype=torch.float64)
    f, G = ve.discretize(x, t, 0.01)
    assert torch.equal(f, torch.zeros_like(x))
    expected = ve.marginal_std(t) ** 2 - ve.marginal_std(t - 0.01) ** 2
    torch.testing.assert_close(G**2, expected)
    _, G_default = ve.discretize(x, t)
    torch.testing.assert_close(G_default**2, ve.marginal_std(t) ** 2 - ve.marginal_std(t - 1 / ve.N) ** 2)


def test_reverse_sde_drift_and_probability_flow(ve):
    x = torch.randn(5, 3)
    t = torch.full((5,), 0.3)
    score = lambda x, t: -x  # noqa: E731
    drift, g = ve.reverse(score).sde(x, t)
    _, g_fwd = ve.sde(x, t)
    torch.testing.assert_close(drift, g_fwd[:, None] ** 2 * x)
    pf_drift, pf_g = ve.reverse(score, probability_flow=True).sde(x, t)
    torch.testing.assert_close(pf_drift, 0.5 * drift)
    assert torch.equal(pf_g, torch.zeros_like(pf_g)) and torch.equal(g, g_fwd)


@pytest.mark.parametrize("kwargs", [dict(sigma_min=0.0), dict(sigma_max=float("nan")), dict(sigma_min=5, sigma_max=2)])
def test_bad_parameters_name_the_value(kwargs):
    with pytest.raises(ValueError, match="sigma"):
        sf.VESDE(**kwargs)


def test_builtin_sdes_pass_conformance(host):
    for name in host.available("sde"):
        check_sde(host.create("sde", name))


@pytest.mark.parametrize("options, words", [
    ({"sigma_min": True}, "sigma_min must be a finite positive number, got True"),
    ({"N": 2.5}, "N must be a positive integer, got 2.5"),
    ({"N": True}, "N must be a positive integer, got True"),
])
def test_vesde_refuses_booleans_and_fractional_step_counts(options, words):
    with pytest.raises(ValueError, match=words):
        sf.VESDE(**options)


def test_sampler_resample_must_be_an_integer_not_a_boolean():
    with pytest.raises(ValueError, match="resample must be a non-negative integer, got True"):
        sf.Sampler(resample=True)
