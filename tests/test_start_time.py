"""Sampling that starts below T: truncated starts from the prior, image-to-image (SDEdit), grids laid from a start."""

from __future__ import annotations

import math

import pytest
import torch

import scoreflow as sf
from scoreflow.errors import DroppedOptionsError
from scoreflow.testing import assert_mixture_close, ring_oracle

N = 4000


def _time_at(sde, level: float) -> float:
    return float(sde.time_at_noise_level(torch.tensor([level], dtype=torch.float64))[0])


def test_starting_at_T_is_plain_sampling(ve, oracle):
    score = oracle.score_model(ve)
    plain = sf.Sampler(predictor="euler", num_steps=20).sample(score, ve, (50, 2),
                                                               generator=torch.Generator().manual_seed(3))
    at_t = sf.Sampler(predictor="euler", num_steps=20, start_time=ve.T).sample(
        score, ve, (50, 2), generator=torch.Generator().manual_seed(3))
    assert torch.equal(plain.samples, at_t.samples)


@pytest.mark.parametrize("schedule", ["uniform_t", "log_sigma", "karras"])
def test_a_schedule_lays_its_grid_from_the_start(ve, schedule):
    start = _time_at(ve, 5.0)
    grid = sf.create("schedule", schedule)(ve, 8, 1e-3, start=start)
    assert float(grid[0]) == start and float(grid[-1]) == 1e-3 and len(grid) == 9
    full = sf.create("schedule", schedule)(ve, 8, 1e-3)
    assert float(full[0]) == ve.T
    if schedule != "uniform_t":  # the same rule over the shorter range of noise levels
        levels = ve.noise_level(grid)
        assert math.isclose(float(levels[0]), 5.0, rel_tol=1e-9)
        assert torch.all(levels[1:] < levels[:-1])


def test_a_truncated_start_where_noise_swamps_the_data_reproduces_the_mixture(ve, oracle, oracle_logp):
    """From sigma = 40 the ring (radius 4) is 1 % of the variance: starting there from N(0, std^2) loses nothing
    the checks can see, with a tenth fewer steps' worth of range."""
    sampler = sf.Sampler(predictor="euler", num_steps=500, start_time=_time_at(ve, 40.0))
    res = sampler.sample(oracle.score_model(ve), ve, (N, 2), generator=torch.Generator().manual_seed(0))
    assert_mixture_close(oracle, res.samples, reference_logp=oracle_logp, label="start at sigma 40")


def test_a_truncated_start_inside_the_data_is_caught(ve, oracle, oracle_logp):
    """The check can fail: at sigma = 1 the prior N(0, 1) is far from the noised ring."""
    sampler = sf.Sampler(predictor="euler", num_steps=500, start_time=_time_at(ve, 1.0))
    res = sampler.sample(oracle.score_model(ve), ve, (N, 2), generator=torch.Generator().manual_seed(0))
    with pytest.raises(AssertionError, match="do not match"):
        assert_mixture_close(oracle, res.samples, reference_logp=oracle_logp)


def test_an_explicit_grid_may_start_below_T(ve, oracle):
    times = torch.linspace(0.6, 1e-3, 4, dtype=torch.float64)
    score = oracle.score_model(ve)
    a = sf.Sampler(predictor="euler", times=times).sample(score, ve, (20, 2),
                                                          generator=torch.Generator().manual_seed(1))
    b = sf.Sampler(predictor="euler", num_steps=3, start_time=0.6, schedule="uniform_t", eps=1e-3).sample(
        score, ve, (20, 2), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a.samples, b.samples)


def test_img2img_of_true_samples_gives_the_data_distribution(ve, oracle, oracle_logp):
    """Noising data to any t and reversing with the exact score gives the data back in distribution."""
    images, _ = oracle.sample(N, generator=torch.Generator().manual_seed(5))
    sampler = sf.Sampler(predictor="euler", num_steps=300, start_time=_time_at(ve, 1.0))
    res = sampler.sample(oracle.score_model(ve), ve, (N, 2), images=images,
                         generator=torch.Generator().manual_seed(6))
    assert_mixture_close(oracle, res.samples, reference_logp=oracle_logp, label="SDEdit of true samples")


def test_img2img_keeps_the_images_at_low_noise_and_forgets_them_at_T(ve, oracle):
    """A start at sigma = 0.1 keeps each point in its own mode; a start at T draws the modes afresh."""
    one_mode = oracle.means[0].expand(500, 2).clone()
    score = oracle.score_model(ve)
    low = sf.Sampler(predictor="euler", num_steps=100, start_time=_time_at(ve, 0.1)).sample(
        score, ve, (500, 2), images=one_mode, generator=torch.Generator().manual_seed(2)).samples
    assert (oracle.assign(low) == 0).float().mean() > 0.99
    high = sf.Sampler(predictor="euler", num_steps=100).sample(
        score, ve, (500, 2), images=one_mode, generator=torch.Generator().manual_seed(2)).samples
    assert (oracle.assign(high) == 0).float().mean() < 0.2  # mode 0 holds 1/20 of the mass


