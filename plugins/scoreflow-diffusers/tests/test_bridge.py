"""The diffusers bridge on tiny randomly initialised models written with save_pretrained and read back."""

from __future__ import annotations

import json
import math

import pytest
import torch

import scoreflow as sf
from scoreflow.models.base import make_denoiser_fn, make_score_fn

diffusers = pytest.importorskip("diffusers")

F64 = torch.float64


def _unet(**extra) -> "diffusers.UNet2DModel":
    torch.manual_seed(0)
    options = dict(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                   down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                   norm_num_groups=4)
    return diffusers.UNet2DModel(**{**options, **extra}).eval()


def _save(tmp_path, unet, scheduler, layout: str = "pipeline"):
    if layout == "pipeline":
        unet.save_pretrained(tmp_path / "unet")
        scheduler.save_pretrained(tmp_path / "scheduler")
        (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))
    else:  # one folder holding both configs
        unet.save_pretrained(tmp_path)
        scheduler.save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.parametrize("beta_schedule", ["linear", "scaled_linear", "squaredcos_cap_v2"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_bridged_model_is_the_diffusers_model_in_scoreflows_terms(tmp_path, beta_schedule, prediction_type):
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=200, beta_schedule=beta_schedule,
                                        prediction_type=prediction_type)
    folder = _save(tmp_path, _unet(), scheduler)
    model, sde, info = sf.load_pretrained(f"diffusers:{folder}")
    assert info.data_shape == (1, 8, 8) and info.eps == pytest.approx(1 / 200) and model.data_range == (-1.0, 1.0)
    model = model.double()
    abar = scheduler.alphas_cumprod.to(F64)
    t = (torch.arange(200, dtype=F64) + 1) / 200  # every trained timestep
    torch.testing.assert_close(sde.marginal_scale(t) ** 2, abar, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(sde.time_at_noise_level(sde.noise_level(t)), t, rtol=1e-9, atol=1e-12)

    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 1, 8, 8, generator=g, dtype=F64)
    steps = torch.tensor([0, 7, 50, 120, 199, 33], dtype=F64)
    tt = (steps + 1) / 200
    out = model.unet(x, steps).sample  # what the diffusers model predicts at those timesteps
    a = abar[steps.long()].sqrt().view(-1, 1, 1, 1)
    std = (1 - abar[steps.long()]).sqrt().view(-1, 1, 1, 1)
    x0 = {"epsilon": (x - std * out) / a, "v_prediction": a * x - std * out, "sample": out}[prediction_type]
    eps = (x - a * x0) / std
    torch.testing.assert_close(make_score_fn(model, sde)(x, tt), -eps / std, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(make_denoiser_fn(model, sde)(x, tt), x0, rtol=1e-6, atol=1e-6)


def test_fractional_timesteps_interpolate_in_log_sigma_and_the_model_refuses_untrained_ones(tmp_path):
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=100)
    model, sde = _bridge(scheduler)
    level = sde.noise_level(torch.tensor([10.5 / 100], dtype=F64))  # halfway between timesteps 9 and 10
    s = ((1 - scheduler.alphas_cumprod.to(F64)) / scheduler.alphas_cumprod.to(F64)).sqrt()
    torch.testing.assert_close(level, (s[9] * s[10]).sqrt().reshape(1), rtol=1e-9, atol=0)
    with pytest.raises(ValueError, match=r"trained on timesteps 0..99 .*default_eps \(0.01\)"):
        model(torch.zeros(1, 1, 8, 8), torch.tensor([0.001]))


def _bridge(scheduler, **unet_options):
    from scoreflow_diffusers import bridge

    return bridge(_unet(**unet_options), scheduler)


class _NearlyTrained(torch.nn.Module):
    """A noise predictor close to the input (as a trained model is near the prior), so that its denoised
    estimates stay of order one like a trained model's and float32 comparisons mean something."""

    def __init__(self, unet) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x, t):
        from types import SimpleNamespace

        return SimpleNamespace(sample=x + 0.05 * self.unet(x, t).sample)


@pytest.mark.parametrize("steps", [10, 50])
def test_ddim_reproduces_diffusers_ddim_scheduler_on_the_same_noise_levels(steps):
    from scoreflow_diffusers import bridge

    # clip_sample=False: diffusers clips its x0 prediction to [-1, 1] by default, a step scoreflow does not take
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=1000, timestep_spacing="trailing", clip_sample=False)
    model, sde = bridge(_NearlyTrained(_unet()), scheduler)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    scheduler.set_timesteps(steps)
    theirs = x.clone()
    with torch.no_grad():
        for t in scheduler.timesteps:
            theirs = scheduler.step(model.unet(theirs, t).sample, t, theirs, eta=0.0).prev_sample
        times = (scheduler.timesteps.to(F64) + 1) / 1000
        ours = sf.Sampler(predictor="ddim", times=times).sample(model, sde, (4, 1, 8, 8), init=x).samples
    assert float((ours - theirs).abs().max()) < 1e-4


