"""scoreflow-fast against the exact Gaussian-mixture oracles."""

from __future__ import annotations

import math

import pytest
import torch

import scoreflow as sf
from scoreflow import testing
from scoreflow.oracles import mixture_report
from scoreflow_fast import (DEIS, IPNDM, AnnealedLangevin, DPMSolver2, DPMSolver3, DPMSolverPP2M, DPMSolverPP3M,
                            EDMHeun, GottaGoFast, UniPC)

N = 6000
ODE_SOLVERS = {"edm_heun": EDMHeun, "dpm_solver_2": DPMSolver2, "dpm_solver_3": DPMSolver3,
               "dpmpp_2m": DPMSolverPP2M, "dpmpp_3m": DPMSolverPP3M, "unipc": UniPC, "ipndm": IPNDM, "deis": DEIS}
# Steps giving about 40 network evaluations (final denoising step included).
STEPS_AT_40 = {"edm_heun": 20, "dpm_solver_2": 20, "dpm_solver_3": 13, "dpmpp_2m": 40, "dpmpp_3m": 40, "unipc": 40,
               "ipndm": 40, "deis": 40}
# Steps giving at most 50 network evaluations.
STEPS_AT_50 = {"edm_heun": 24, "dpm_solver_2": 24, "dpm_solver_3": 16, "dpmpp_2m": 49, "unipc": 49}


@pytest.fixture(scope="module")
def ring():
    gm = testing.ring_oracle()
    return gm, gm.entropy_estimate(200_000, generator=torch.Generator().manual_seed(0))


def _vp():
    return sf.PluginHost(autoload=True, strict=True).create("sde", "vp")


def _eps_at(sde, noise_level: float) -> float:
    """The time where the SDE's noise level reaches ``noise_level``."""
    return float(sde.time_at_noise_level(torch.tensor([noise_level], dtype=torch.float64))[0])


def _eps(sde) -> float:
    """The time where the noise level reaches 0.01 (k-diffusion's sigma_min for this oracle)."""
    return _eps_at(sde, 0.01)


@pytest.mark.parametrize("name", list(ODE_SOLVERS))
@pytest.mark.parametrize("sde_name", ["ve", "vp"])
def test_fast_solvers_reach_the_mixture_at_about_40_nfe(name, sde_name, ring):
    gm, ref = ring
    sde = sf.VESDE() if sde_name == "ve" else _vp()
    sampler = sf.Sampler(predictor=name, num_steps=STEPS_AT_40[name], eps=_eps(sde))
    res = sampler.sample(gm.score_model(sde), sde, (N, 2), generator=torch.Generator().manual_seed(0))
    assert res.nfe <= 50
    testing.assert_mixture_close(gm, res.samples, reference_logp=ref, label=f"{name} on {sde_name}")


@pytest.mark.parametrize("name", list(ODE_SOLVERS))
def test_fast_solvers_beat_euler_maruyama_at_equal_nfe(name, ring):
    gm, ref = ring
    sde = sf.VESDE()
    fast = sf.Sampler(predictor=name, num_steps=STEPS_AT_40[name], eps=_eps(sde)).sample(
        gm.score_model(sde), sde, (N, 2), generator=torch.Generator().manual_seed(1))
    em = sf.Sampler(predictor="euler", num_steps=fast.nfe).sample(
        gm.score_model(sde), sde, (N, 2), generator=torch.Generator().manual_seed(1))
    gap_fast = abs(mixture_report(gm, fast.samples, ref).logp_gap)
    gap_em = abs(mixture_report(gm, em.samples, ref).logp_gap)
    assert gap_fast < gap_em, f"{name}: gap {gap_fast:.3f} vs Euler-Maruyama {gap_em:.3f} at NFE {fast.nfe}"