@pytest.mark.parametrize("solver", ["torchsde"])
def test_a_whole_trajectory_solver_starts_where_asked(ve, oracle, solver):
    one_mode = oracle.means[0].expand(200, 2).clone()
    sampler = sf.Sampler(predictor=solver, num_steps=100, start_time=_time_at(ve, 0.1))
    low = sampler.sample(oracle.score_model(ve), ve, (200, 2), images=one_mode,
                         generator=torch.Generator().manual_seed(2)).samples
    assert (oracle.assign(low) == 0).float().mean() > 0.99


def test_conditions_compose_with_a_later_start(ve, oracle):
    """Guided SDEdit: inpainting from a start below T keeps the known entry."""
    known = oracle.means[3].expand(100, 2).clone()
    mask = torch.tensor([1.0, 0.0]).expand(100, 2)
    sampler = sf.Sampler(predictor="euler", num_steps=100, start_time=_time_at(ve, 2.0), condition="inpaint",
                         condition_options={"known": known, "mask": mask})
    out = sampler.sample(oracle.score_model(ve), ve, (100, 2), images=known,
                         generator=torch.Generator().manual_seed(0)).samples
    torch.testing.assert_close(out[:, 0], known[:, 0], atol=0.05, rtol=0)


@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda: sf.Sampler(start_time=0.0), ValueError, "start_time must be a positive"),
    (lambda: sf.Sampler(start_time=True), ValueError, "start_time must be a positive"),
    (lambda: sf.Sampler(start_time=float("nan")), ValueError, "start_time"),
    (lambda: sf.Sampler(start_time=0.5, times=torch.tensor([0.5, 0.1])), DroppedOptionsError, "start_time"),
])
def test_bad_start_times_are_refused_at_construction(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(("start", "match"), [(1.5, r"\(eps, T\] = \(0.001, 1\], got 1.5"),
                                              (1e-3, r"got 0.001"), (1e-4, "got 0.0001")])
def test_start_times_outside_eps_to_T_are_refused_before_sampling(ve, oracle, start, match):
    for solver in ("euler", "torchsde"):
        with pytest.raises(ValueError, match=match):
            sf.Sampler(predictor=solver, num_steps=5, start_time=start).check(ve)


def test_bad_images_are_refused(ve, oracle):
    sampler = sf.Sampler(predictor="euler", num_steps=5, start_time=0.5)
    score = oracle.score_model(ve)
    with pytest.raises(ValueError, match=r"images has shape \(3, 2\), expected the sample shape \(4, 2\)"):
        sampler.sample(score, ve, (4, 2), images=torch.zeros(3, 2))
    with pytest.raises(TypeError, match="images must be a floating-point tensor"):
        sampler.sample(score, ve, (4, 2), images=torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="images"):
        sampler.sample(score, ve, (4, 2), images=torch.full((4, 2), float("nan")))
    with pytest.raises(ValueError, match="not both"):
        sampler.sample(score, ve, (4, 2), images=torch.zeros(4, 2), init=torch.zeros(4, 2))


def test_img2img_from_T_is_plain_sampling_in_distribution(ve, oracle, oracle_logp):
    """Images noised to T (sigma 50) are forgotten: points all in one mode come back as the whole mixture."""
    one_mode = oracle.means[0].expand(N, 2).clone().float()
    res = sf.Sampler(predictor="euler", num_steps=500, start_time=ve.T).sample(
        oracle.score_model(ve), ve, (N, 2), images=one_mode, generator=torch.Generator().manual_seed(4))
    assert_mixture_close(oracle, res.samples, reference_logp=oracle_logp, label="SDEdit from T")


def test_sdedit_passes_are_the_sampler_run_again_from_each_result():
    """sf.sdedit with K generators is K image-to-image runs, each from the last one's result."""
    gm, ve = ring_oracle(), sf.VESDE()
    images = gm.sample(6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)[0]
    sampler = sf.Sampler(num_steps=20, start_time=0.3)
    res = sf.sdedit(sampler, gm.score_model(ve), ve, images,
                    generators=[torch.Generator().manual_seed(k) for k in (1, 2)])
    x = images
    for k in (1, 2):
        x = sampler.sample(gm.score_model(ve), ve, images.shape, images=x, dtype=torch.float64,
                           generator=torch.Generator().manual_seed(k)).samples
    assert len(res.passes) == 2 and torch.equal(res.samples, x) and res.nfe == 2 * 20
    assert not torch.equal(res.passes[0], res.passes[1])
    with pytest.raises(ValueError, match="one generator per pass"):
        sf.sdedit(sampler, gm.score_model(ve), ve, images, generators=[])
    with pytest.raises(TypeError, match="starts from images"):
        sf.sdedit(sf.ProbabilityFlowSampler(), gm.score_model(ve), ve, images, generators=[None])
