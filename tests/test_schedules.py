"""Time schedules as components: their grids, the Sampler's use of them, and a plugin SDE they make samplable."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import scoreflow as sf
from scoreflow import testing
from scoreflow.sampling.schedules import Schedule, check_times

BUILT_IN = ("uniform_t", "log_sigma", "karras", "uniform_sigma")


class LinearSigmaVE(sf.SDE):
    """A VE SDE whose noise level is linear in time, written as a plugin author would.

    ``sigma(t) = sigma_min + t (sigma_max - sigma_min)``, ``dx = sqrt(d sigma^2 / dt) dw``, so
    ``std(t)^2 = sigma(t)^2 - sigma_min^2``. Uniform steps in ``t`` spend almost all of them at high
    noise; its default schedule is uniform in the log of the noise level.
    """

    capabilities = frozenset({"linear_marginals", "variance_exploding"})
    default_schedule = "log_sigma"
    default_eps = 2e-6  # noise level 0.0014 there, as the built-in VE's at t = 1e-3 (0.0013)

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0) -> None:
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def _sigma(self, t):
        return self.sigma_min + t * (self.sigma_max - self.sigma_min)

    def sde(self, x, t):
        g = torch.sqrt(2 * self._sigma(t) * (self.sigma_max - self.sigma_min))
        return torch.zeros_like(x), g

    def marginal_prob(self, x0, t):
        s = self._sigma(t)
        return x0, torch.sqrt(s**2 - self.sigma_min**2)

    def prior_sampling(self, shape, *, generator=None, device=None, dtype=None):
        std = math.sqrt(self.sigma_max**2 - self.sigma_min**2)
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype) * std

    def prior_logp(self, z):
        return self._gaussian_prior_logp(z, math.sqrt(self.sigma_max**2 - self.sigma_min**2))


def test_built_in_schedules_are_registered():
    assert set(BUILT_IN) <= set(sf.available("schedule"))
    assert isinstance(sf.create("schedule", "karras", rho=5), Schedule)


@given(name=st.sampled_from(BUILT_IN), num_steps=st.integers(1, 400), eps=st.floats(1e-5, 0.5),
       sigma_max=st.floats(1.0, 400.0), linear=st.booleans())
def test_grids_run_from_T_to_eps_and_decrease(name, num_steps, eps, sigma_max, linear):
    sde = LinearSigmaVE(0.01, sigma_max) if linear else sf.VESDE(sigma_min=0.01, sigma_max=sigma_max)
    times = sf.create("schedule", name)(sde, num_steps, eps)
    assert times.dtype == torch.float64 and times.shape == (num_steps + 1,)
    assert float(times[0]) == sde.T and float(times[-1]) == eps
    assert (times[1:] < times[:-1]).all()


@pytest.mark.parametrize("sde", [sf.VESDE(), LinearSigmaVE(), sf.VESDE.tutorial()], ids=repr)
def test_each_schedule_is_uniform_in_its_own_variable(sde):
    n, eps = 40, 1e-3
    level = lambda t: sde.noise_level(t)  # noqa: E731
    t = sf.create("schedule", "uniform_t")(sde, n, eps)
    torch.testing.assert_close(t, torch.linspace(1.0, eps, n + 1, dtype=torch.float64))
    log_s = torch.log(level(sf.create("schedule", "log_sigma")(sde, n, eps)))
    torch.testing.assert_close(log_s.diff(), torch.full((n,), float(log_s.diff().mean()), dtype=torch.float64),
                               rtol=1e-6, atol=1e-9)
    s = level(sf.create("schedule", "uniform_sigma")(sde, n, eps))
    torch.testing.assert_close(s.diff(), torch.full((n,), float(s.diff().mean()), dtype=torch.float64),
                               rtol=1e-6, atol=1e-9)
    rho = level(sf.create("schedule", "karras", rho=7)(sde, n, eps)) ** (1 / 7)
    torch.testing.assert_close(rho.diff(), torch.full((n,), float(rho.diff().mean()), dtype=torch.float64),
                               rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(sf.create("schedule", "karras", rho=1)(sde, n, eps),
                               sf.create("schedule", "uniform_sigma")(sde, n, eps))


def test_sampler_uses_the_sdes_default_schedule_unless_told_otherwise():
    linear, ve = LinearSigmaVE(), sf.VESDE()
    sampler = sf.Sampler(num_steps=10)
    torch.testing.assert_close(sampler.grid(linear), sf.create("schedule", "log_sigma")(linear, 10, 2e-6))
    torch.testing.assert_close(sampler.grid(ve), torch.linspace(1, 1e-3, 11, dtype=torch.float64))
    karras = sf.Sampler(num_steps=10, schedule="karras", schedule_options={"rho": 3})
    torch.testing.assert_close(karras.grid(linear), sf.create("schedule", "karras", rho=3)(linear, 10, 2e-6))
    explicit = sf.Sampler(times=torch.tensor([1.0, 0.5, 0.1, 0.01], dtype=torch.float64))
    assert explicit.num_steps == 3 and explicit.eps == 0.01


def test_explicit_grid_and_schedule_give_the_same_samples(oracle, ve):
    score = oracle.score_model(ve)
    grid = sf.create("schedule", "karras")(ve, 30, 1e-3)
    a = sf.Sampler(predictor="euler", schedule="karras", num_steps=30).sample(
        score, ve, (64, 2), generator=torch.Generator().manual_seed(0))
    b = sf.Sampler(predictor="euler", times=grid).sample(score, ve, (64, 2), generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.samples, b.samples) and a.nfe == b.nfe == 30


def test_uniform_t_keeps_todays_samples(oracle, ve):
    """The default grid is the tutorial's linspace, so samples are those of an explicit linspace."""
    score = oracle.score_model(ve)
    grid = torch.linspace(1.0, 1e-3, 21, dtype=torch.float64)
    a = sf.Sampler(predictor="euler", corrector="langevin", num_steps=20).sample(
        score, ve, (32, 2), generator=torch.Generator().manual_seed(1))
    b = sf.Sampler(predictor="euler", corrector="langevin", times=grid).sample(
        score, ve, (32, 2), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.samples, b.samples)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"times": [1.0, 0.5, 0.5]}, ValueError, "decrease strictly"),
    ({"times": [1.0, 0.5, 0.0]}, ValueError, "last time must be positive"),
    ({"times": [1.0, float("nan")]}, ValueError, "finite"),
    ({"times": [[1.0, 0.5]]}, ValueError, "1-D"),
    ({"times": torch.tensor([1.0, 0.1]), "schedule": "karras"}, sf.DroppedOptionsError, "not both"),
    ({"schedule": "karras", "schedule_options": {"rho": -1}}, ValueError, "rho"),
    ({"schedule": "nope"}, sf.UnknownComponentError, "Unknown schedule 'nope'"),
    ({"schedule_options": {"rho": 3}}, sf.DroppedOptionsError, "without a schedule"),
    ({"schedule": sf.create("schedule", "karras"), "schedule_options": {"rho": 3}}, sf.DroppedOptionsError, "rho"),
    ({"corrector": sf.Langevin(), "snr": 0.3}, sf.DroppedOptionsError, "snr"),
    ({"corrector": sf.Langevin(), "n_steps": 2}, sf.DroppedOptionsError, "n_steps"),
    ({"predictor": sf.EulerMaruyama(), "predictor_options": {"x": 1}}, sf.DroppedOptionsError, "predictor_options"),
    ({"predictor": "torchsde", "schedule": "karras"}, sf.DroppedOptionsError, "whole trajectory"),
])
def test_bad_schedules_and_dropped_options_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        sf.Sampler(**kwargs)


