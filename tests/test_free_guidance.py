"""Classifier-free guidance judged against the exact class-conditional scores of a Gaussian mixture."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import scoreflow as sf
from scoreflow.models.embedding import NO_CLASS
from scoreflow.sampling.free_guidance import ClassifierFreeGuidance, GuidanceInterval
from scoreflow.testing import assert_mixture_close, ring_oracle

SDE = sf.VESDE(sigma_min=0.01, sigma_max=10.0)
TWO_CLASSES = [0, 1, 0, 1, 0, 1, 0, 1]  # alternate ring modes: class 0 and class 1 interleave


def _reference(gm: sf.GaussianMixture) -> float:
    return gm.entropy_estimate(200_000, generator=torch.Generator().manual_seed(1234))


def _guided_score(gm, scale, label, groups=None):
    model = gm.conditional_score_model(SDE, groups)
    return ClassifierFreeGuidance(label, scale=scale).guide(sf.make_score_fn(model, SDE), SDE)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.02, 0.98), st.floats(-6, 6), st.floats(-6, 6), st.integers(0, 7))
def test_guided_score_is_exact_conditional_at_zero_and_unconditional_at_minus_one(t, a, b, label):
    gm = ring_oracle()
    x = torch.tensor([[a, b], [b, a]], dtype=torch.float64)
    tt = torch.full((2,), t, dtype=torch.float64)
    conditional = gm.given_label(label).score(x, tt, SDE)
    unconditional = gm.score(x, tt, SDE)
    for scale, expected in ((0.0, conditional), (-1.0, unconditional)):
        # constants take their one-call short cut; a schedule w(t) goes through the stacked two-label call
        for w in (scale, lambda t, s=scale: torch.full_like(t, s)):
            got = _guided_score(gm, w, label)(x, tt)
            assert torch.allclose(got, expected, atol=1e-6, rtol=0), (scale, w)


def test_guided_score_is_the_linear_combination_for_every_scale():
    gm = ring_oracle()
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    t = torch.rand(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.9 + 0.05
    c, u = gm.given_label(2).score(x, t, SDE), gm.score(x, t, SDE)
    for w in (0.5, 2.0, 7.0):
        assert torch.allclose(_guided_score(gm, w, 2)(x, t), (1 + w) * c - w * u, atol=1e-9)


@pytest.mark.parametrize(("predictor", "corrector"), [("euler", None), ("reverse_diffusion", "langevin")])
@pytest.mark.parametrize(("groups", "label"), [(None, 3), (TWO_CLASSES, 1)])
def test_sampling_at_scale_zero_reproduces_the_exact_conditional_mixture(predictor, corrector, groups, label):
    gm = ring_oracle()
    target = gm.given_label(label, groups)
    sampler = sf.Sampler(predictor=predictor, corrector=corrector, num_steps=500,
                         condition=ClassifierFreeGuidance(label, scale=0.0))
    x = sampler.sample(gm.conditional_score_model(SDE, groups), SDE, (4000, 2),
                       generator=torch.Generator().manual_seed(1)).samples
    assert_mixture_close(target, x, reference_logp=_reference(target), label=f"free-guided {predictor}")


def _purity(scale: float, n: int = 2000) -> float:
    """Share of samples in the asked class on a two-class ring whose classes overlap at high noise."""
    gm = sf.GaussianMixture.ring(n_modes=8, radius=2.0, std=0.6)
    groups = torch.tensor(TWO_CLASSES)
    sampler = sf.Sampler(num_steps=200, condition=ClassifierFreeGuidance(1, scale=scale))
    x = sampler.sample(gm.conditional_score_model(SDE, groups), SDE, (n, 2),
                       generator=torch.Generator().manual_seed(3)).samples
    return float((groups[gm.assign(x)] == 1).double().mean())


def test_class_purity_grows_monotonically_with_the_guidance_scale():
    scales = (-1.0, -0.5, 0.0, 1.0, 3.0)
    purity = [_purity(w) for w in scales]
    assert all(a < b for a, b in zip(purity, purity[1:])), dict(zip(scales, purity))
    assert 0.4 < purity[0] < 0.6  # w = -1: the unconditional model, half the samples in each class
    assert purity[-1] > 0.95


def test_nfe_counts_network_evaluations_of_the_batch():
    gm = ring_oracle()
    model = gm.conditional_score_model(SDE)
    calls = []

    def recording(x, t, class_labels=None):
        calls.append(x.shape[0])
        return model(x, t, class_labels=class_labels)

    recording.num_classes = model.num_classes
    for scale, per_step in ((0.0, 1), (-1.0, 1), (2.0, 2)):
        calls.clear()
        result = sf.Sampler(num_steps=10, corrector=None, condition=ClassifierFreeGuidance(0, scale=scale)).sample(
            recording, SDE, (16, 2), generator=torch.Generator().manual_seed(0))
        assert result.nfe == 10 * per_step
        assert calls == [16 * per_step] * 10  # one call per evaluation, on the stacked batch


def test_probability_flow_sampler_takes_the_guidance_condition():
    gm = ring_oracle()
    model = gm.conditional_score_model(SDE)
    plain = sf.ProbabilityFlowSampler(rtol=1e-4, atol=1e-4)
    guided = sf.ProbabilityFlowSampler(rtol=1e-4, atol=1e-4, condition=ClassifierFreeGuidance(5, scale=0.0))
    z = torch.randn(200, 2, generator=torch.Generator().manual_seed(0)) * 10
    conditional = plain.sample(gm.given_label(5).score_model(SDE), SDE, (200, 2), init=z)
    result = guided.sample(model, SDE, (200, 2), init=z)
    assert torch.allclose(result.samples, conditional.samples, atol=1e-3)
    assert result.nfe == conditional.nfe  # w = 0: one evaluation per solver call
    twice = sf.ProbabilityFlowSampler(rtol=1e-4, atol=1e-4, condition=ClassifierFreeGuidance(5, scale=1.0))
    res2 = twice.sample(model, SDE, (200, 2), init=z)
    assert res2.nfe % 2 == 0 and float((gm.assign(res2.samples) == 5).double().mean()) > 0.99
    with pytest.raises(ValueError, match="adjusts the state"):
        sf.ProbabilityFlowSampler(condition=sf.Inpaint(torch.zeros(2), torch.tensor([True, False])))


def test_guidance_interval_applies_the_scale_only_inside_its_noise_levels():
    schedule = GuidanceInterval(SDE, 3.0, sigma_low=0.5, sigma_high=2.0)
    t = SDE.time_at_noise_level(torch.tensor([0.1, 1.0, 5.0], dtype=torch.float64))
    assert schedule(t).tolist() == [0.0, 3.0, 0.0]
    gm = ring_oracle()
    x = torch.tensor([[1.0, 2.0]] * 3, dtype=torch.float64)
    got = _guided_score(gm, schedule, 4)(x, t)
    c, u = gm.given_label(4).score(x, t, SDE), gm.score(x, t, SDE)
    assert torch.allclose(got[[0, 2]], c[[0, 2]], atol=1e-9)
    assert torch.allclose(got[1], 4 * c[1] - 3 * u[1], atol=1e-9)
    with pytest.raises(ValueError, match="sigma_low < sigma_high"):
        GuidanceInterval(SDE, 1.0, sigma_low=2.0, sigma_high=1.0)


def test_guidance_composes_with_trajectory_solvers_and_schedules():
    gm = ring_oracle()
    model = gm.conditional_score_model(SDE)
    for sampler in (sf.Sampler(predictor="edm_heun", corrector=None, num_steps=30, schedule="karras",
                               condition=ClassifierFreeGuidance(2, scale=1.0)),
                    sf.Sampler(predictor="torchsde", corrector=None, num_steps=100,
                               condition="cfg", condition_options={"labels": 2, "scale": 1.0})):
        x = sampler.sample(model, SDE, (300, 2), generator=torch.Generator().manual_seed(0)).samples
        assert float((gm.assign(x) == 2).double().mean()) > 0.98, sampler


def test_bad_guidance_inputs_get_one_clear_error_each():
    gm = ring_oracle()
    conditional = gm.conditional_score_model(SDE)
    sampler = sf.Sampler(num_steps=2, corrector=None, condition=ClassifierFreeGuidance(8, scale=1.0))
    with pytest.raises(ValueError, match=r"class 8 is not a class of this network \(allowed: 0\.\.7\)"):
        sampler.sample(conditional, SDE, (4, 2))
    with pytest.raises(ValueError, match="needs a class-conditional network"):
        sf.Sampler(num_steps=2, condition=ClassifierFreeGuidance(0)).sample(gm.score_model(SDE), SDE, (4, 2))
    with pytest.raises(ValueError, match="3 labels for a batch of 4"):
        sf.Sampler(num_steps=2, condition=ClassifierFreeGuidance(torch.tensor([0, 1, 2]))).sample(
            conditional, SDE, (4, 2))
    for labels in (-1, 1.5, True, torch.tensor([[0]]), torch.tensor([], dtype=torch.long)):
        with pytest.raises(ValueError, match="labels must be a non-negative int"):
            ClassifierFreeGuidance(labels)
    for scale in (float("nan"), float("inf"), True, "2"):
        with pytest.raises(ValueError, match="guidance scale must be a finite number"):
            ClassifierFreeGuidance(0, scale=scale)


def test_exact_conditional_model_treats_no_class_as_unconditional():
    gm = ring_oracle()
    model = gm.conditional_score_model(SDE)
    x = torch.randn(5, 2, dtype=torch.float64)
    t = torch.full((5,), 0.3, dtype=torch.float64)
    none = torch.full((5,), NO_CLASS)
    assert torch.equal(model(x, t, class_labels=none), gm.score(x, t, SDE))
    assert torch.equal(model(x, t), gm.score(x, t, SDE))
