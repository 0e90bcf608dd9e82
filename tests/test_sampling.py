"""Samplers against the exact Gaussian-mixture oracle, and the Sampler's contract."""

from __future__ import annotations

import pytest
import torch

import scoreflow as sf
from scoreflow.testing import assert_mixture_close

N = 4000
PREDICTORS = ["euler", "reverse_diffusion", "none"]
CORRECTORS = [None, "langevin"]


def _pairs():
    for p in PREDICTORS:
        for c in CORRECTORS:
            if p == "none" and c is None:
                continue  # the identity map: returns the prior, by definition
            yield p, c


@pytest.mark.parametrize(("predictor", "corrector"), list(_pairs()))
def test_every_pc_pair_reproduces_the_mixture(predictor, corrector, ve, oracle, oracle_logp):
    # Corrector-only sampling (annealed Langevin) needs more MCMC steps per level.
    n_steps = 2 if predictor == "none" else 1
    sampler = sf.Sampler(predictor=predictor, corrector=corrector, num_steps=500, n_steps=n_steps)
    res = sampler.sample(oracle.score_model(ve), ve, (N, 2), generator=torch.Generator().manual_seed(0))
    per_step = (predictor != "none") + (n_steps if corrector else 0)
    assert res.nfe == 500 * per_step
    assert_mixture_close(oracle, res.samples, reference_logp=oracle_logp, label=f"{predictor}+{corrector}")


def test_the_check_can_fail(ve, oracle, oracle_logp):
    """A wrong score (half the true one) or too few steps must be caught."""
    exact = oracle.score_model(ve)
    wrong = sf.Sampler(predictor="euler", num_steps=500).sample(
        lambda x, t: 0.5 * exact(x, t), ve, (N, 2), generator=torch.Generator().manual_seed(0))
    with pytest.raises(AssertionError, match="do not match"):
        assert_mixture_close(oracle, wrong.samples, reference_logp=oracle_logp)
    coarse = sf.Sampler(predictor="euler", num_steps=10).sample(exact, ve, (N, 2),
                                                                 generator=torch.Generator().manual_seed(0))
    with pytest.raises(AssertionError):
        assert_mixture_close(oracle, coarse.samples, reference_logp=oracle_logp)


def test_same_generator_same_samples(ve, oracle):
    sampler = sf.Sampler(predictor="euler", corrector="langevin", num_steps=20)
    a, b, c = (sampler.sample(oracle.score_model(ve), ve, (16, 2), generator=torch.Generator().manual_seed(s))
               for s in (5, 5, 6))
    assert torch.equal(a.samples, b.samples)
    assert not torch.equal(a.samples, c.samples)


def test_any_rank_and_callback(ve):
    seen = []
    score = lambda x, t: -x / (1 + ve.marginal_std(t) ** 2).reshape(-1, 1, 1, 1)  # noqa: E731
    res = sf.Sampler(predictor="reverse_diffusion", corrector="langevin", num_steps=7, snr=0.1).sample(
        score, ve, (3, 1, 5, 5), callback=seen.append, generator=torch.Generator().manual_seed(0))
    assert res.samples.shape == (3, 1, 5, 5) and res.samples.dtype == torch.float32
    assert [d["i"] for d in seen] == list(range(7))
    assert set(seen[0]) == {"i", "t", "x", "x_mean", "nfe"} and seen[-1]["nfe"] == res.nfe == 14
    assert float(seen[-1]["t"]) == pytest.approx(1e-3)


def test_denoise_returns_the_last_mean(ve, oracle):
    kwargs = dict(predictor="euler", num_steps=5)
    noisy = sf.Sampler(denoise=False, **kwargs).sample(oracle.score_model(ve), ve, (8, 2),
                                                       generator=torch.Generator().manual_seed(0))
    clean = sf.Sampler(**kwargs).sample(oracle.score_model(ve), ve, (8, 2), generator=torch.Generator().manual_seed(0))
    assert not torch.equal(noisy.samples, clean.samples)


def test_eps_is_checked_against_the_sdes_end_time(ve):
    """One eps rule: positive at construction, below the SDE's T when the SDE is known (an SDE with T = 2 takes 1.5)."""
    with pytest.raises(ValueError, match=r"eps must lie in \(0, T=1.0\), got 1.5"):
        sf.Sampler(eps=1.5).check(ve)

    class LongVE(sf.VESDE):
        @property
        def T(self) -> float:  # noqa: N802
            return 2.0

    sf.Sampler(eps=1.5, num_steps=3).check(LongVE(sigma_min=0.01, sigma_max=10.0))


def test_unknown_names_fail_at_construction():
    with pytest.raises(sf.UnknownComponentError, match=r"Unknown predictor 'eulr'.*Did you mean 'euler'"):
        sf.Sampler(predictor="eulr")
    with pytest.raises(sf.UnknownComponentError, match=r"Unknown corrector 'langvin'.*langevin"):
        sf.Sampler(corrector="langvin")


@pytest.mark.parametrize("kwargs", [dict(num_steps=0), dict(eps=0.0), dict(eps=float("inf")), dict(snr=-1),
                                    dict(n_steps=-1)])