@pytest.mark.parametrize("cls", list(ODE_SOLVERS.values()) + [GottaGoFast])
def test_declared_requirements_are_enforced(cls):
    class Nonlinear(sf.VESDE):
        capabilities = frozenset()

    with pytest.raises(sf.IncompatibleComponentsError, match="linear_marginals"):
        sf.Sampler(predictor=cls(), num_steps=3).sample(lambda x, t: -x, Nonlinear(), (2, 2))


def test_ald_requires_variance_exploding():
    with pytest.raises(sf.IncompatibleComponentsError, match="variance_exploding"):
        sf.Sampler(corrector=AnnealedLangevin(), num_steps=3).sample(lambda x, t: -x, _vp(), (2, 2))


def test_annealed_langevin_conforms():
    testing.check_corrector(AnnealedLangevin(n_steps=3))


def test_schedules_are_the_samplers_not_the_solvers():
    """Solvers step along any grid the Sampler hands them; their old schedule options are gone."""
    with pytest.raises(sf.UnknownOptionError, match="schedule"):
        sf.Sampler(predictor="dpmpp_2m", predictor_options={"schedule": "karras"})
    sde = sf.VESDE()
    assert sf.Sampler(predictor="dpmpp_2m", num_steps=5).schedule_for(sde) == sf.create("schedule", "karras")
    custom = sf.Sampler(predictor="dpmpp_2m", num_steps=5, schedule="log_sigma")
    assert custom.schedule_for(sde) == sf.create("schedule", "log_sigma")


def _integrate(predictor, x, sde, score, eps, n, schedule="log_sigma"):
    """Step ``predictor`` from ``x`` at ``T`` down to ``eps`` along ``n`` steps, without the final denoising."""
    sampler = sf.Sampler(predictor=predictor, num_steps=n, eps=eps, schedule=schedule, denoise=False)
    return sampler.sample(score, sde, tuple(x.shape), init=x, dtype=x.dtype).samples


def test_gotta_go_fast_on_a_64_dimensional_mixture():
    """The adaptive solver's error norm averages over dimensions: it is meant for images, so test it in 64-D."""
    g = torch.Generator().manual_seed(0)
    means = torch.rand(10, 64, generator=g).round()  # binary 8x8 'images'
    gm = sf.GaussianMixture(means, 0.1, weights=[1, 2, 3, 4, 5, 1, 2, 3, 4, 5])
    ref = gm.entropy_estimate(50_000, generator=torch.Generator().manual_seed(1))
    sde = sf.VESDE(sigma_min=0.01, sigma_max=10.0)
    res = sf.Sampler(predictor="gotta_go_fast").sample(gm.score_model(sde), sde, (600, 64),
                                                     generator=torch.Generator().manual_seed(2))
    rep = mixture_report(gm, res.samples, ref)
    # log-density of a 64-D sample has std ~ sqrt(32); 3 standard errors at n=600 is 0.7
    assert rep.weight_tv < 0.08 and abs(rep.spread_ratio - 1) < 0.03 and abs(rep.logp_gap) < 0.7, rep
    assert res.nfe < 500


@pytest.fixture(scope="module")
def euler_maruyama_500(ring):
    """Euler-Maruyama with 500 steps on 50,000 samples: the quality the fast samplers are measured against."""
    gm, ref = ring
    sde = sf.VESDE()
    res = sf.Sampler(predictor="euler", num_steps=500, eps=_eps(sde)).sample(
        gm.score_model(sde), sde, (50_000, 2), generator=torch.Generator().manual_seed(2))
    return mixture_report(gm, res.samples, ref)


# Measured (50,000 samples): Euler-Maruyama at 500 NFE spread 1.0010, gap 0.0022; at <= 50 NFE unipc 1.0009 /
# 0.0025, dpm_solver_3 1.0059 / 0.0125, dpmpp_2m 1.0091 / 0.0198, edm_heun 1.0104 / 0.0218, dpm_solver_2
# 1.0131 / 0.0278. The second-order solvers (and third-order single-step DPM-Solver-3) keep a 0.6-1.3 %
# over-dispersion at 50 NFE: trajectories that pick their mode late cross a stiff region (docs/guides).
_NOT_YET = pytest.mark.xfail(strict=True, reason="over-dispersed by 0.6-1.3 % at 50 NFE on the ring (see comment)")