def test_explicit_grid_must_not_start_beyond_T(oracle, ve):
    """A grid below T is a later start (tests/test_start_time.py); beyond T there is no prior to draw."""
    sampler = sf.Sampler(times=[1.5, 0.1])
    with pytest.raises(ValueError, match="beyond the SDE's end time T = 1"):
        sampler.sample(oracle.score_model(ve), ve, (4, 2))
    assert sf.Sampler(times=[0.5, 0.1]).start_for(ve) == 0.5


def test_check_times_names_the_offending_point():
    with pytest.raises(ValueError, match=r"times\[2\] = 0.7"):
        check_times([1.0, 0.5, 0.7])


def test_linear_sigma_plugin_sde_conforms():
    testing.check_sde(LinearSigmaVE())


@pytest.mark.parametrize("predictor", ["euler", "reverse_diffusion"])
@pytest.mark.parametrize("corrector", [None, "langevin"])
def test_every_built_in_pair_samples_the_linear_sigma_sde_on_log_sigma(oracle, predictor, corrector):
    """The plugin SDE is sampled as well as the built-in VE: same oracle checks, 250 steps."""
    sde = LinearSigmaVE()
    sampler = sf.Sampler(predictor=predictor, corrector=corrector, num_steps=250, schedule="log_sigma")
    res = sampler.sample(oracle.score_model(sde), sde, (4000, 2), generator=torch.Generator().manual_seed(7))
    testing.assert_mixture_close(oracle, res.samples, label=f"{predictor}+{corrector} on LinearSigmaVE")