def test_bad_hyperparameters(kwargs):
    with pytest.raises((ValueError, TypeError)):
        sf.Sampler(**kwargs)


def test_bad_shapes_and_models(ve):
    sampler = sf.Sampler(num_steps=2)
    with pytest.raises(ValueError, match="shape must be"):
        sampler.sample(lambda x, t: x, ve, (4,))
    with pytest.raises(ValueError, match=r"score model returned \(4, 3\), expected a tensor of shape \(4, 2\)"):
        sampler.sample(lambda x, t: torch.zeros(4, 3), ve, (4, 2))
    with pytest.raises(TypeError, match="must be callable"):
        sampler.sample("not a model", ve, (4, 2))
    with pytest.raises(ValueError, match="non-finite"):
        sampler.sample(lambda x, t: x * float("nan"), ve, (4, 2))


def test_requirements_are_checked(ve):
    class NeedsBetas(sf.EulerMaruyama):
        requires = frozenset({"discrete_betas"})

    with pytest.raises(sf.IncompatibleComponentsError, match=r"requires SDE capabilities \['discrete_betas'\]"):
        sf.Sampler(predictor=NeedsBetas(), num_steps=2).sample(lambda x, t: x, ve, (2, 2))


def test_trajectory_solver_rejects_a_corrector():
    with pytest.raises(sf.IncompatibleComponentsError, match="corrector=None"):
        sf.Sampler(predictor="torchsde", corrector="langevin")


def test_noise_parametrised_networks_are_converted(ve):
    class NoiseNet(sf.ScoreNet):
        parametrization = "noise"

        def forward(self, x, t):
            return torch.ones_like(x)

    x = torch.zeros(2, 3)
    t = torch.full((2,), 0.5)
    score = sf.make_score_fn(NoiseNet(), ve)(x, t)
    torch.testing.assert_close(score, -torch.ones_like(x) / ve.marginal_std(t)[:, None])


def test_samples_of_another_dtype_than_the_weights_are_refused_with_the_fix():
    import pytest as _pytest

    sde = sf.VESDE()
    net = sf.MLP(sde, dim=2, hidden=8, depth=1)
    with _pytest.raises(ValueError, match=r"weights are torch.float32 but the samples are torch.bfloat16: cast the model"):
        sf.Sampler(num_steps=2).sample(net, sde, (2, 2), dtype=torch.bfloat16)
    res = sf.Sampler(num_steps=2).sample(net.to(torch.bfloat16), sde, (2, 2), dtype=torch.bfloat16)
    assert res.samples.dtype == torch.bfloat16


def test_sampler_shapes_share_one_protocol_and_the_factory_picks_by_component():
    pc, whole = sf.Sampler(predictor="euler", corrector="langevin"), sf.Sampler(predictor="torchsde")
    flow = sf.ProbabilityFlowSampler()
    assert type(pc) is sf.PredictorCorrectorSampler and type(whole) is sf.TrajectorySolverSampler
    assert all(isinstance(s, sf.SamplerProtocol) for s in (pc, whole, flow))
    assert type(sf.Sampler(predictor=sf.TorchsdeSolver())) is sf.TrajectorySolverSampler
    with pytest.raises(sf.DroppedOptionsError, match="schedule"):
        sf.Sampler(predictor="torchsde", schedule="karras")
    with pytest.raises(sf.DroppedOptionsError, match="denoise"):
        sf.Sampler(predictor="torchsde", denoise=False)
    with pytest.raises(sf.IncompatibleComponentsError, match="corrector"):
        sf.Sampler(predictor="torchsde", corrector="langevin", snr=0.2)
    with pytest.raises(sf.UnknownComponentError, match="trajectory_solver"):
        sf.Sampler(predictor="eulr")


def test_default_samplers_and_tuning_never_ask_the_plugin_host(ve, oracle, monkeypatch):
    """Names are resolved at the edges: the default sampler's predictor, corrector, schedule and condition are
    built-in instances, and tuning with a built predictor asks nobody for names (same samples and grids)."""
    import scoreflow.plugins

    pytest.importorskip("scoreflow_fast")
    score, vp = oracle.score_model(ve), sf.create("sde", "vp")
    ipndm = sf.create("predictor", "ipndm")
    search = sf.GridSearch(eps=1e-3, fine_steps=16, sweeps=1, rtol=1e-6, atol=1e-6)

    def draw():
        g = torch.Generator().manual_seed(0)
        return [sf.Sampler(num_steps=20).sample(score, ve, (4, 2), generator=g).samples,
                sf.Sampler(num_steps=20, predictor=ipndm).sample(oracle.score_model(vp), vp, (4, 2), generator=g).samples,
                sf.tune_schedule(score, ve, (8, 2), 3, predictor=ipndm, search=search, generator=g).grids[3].times]

    expected = draw()

    def no_host(*args, **kwargs):
        raise AssertionError("asked the plugin host")

    monkeypatch.setattr(scoreflow.plugins, "get_host", no_host)
    for got, want in zip(draw(), expected):
        assert torch.equal(torch.as_tensor(got), torch.as_tensor(want))
    with pytest.raises(AssertionError, match="plugin host"):  # a name is resolved through the host
        sf.Sampler(predictor="euler")