@pytest.mark.parametrize("name", [pytest.param(n, marks=[] if n == "unipc" else [_NOT_YET]) for n in STEPS_AT_50])
def test_at_most_50_nfe_reaches_the_mixture_as_well_as_euler_maruyama_at_500(name, ring, euler_maruyama_500):
    gm, ref = ring
    sde = sf.VESDE()
    res = sf.Sampler(predictor=name, num_steps=STEPS_AT_50[name], eps=_eps(sde)).sample(
        gm.score_model(sde), sde, (50_000, 2), generator=torch.Generator().manual_seed(2))
    fast, em = mixture_report(gm, res.samples, ref), euler_maruyama_500
    assert res.nfe <= 50
    # margins of about one standard error at 50,000 samples
    assert fast.logp_gap <= em.logp_gap + 0.005, (fast, em)
    assert abs(fast.spread_ratio - 1) <= abs(em.spread_ratio - 1) + 0.002, (fast, em)
    assert fast.weight_tv <= em.weight_tv + 0.005, (fast, em)


@pytest.mark.parametrize(("order", "expected"), [(1, 1.8), (2, 2.8), (3, 2.8)])
def test_unipc_converges_at_its_order(order, expected):
    """UniP-p with UniC has order p + 1 (Zhao et al. 2023); warm-up steps cap the global order at 3."""
    sde = sf.VESDE(sigma_min=0.01, sigma_max=50.0)
    gm = sf.GaussianMixture([[0.0], [3.0]], 0.5)  # 1-D, two modes: a smooth, non-linear flow
    x = torch.linspace(-100, 100, 41, dtype=torch.float64)[:, None]

    def solve(solver, n):
        return _integrate(solver, x, sde, gm.score_model(sde), 0.05, n)

    reference = solve(UniPC(order=3), 4000)
    errors = [float((solve(UniPC(order=order), n) - reference).abs().max()) for n in (80, 160)]
    assert math.log2(errors[0] / errors[1]) >= expected, errors


def test_registered_names():
    host = sf.PluginHost(autoload=True, strict=True)
    for name in ODE_SOLVERS:
        assert host.predictors.get(name).provider == "fast"
    assert host.predictors.get("ddim").provider == "fast"
    assert host.trajectory_solvers.get("gotta_go_fast").provider == "fast"
    assert host.correctors.get("ald").provider == "fast"
    assert math.isfinite(float(sf.VESDE().log_ratio))


def test_mode_weight_error_of_ode_samplers_in_64_d_is_the_priors():
    """With sigma_max = 10 on binary 64-D means (|mean| about 4), N(0, sigma_max^2 I) is not the marginal.

    A deterministic flow carries that mismatch into the mode weights; started from the exact
    marginal, the same solver reaches them. Measured (20,000 samples): TV 0.032 from the prior,
    0.0095 from the exact marginal; Euler-Maruyama at 500 NFE 0.009.
    """
    gm = testing.binary_images_oracle()
    sde = sf.VESDE(sigma_min=0.01, sigma_max=10.0)
    eps = _eps_at(sde, 0.002)
    prior_level = float(sde.noise_level(torch.tensor([1.0], dtype=torch.float64))[0])
    g = torch.Generator().manual_seed(2)
    n = 20_000
    prior = torch.randn(n, 64, generator=g, dtype=torch.float64) * prior_level
    k = torch.multinomial(gm.weights, n, replacement=True, generator=g)
    exact = gm.means[k] + math.sqrt(float(gm.stds[0]) ** 2 + prior_level ** 2) * torch.randn(
        n, 64, generator=g, dtype=torch.float64)
    tv = {}
    for label, x in (("prior", prior), ("exact", exact)):
        y = sf.Sampler(predictor="unipc", num_steps=49, eps=eps, schedule="karras").sample(
            gm.score_model(sde), sde, (n, 64), init=x, dtype=x.dtype).samples
        tv[label] = mixture_report(gm, y, 0.0).weight_tv
    # sampling noise of the TV at 20,000 samples over 10 modes is about 0.01
    assert tv["exact"] < 0.018 and tv["prior"] > 0.025, tv