@pytest.mark.parametrize(("steps", "spacing"), [(5, "leading"), (10, "trailing"), (20, "leading")])
def test_unipc_reproduces_diffusers_unipc_scheduler_on_the_same_noise_levels(steps, spacing):
    """scoreflow's ``unipc`` (order 2, the denoising step counted as the last) on diffusers' timesteps is diffusers'
    ``UniPCMultistepScheduler`` (bh2, order 2, lower order at the end of short schedules, last step to 0)."""
    from scoreflow_diffusers import bridge

    scheduler = diffusers.UniPCMultistepScheduler(num_train_timesteps=1000, timestep_spacing=spacing, solver_order=2)
    model, sde = bridge(_NearlyTrained(_unet()), scheduler)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    scheduler.set_timesteps(steps)
    theirs = x.clone()
    with torch.no_grad():
        for t in scheduler.timesteps:
            theirs = scheduler.step(model.unet(theirs, t).sample, t, theirs).prev_sample
        times = (scheduler.timesteps.to(F64) + 1) / 1000
        ours = sf.Sampler(predictor="unipc", predictor_options={"order": 2, "denoise_is_last_step": True},
                          times=times).sample(
            model, sde, (4, 1, 8, 8), init=x)
    assert ours.nfe == steps
    assert float((ours.samples - theirs).abs().max()) < 1e-4


def test_ve_score_models_with_fourier_embedding_return_the_score_at_the_noise_level():
    scheduler = diffusers.ScoreSdeVeScheduler(sigma_min=0.01, sigma_max=50.0)
    model, sde = _bridge(scheduler, time_embedding_type="fourier")
    model = model.double()
    t = torch.tensor([sde.default_eps, 0.4, 1.0], dtype=F64)
    sigma = sde.noise_level(t)
    torch.testing.assert_close(sigma[[0, 2]], torch.tensor([0.01, 50.0], dtype=F64), rtol=1e-9, atol=0)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(3), dtype=F64)
    torch.testing.assert_close(make_score_fn(model, sde)(x, t), model.unet(x, sigma).sample, rtol=1e-6, atol=1e-6)


def test_bits_per_dim_are_those_of_the_unit_range_data(tmp_path):
    """diffusers' data lives in [-1, 1]: the density of [0, 1] data is 2^D times larger, one bit per dim less."""
    from scoreflow.data.base import dequantize

    model, sde = _bridge(diffusers.DDPMScheduler(num_train_timesteps=100))
    x = torch.randint(0, 256, (3, 1, 8, 8), generator=torch.Generator().manual_seed(4)).float() / 255
    options = dict(method=sf.ExponentialLikelihood(num_steps=3, eps=sde.default_eps))
    with torch.no_grad():
        ours = sf.log_likelihood(model, sde, x, dequantize=True, generator=torch.Generator().manual_seed(5), **options)
    g = torch.Generator().manual_seed(5)
    in_model_range = 2 * dequantize(x, g) - 1
    plain = make_score_fn(model, sde)  # a plain callable: data_range [0, 1], no mapping
    with torch.no_grad():
        raw = sf.log_likelihood(plain, sde, in_model_range, generator=g, **options)
    torch.testing.assert_close(ours.logp, raw.logp + 64 * math.log(2), rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(ours.bpd, -ours.logp / (64 * math.log(2)) + 8, rtol=1e-6, atol=1e-6)


def test_sample_and_likelihood_commands_on_a_saved_model(tmp_path, capsys):
    from scoreflow.cli import main

    folder = _save(tmp_path / "model", _unet(), diffusers.DDPMScheduler(num_train_timesteps=100), layout="flat")
    assert main(["sample", "--checkpoint", f"diffusers:{folder}", "--predictor", "ddim", "--corrector", "none",
                 "--num-steps", "4", "--num-samples", "4", "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    from safetensors.torch import load_file

    samples = load_file(str(tmp_path / "s" / "samples.safetensors"))["samples"]
    assert samples.shape == (4, 1, 8, 8) and (tmp_path / "s" / "samples.png").is_file()
    assert main(["likelihood", "--checkpoint", f"diffusers:{folder}", "--dataset", "digits", "--max-samples", "2",
                 "--method", "exponential", "--num-steps", "2", "--out", str(tmp_path / "l.json"),
                 "--no-progress"]) == 0
    summary = json.loads((tmp_path / "l.json").read_text())
    assert summary["quantization_levels"] == 17 and summary["eps"] == pytest.approx(0.01)
    capsys.readouterr()
    assert main(["likelihood", "--checkpoint", f"diffusers:{folder}", "--max-samples", "2",
                 "--out", str(tmp_path / "l2.json"), "--no-progress"]) == 2
    assert "records no dataset: pass --dataset NAME" in capsys.readouterr().err


def test_evaluate_calibrate_and_inpaint_commands_on_a_saved_model(tmp_path, capsys):
    from safetensors.torch import load_file

    from scoreflow.cli import main

    folder = _save(tmp_path / "model", _unet(), diffusers.DDPMScheduler(num_train_timesteps=100), layout="flat")
    source = f"diffusers:{folder}"
    assert main(["evaluate", "--checkpoint", source, "--dataset", "digits", "--predictor", "ddim", "--corrector",
                 "none", "--num-steps", "3", "--num-samples", "16", "--out", str(tmp_path / "e.json"),
                 "--no-progress"]) == 0
    quality = json.loads((tmp_path / "e.json").read_text())
    assert math.isfinite(quality["frechet_distance"]) and sum(quality["class_histogram"]) == 16
    assert main(["calibrate", "--checkpoint", source, "--dataset", "digits", "--num-images", "8",
                 "--noise-levels", "0.1", "1.0", "--out", str(tmp_path / "c")]) == 0
    assert json.loads((tmp_path / "c" / "calibration.json").read_text())["checkpoint"] == source
    assert main(["inpaint", "--checkpoint", source, "--dataset", "digits", "--images", "test", "--count", "3",
                 "--mask", "bottom-half", "--predictor", "ddim", "--corrector", "none", "--num-steps", "3",
                 "--out", str(tmp_path / "i"), "--no-progress"]) == 0
    saved = load_file(str(tmp_path / "i" / "inpaint.safetensors"))
    top = saved["mask"][0, :4]  # the known half comes back as given, in [0, 1]
    assert torch.allclose(saved["inpainted"][:, 0, :4][:, top], saved["images"][:, 0, :4][:, top], atol=1e-5)
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", source, "--dataset", "two_moons", "--num-samples", "4",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "holds samples of shape (2,)" in err and "models shape (1, 8, 8)" in err


def test_what_is_not_a_supported_diffusers_model_is_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="is not a diffusers model folder"):
        sf.load_pretrained(f"diffusers:{empty}")
    with pytest.raises(FileNotFoundError, match="no diffusers model folder"):
        sf.load_pretrained(f"diffusers:{tmp_path / 'missing'}")
    folder = _save(tmp_path / "m", _unet(), diffusers.DDPMScheduler(num_train_timesteps=10, prediction_type="flow"))
    with pytest.raises(ValueError, match="unsupported prediction_type 'flow'; supported: epsilon, v_prediction, sample"):
        sf.load_pretrained(f"diffusers:{folder}")
    config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({**config, "_class_name": "LCMScheduler"}))
    with pytest.raises(ValueError, match="unsupported scheduler 'LCMScheduler'; supported: DDPMScheduler"):
        sf.load_pretrained(f"diffusers:{folder}")
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({**config, "prediction_type": "epsilon"}))
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="only safetensors weights are read"):
        sf.load_pretrained(f"diffusers:{folder}")