def test_uniform_t_fails_the_linear_sigma_sde(oracle):
    """Why schedules matter: on uniform-in-t steps the same sampler misses the mixture badly."""
    sde = LinearSigmaVE()
    res = sf.Sampler(predictor="euler", num_steps=250, schedule="uniform_t").sample(
        oracle.score_model(sde), sde, (4000, 2), generator=torch.Generator().manual_seed(7))
    with pytest.raises(AssertionError, match="spread ratio"):
        testing.assert_mixture_close(oracle, res.samples)


@pytest.mark.parametrize("component", ["euler", "reverse_diffusion", "langevin"])
def test_conformance_kit_passes_the_linear_sigma_sde_on_its_default_schedule(component):
    sde = LinearSigmaVE()
    if component == "langevin":
        testing.check_corrector(sf.create("corrector", component), sde)
    else:
        testing.check_predictor(sf.create("predictor", component), sde)


def test_conformance_failure_names_component_sde_steps_and_schedule():
    sde = LinearSigmaVE()
    sde.default_schedule = "uniform_t"  # the grid that fails it
    with pytest.raises(AssertionError, match=r"EulerMaruyama\(\) on .*LinearSigmaVE.* \(40 steps, schedule "
                                             r"UniformT, eps 2e-06\)"):
        testing.check_predictor(sf.create("predictor", "euler"), sde, num_steps=40)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from scoreflow.training import TrainConfig, Trainer

    out = tmp_path_factory.mktemp("run")
    Trainer(TrainConfig(dataset="digits", steps=2, batch_size=8, model_options={"channels": [8, 16, 16, 16],
                                                                               "embed_dim": 16}),
            out, progress=False).run()
    return out


def test_cli_samples_on_a_chosen_schedule(tiny_run, tmp_path, capsys):
    from scoreflow.cli import main

    code = main(["sample", "--checkpoint", str(tiny_run), "--num-samples", "4", "--num-steps", "5", "--schedule",
                 "karras", "--schedule-options", '{"rho": 5}', "--out", str(tmp_path), "--no-progress"])
    assert code == 0 and (tmp_path / "samples.png").is_file()
    assert "NFE 10" in capsys.readouterr().out  # euler + langevin: two evaluations per step


@pytest.mark.parametrize("argv, match", [
    (["--schedule", "nope"], "Unknown schedule 'nope'"),
    (["--schedule", "karras", "--schedule-options", '{"rho": 0}'], "rho"),
    (["--ode-solver", "dopri5", "--schedule", "karras"], "apply to predictor-corrector sampling"),
])
def test_cli_refuses_bad_schedules_before_sampling(tiny_run, tmp_path, capsys, argv, match):
    from scoreflow.cli import main

    code = main(["sample", "--checkpoint", str(tiny_run), "--out", str(tmp_path / "s"), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("scoreflow: error:") and match in err
    assert not (tmp_path / "s").exists()


def test_log_sigma_rho_is_k_diffusions_polyexponential_ramp():
    sde = sf.VESDE(sigma_min=0.01, sigma_max=50.0)
    plain = sf.create("schedule", "log_sigma")(sde, 10, 1e-3)
    torch.testing.assert_close(sf.create("schedule", "log_sigma", rho=1.0)(sde, 10, 1e-3), plain, rtol=0, atol=0)
    grid = sf.create("schedule", "polyexponential", rho=2.0)(sde, 10, 1e-3)
    s_max, s_min = (float(v) for v in sde.noise_level(torch.tensor([1.0, 1e-3], dtype=torch.float64)))
    ramp = torch.linspace(1, 0, 11, dtype=torch.float64) ** 2
    expected = torch.exp(math.log(s_min) + ramp * (math.log(s_max) - math.log(s_min)))
    torch.testing.assert_close(sde.noise_level(grid), expected, rtol=1e-9, atol=0)
    assert grid[0] == 1.0 and grid[-1] == 1e-3
    with pytest.raises(ValueError, match="rho"):
        sf.create("schedule", "log_sigma", rho=0.0)