@pytest.mark.parametrize(("cls", "expected"), [(DPMSolverPP2M, 1.8), (DPMSolverPP3M, 2.9), (IPNDM, 1.6), (DEIS, 3.0)])
def test_multistep_solvers_converge_at_their_order(cls, expected):
    """Global order on a smooth 1-D flow, steps 80 -> 160 on the log-sigma grid. Measured: DPM-Solver++(2M) 1.96,
    DPM-Solver++(3M) 3.27, DEIS-tAB3 3.65 (four nodes: order 4 asymptotically), iPNDM 1.79: its fixed weights
    assume equal steps in s, which the log-sigma grid is not: on it iPNDM converges at about second order
    (1.54, 1.79, 1.96 from 40 to 320 steps), with the smallest error of the multistep methods at 40 steps."""
    sde = sf.VESDE(sigma_min=0.01, sigma_max=50.0)
    gm = sf.GaussianMixture([[0.0], [3.0]], 0.5)
    x = torch.linspace(-100, 100, 41, dtype=torch.float64)[:, None]
    score = gm.score_model(sde)
    reference = _integrate(UniPC(order=3), x, sde, score, 0.05, 4000)
    errors = [float((_integrate(cls(), x, sde, score, 0.05, n) - reference).abs().max()) for n in (80, 160)]
    assert math.log2(errors[0] / errors[1]) >= expected, errors


def test_nfe_is_counted_exactly_and_a_corrector_may_follow_any_predictor(ring):
    gm, ref = ring
    sde = sf.VESDE(sigma_min=0.01, sigma_max=50.0)
    score = gm.score_model(sde)
    heun = sf.Sampler(predictor="edm_heun", num_steps=5, eps=_eps(sde)).sample(score, sde, (10, 2))
    assert heun.nfe == 2 * 4 + 1 + 1  # Heun steps, the last step Euler only, the final denoising
    for name in ODE_SOLVERS:
        res = sf.Sampler(predictor=name, corrector="langevin", num_steps=30, eps=_eps(sde), snr=0.1).sample(
            score, sde, (4000, 2), generator=torch.Generator().manual_seed(0))
        alone = sf.Sampler(predictor=name, num_steps=30, eps=_eps(sde)).sample(score, sde, (4, 2))
        assert res.nfe == alone.nfe + 30, name
        rep = mixture_report(gm, res.samples, ref)
        assert rep.weight_tv < 0.06 and abs(rep.logp_gap) < 0.5, (name, rep)


def test_one_predictor_instance_serves_many_calls():
    """The history lives in the state each call creates (init_state): reusing an instance gives the same samples."""
    gm = testing.ring_oracle()
    sde = sf.VESDE(sigma_min=0.01, sigma_max=50.0)
    predictor = DPMSolverPP3M()
    first = sf.Sampler(predictor=predictor, num_steps=8).sample(
        gm.score_model(sde), sde, (50, 2), generator=torch.Generator().manual_seed(4))
    sf.Sampler(predictor=predictor, num_steps=3).sample(gm.score_model(sde), sde, (7, 2))
    again = sf.Sampler(predictor=predictor, num_steps=8).sample(
        gm.score_model(sde), sde, (50, 2), generator=torch.Generator().manual_seed(4))
    assert torch.equal(first.samples, again.samples)