@pytest.mark.parametrize("beta_schedule", ["linear", "scaled_linear"])
def test_alphas_cumprod_sde_conforms_and_its_drift_has_its_marginals(beta_schedule):
    """scoreflow's SDE conformance check (shapes, prior, the marginal variance against the integral of g^2).
    squaredcos_cap_v2 is left out: its last beta is capped at 0.999, so ln(1 + s^2) jumps by ln(1000) within one
    timestep, more than the check's trapezoid (20 points per timestep) integrates to 1e-3; its table is checked
    at every timestep above."""
    from scoreflow import testing
    from scoreflow_diffusers import AlphasCumprodSDE

    scheduler = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=beta_schedule)
    testing.check_sde(AlphasCumprodSDE(alphas_cumprod=scheduler.alphas_cumprod))


def test_alphas_cumprod_must_be_a_decreasing_table_in_the_unit_interval():
    from scoreflow_diffusers import AlphasCumprodSDE

    with pytest.raises(ValueError, match="must decrease strictly"):
        AlphasCumprodSDE(alphas_cumprod=[0.9, 0.95, 0.5])
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\)"):
        AlphasCumprodSDE(alphas_cumprod=[1.0, 0.5])


@pytest.mark.parametrize(("predictor", "corrector", "schedule"), [("euler", "langevin", None), ("dpmpp_2m", None, "karras"),
                                                                  ("ddim", None, "log_sigma"), ("ancestral", None, None)])
def test_scoreflows_samplers_and_tuner_run_on_a_bridged_model(predictor, corrector, schedule):
    model, sde = _bridge(diffusers.DDPMScheduler(num_train_timesteps=100))
    sampler = sf.Sampler(predictor=predictor, corrector=corrector, num_steps=6, schedule=schedule)
    with torch.no_grad():
        res = sampler.sample(model, sde, (2, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(res.samples).all() and res.nfe >= 6


def test_ode_sampling_and_tuning_stay_on_the_trained_timesteps():
    model, sde = _bridge(diffusers.DDPMScheduler(num_train_timesteps=100))
    with torch.no_grad():
        res = sf.ode_sample(model, sde, (2, 1, 8, 8), generator=torch.Generator().manual_seed(0),
                            sampler=sf.ProbabilityFlowSampler(eps=sde.default_eps, rtol=1e-3, atol=1e-3))
        tuned = sf.tune_schedule(model, sde, (2, 1, 8, 8), 3, predictor="dpmpp_2m", generator=torch.Generator().manual_seed(1),
                                 search=sf.GridSearch(sweeps=1, fine_steps=16, rtol=1e-3, atol=1e-3))
    assert torch.isfinite(res.samples).all() and 3 in tuned.grids