def test_ipndm_leads_at_five_evaluations(ring):
    """At NFE 5 on the Karras grid (Zhou et al. 2024's setting), iPNDM beats DPM-Solver++(2M) and UniPC.

    Measured (4,000 samples, seed 1): log-density gap iPNDM 0.23, UniPC 3.8, DPM-Solver++(2M) 9.0."""
    gm, ref = ring
    sde = sf.VESDE(sigma_min=0.01, sigma_max=50.0)
    gaps = {}
    for name in ("ipndm", "unipc", "dpmpp_2m"):
        res = sf.Sampler(predictor=name, num_steps=4, eps=_eps(sde)).sample(
            gm.score_model(sde), sde, (4000, 2), generator=torch.Generator().manual_seed(1))
        assert res.nfe == 5
        gaps[name] = mixture_report(gm, res.samples, ref).logp_gap
    assert gaps["ipndm"] < 1.0 and gaps["ipndm"] < min(gaps["unipc"], gaps["dpmpp_2m"]) / 3, gaps


@pytest.mark.parametrize(("name", "steps", "karras_gap"), [("dpmpp_2m", 9, 0.2), ("edm_heun", 5, 3.0),
                                                          ("dpmpp_3m", 9, 3.0)])
def test_a_tuned_grid_beats_karras_at_ten_evaluations(name, steps, karras_gap, ring, tmp_path):
    """tune_schedule on 256 warm-up draws; judged on 4,000 fresh samples by the exact mixture.

    Measured (seed 1): log-density gap, Karras -> tuned: dpmpp_2m 0.265 -> 0.076, edm_heun 4.83 -> -0.13,
    dpmpp_3m 7.09 -> 0.44."""
    gm, ref = ring
    sde = sf.VESDE(sigma_min=0.01, sigma_max=50.0)
    score = gm.score_model(sde)
    result = sf.tune_schedule(score, sde, (256, 2), steps, predictor=name, search=sf.GridSearch(eps=_eps(sde)),
                              generator=torch.Generator().manual_seed(5))
    grid = result.grids[steps]
    assert grid.error < grid.karras_error
    result.save(tmp_path)
    gaps = {}
    for schedule, options in (("karras", {}), ("tuned", {"path": str(tmp_path)})):
        res = sf.Sampler(predictor=name, num_steps=steps, eps=_eps(sde), schedule=schedule,
                         schedule_options=options).sample(score, sde, (4000, 2),
                                                          generator=torch.Generator().manual_seed(1))
        assert res.nfe <= 10
        gaps[schedule] = abs(mixture_report(gm, res.samples, ref).logp_gap)
    assert gaps["karras"] > karras_gap and gaps["tuned"] < min(0.6, gaps["karras"] / 3), gaps


def test_dpmpp_2m_sde_without_noise_is_dpmpp_2m_and_with_noise_reproduces_the_mixture(ring):
    from scoreflow_fast import DPMSolverPP2MSDE

    gm, reference_logp = ring
    sde = sf.VESDE(sigma_min=0.01, sigma_max=50.0)
    score = gm.score_model(sde)
    start = sde.prior_sampling((500, 2), generator=torch.Generator().manual_seed(3))

    def draw(predictor, steps, seed=0, n=500):
        schedule = {"schedule": "karras"} if n == 500 else {}
        sampler = sf.Sampler(predictor=predictor, num_steps=steps, **schedule)
        x = start if n == 500 else None
        return sampler.sample(score, sde, (n, 2), init=x, generator=torch.Generator().manual_seed(seed)).samples

    torch.testing.assert_close(draw(DPMSolverPP2MSDE(eta=0.0), 12), draw(DPMSolverPP2M(), 12), rtol=1e-5, atol=1e-5)
    assert not torch.equal(draw(DPMSolverPP2MSDE(), 12, seed=1), draw(DPMSolverPP2MSDE(), 12, seed=2))
    report = mixture_report(gm, draw("dpmpp_2m_sde", 199, n=N), reference_logp)  # its own log-sigma grid
    assert report.weight_tv < 0.04 and abs(report.spread_ratio - 1) < 0.03 and abs(report.logp_gap) < 0.05, report


def test_dpmpp_2m_sde_with_three_times_the_noise_on_the_uniform_t_grid_still_reproduces_the_mixture(ring):
    """``eta = 3`` (the setting the MNIST benchmark recommends at NFE 10) samples the same marginals: more noise
    per step, replaced by a stronger pull to the denoiser, converges to the exact mixture like ``eta = 1``."""
    gm, reference_logp = ring
    sde = sf.VESDE(sigma_min=0.01, sigma_max=50.0)
    sampler = sf.Sampler(predictor="dpmpp_2m_sde", num_steps=199, schedule="uniform_t", predictor_options={"eta": 3})
    samples = sampler.sample(gm.score_model(sde), sde, (N, 2), generator=torch.Generator().manual_seed(4)).samples
    report = mixture_report(gm, samples, reference_logp)
    assert report.weight_tv < 0.04 and abs(report.spread_ratio - 1) < 0.03 and abs(report.logp_gap) < 0.05, report


def _kdiffusion_euler(denoiser, x, sigmas, eta=0.0, generator=None):
    """k-diffusion's ``sample_euler`` (and, with ``eta``, ``sample_euler_ancestral``), transcribed: the loop a user
    runs on ``sf.to_denoiser``; ends with the denoiser at the last level, as scoreflow's samplers do."""
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        d = denoiser(x, torch.tensor(s, dtype=torch.float64))
        s_up = min(s_next, eta * (s_next**2 * (s**2 - s_next**2) / s**2) ** 0.5)
        s_down = (s_next**2 - s_up**2) ** 0.5
        x = x + (x - d) / s * (s_down - s)
        if s_up:
            x = x + torch.randn(x.shape, generator=generator, dtype=x.dtype) * s_up
    return denoiser(x, torch.tensor(sigmas[-1], dtype=torch.float64))


@pytest.mark.parametrize("sde_name", ["ve", "vp"])
def test_ddim_is_kdiffusions_euler_on_the_denoiser_of_the_same_model(sde_name, ring):
    gm, _ = ring
    sde = sf.VESDE() if sde_name == "ve" else _vp()
    score = gm.score_model(sde)
    sampler = sf.Sampler(predictor="ddim", num_steps=12, schedule="karras", eps=_eps(sde))
    start = torch.randn(300, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    denoiser = sf.to_denoiser(score, sde, eps=_eps(sde))
    grid = sf.create("schedule", "karras").times(sde, 12, _eps(sde)).to(torch.float64)
    sigmas = sde.noise_level(grid).tolist()
    assert sigmas[0] == pytest.approx(denoiser.sigma_max) and sigmas[-1] == pytest.approx(denoiser.sigma_min)
    alpha_t = float(sde.marginal_scale(grid[:1])[0])
    ours = sampler.sample(score, sde, (300, 2), init=start * alpha_t * sigmas[0], dtype=torch.float64).samples
    theirs = _kdiffusion_euler(denoiser, start * sigmas[0], sigmas)
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)


def test_stochastic_ddim_reproduces_the_mixture(ring):
    gm, reference_logp = ring
    sde = sf.VESDE(sigma_min=0.01, sigma_max=50.0)
    sampler = sf.Sampler(predictor="ddim", num_steps=300, predictor_options={"eta": 1.0}, eps=_eps(sde))
    samples = sampler.sample(gm.score_model(sde), sde, (N, 2), generator=torch.Generator().manual_seed(6)).samples
    report = mixture_report(gm, samples, reference_logp)
    assert report.weight_tv < 0.04 and abs(report.spread_ratio - 1) < 0.03 and abs(report.logp_gap) < 0.06, report
