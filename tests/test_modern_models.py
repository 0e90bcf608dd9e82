"""The modern score network, the denoiser calibration diagnostic, the ODE's final denoising step and the
EDM recipe's training path."""

from __future__ import annotations

import json

import pytest
import torch

import scoreflow as sf
from scoreflow.evaluation.calibration import denoiser_calibration
from scoreflow.models.base import ScoreNet
from scoreflow.models.preconditioning import EDMPreconditioner
from scoreflow.models.resunet import ResUNet
from scoreflow.tensor import batch_broadcast


@pytest.mark.parametrize("shape", [(1, 28), (3, 32), (3, 7), (1, 9), (2, 1)])
def test_resunet_shapes_and_gradients_on_odd_sizes_and_rgb(shape):
    channels, size = shape
    torch.manual_seed(0)
    net = ResUNet(in_channels=channels, image_size=size, channels=8, channel_mult=(1, 2, 2), dropout=0.1)
    # the zero-initialised output would hide missing gradients below it: give it weights first
    torch.nn.init.normal_(net.out.weight, std=0.1)
    x = torch.randn(3, channels, size, size, requires_grad=True)
    out = net(x, torch.rand(3))
    assert out.shape == x.shape
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_resunet_refuses_bad_options_and_shapes():
    with pytest.raises(ValueError, match="channel_mult"):
        ResUNet(channel_mult=())
    with pytest.raises(ValueError, match="dropout"):
        ResUNet(dropout=1.5)
    with pytest.raises(ValueError, match="channels"):
        ResUNet(channels=0)
    with pytest.raises(ValueError, match="parametrization"):
        ResUNet(parametrization="epsilon")
    with pytest.raises(ValueError, match="expects"):
        ResUNet(image_size=8, channels=8)(torch.randn(2, 1, 9, 9), torch.rand(2))


def test_resunet_every_pixel_sees_its_neighbourhood():
    """Padded convolutions: the corner output depends on the corner input and its neighbours (the tutorial
    U-Net's unpadded layout gives a corner output one tap)."""
    torch.manual_seed(0)
    net = ResUNet(image_size=12, channels=8, channel_mult=(1, 2))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(1, 1, 12, 12, requires_grad=True)
    net(x, torch.tensor([0.3]))[0, 0, 11, 11].backward()
    assert (x.grad[0, 0, 9:, 9:].abs() > 0).all()


def _sparse_corner_data(n: int, g: torch.Generator) -> torch.Tensor:
    """Images whose border is always 0 and whose interior is random (MNIST-like)."""
    x = torch.zeros(n, 1, 6, 6)
    x[:, :, 1:5, 1:5] = torch.rand(n, 1, 4, 4, generator=g)
    return x


def test_calibration_flags_a_synthetic_bad_pixel_and_nothing_else():
    """An exact Gaussian denoiser for per-pixel independent data, except that pixel (0, 5, 5) removes only
    40 % of its noise: the diagnostic flags that pixel at every level and no other."""
    sde = sf.VESDE(sigma_min=0.01, sigma_max=30.0)
    g = torch.Generator().manual_seed(0)
    images = _sparse_corner_data(2000, g)
    mean, var = images.mean(0), images.var(0)

    class GaussianDenoiser(ScoreNet):
        """The exact noise estimate for independent Gaussian pixels of the data's mean and variance."""
        parametrization = "noise"

        def forward(self, x, t):
            std = batch_broadcast(sde.marginal_prob(x, t)[1], x)
            z_hat = std * (x - mean) / (var + std**2)
            z_hat[:, 0, 5, 5] *= 0.4
            return z_hat

    report = denoiser_calibration(GaussianDenoiser(), sde, images, noise_levels=(0.05, 0.5, 5.0), generator=g)
    flagged = {(pixel, round(level, 3)) for level, pixel, _ in report.flagged()}
    assert flagged == {((0, 5, 5), 0.05), ((0, 5, 5), 0.5), ((0, 5, 5), 5.0)}
    assert report.worst[1] == (0, 5, 5)
    assert abs(report.worst[2] - 0.4) < 0.06
    assert report.summary()["flagged_count"] == 3


def test_calibration_refuses_levels_outside_the_sde_and_tiny_batches():
    sde = sf.VESDE(sigma_min=0.01, sigma_max=2.0)
    images = torch.rand(8, 1, 4, 4)
    with pytest.raises(ValueError, match="within the SDE's range"):
        denoiser_calibration(lambda x, t: -x, sde, images, noise_levels=(5.0, 10.0))
    with pytest.raises(ValueError, match="at least 2"):
        denoiser_calibration(lambda x, t: -x, sde, images[:1])
    with pytest.raises(ValueError, match="noise levels"):
        denoiser_calibration(lambda x, t: -x, sde, images, noise_levels=(float("nan"),))


def test_ode_final_denoising_step_matches_tweedie_on_a_gaussian():
    """From the ODE's end at eps (noise level s), one Tweedie step shrinks a N(mu, v) component's spread from
    v + s^2 to v^2 / (v + s^2): checked on one Gaussian with its exact score."""
    sde = sf.VESDE(sigma_min=0.01, sigma_max=20.0)
    gm = sf.GaussianMixture([[1.0, -1.0]], [0.25])
    eps = 0.3
    s = float(sde.noise_level(torch.tensor([eps], dtype=torch.float64))[0])
    plain = sf.ode_sample(gm.score_model(sde), sde, (4000, 2), sampler=sf.ProbabilityFlowSampler(eps=eps),
                          generator=torch.Generator().manual_seed(0))
    denoised = sf.ode_sample(gm.score_model(sde), sde, (4000, 2), sampler=sf.ProbabilityFlowSampler(eps=eps, denoise=True),
                             generator=torch.Generator().manual_seed(0))
    assert denoised.nfe == plain.nfe + 1
    v = 0.25**2
    assert abs(float(plain.samples.var(0).mean()) - (v + s**2)) < 0.006
    assert abs(float(denoised.samples.var(0).mean()) - v**2 / (v + s**2)) < 0.006
    with pytest.raises(ValueError, match="denoise"):
        sf.ProbabilityFlowSampler(denoise=1)


def test_edm_recipe_trains_saves_and_reloads(tmp_path):
    """A few steps of the EDM recipe on digits: the preconditioned network is rebuilt from the checkpoint."""
    from scoreflow.training import TrainConfig, Trainer, load_trained

    config = TrainConfig(dataset="digits", model="resunet", model_options={"channels": 8, "channel_mult": [1, 2]},
                         sde="ve", sde_options={"sigma_min": 0.002, "sigma_max": 40.0}, preconditioning="edm",
                         sigma_data=0.3, weighting="edm", p_mean=-1.5, p_std=1.4, steps=6, batch_size=16,
                         dequantize=True, log_every=2)
    result = Trainer(config, tmp_path / "run", progress=False).run()
    assert result.step == 6 and all(map(lambda pair: pair[1] == pair[1], result.losses))
    model, sde, loaded = load_trained(tmp_path / "run")
    assert isinstance(model, EDMPreconditioner) and model.sigma_data == 0.3
    assert loaded.preconditioning == "edm" and loaded.weighting == "edm"
    x = torch.rand(2, 1, 8, 8)
    assert sf.make_score_fn(model, sde)(x, torch.full((2,), 0.5)).shape == x.shape
    meta = json.loads(next((tmp_path / "run" / "checkpoints").glob("step_*/meta.json")).read_text())
    assert meta["config"]["p_std"] == 1.4


def test_training_options_are_checked():
    from scoreflow.training import TrainConfig

    with pytest.raises(ValueError, match="preconditioning"):
        TrainConfig(preconditioning="karras")
    with pytest.raises(ValueError, match="weighting"):
        TrainConfig(weighting="edm2")
    with pytest.raises(ValueError, match="sigma_data"):
        TrainConfig(sigma_data=0.0)
    with pytest.raises(ValueError, match="p_std"):
        TrainConfig(p_std=-1.0)


def test_a_plugin_weighting_trains_through_the_registry(tmp_path):
    """A registered 'weighting' (the hooks.md example) is selected by name with weighting_options; the built-ins
    refuse weighting_options; an unknown name lists the registered ones."""
    from scoreflow.plugins import PluginHost, get_host, set_host
    from scoreflow.training import TrainConfig, Trainer
    from scoreflow.training.weighting import LossWeighting
    from scoreflow.hookspecs import hookimpl

    seen = []

    class LogUniform(LossWeighting):
        def __init__(self, scale: float = 1.0) -> None:
            self.scale = scale

        def sample_times(self, n, generator):
            lo, hi = self.sde.noise_level(torch.tensor([self.eps, self.sde.T], dtype=torch.float64)).log()
            s = torch.exp(lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64))
            t = self.sde.time_at_noise_level(s).clamp(self.eps, self.sde.T)
            seen.append(t)
            return t

        def weight(self, t):
            return torch.full_like(t, self.scale)

    class Plugin:
        @hookimpl
        def scoreflow_register_weightings(self, registry):
            registry.add("log_uniform", LogUniform)

    host = PluginHost(autoload=False)
    host.register(Plugin(), name="test-weighting")
    previous = get_host()
    set_host(host)
    try:
        config = TrainConfig(dataset="ring", model="mlp", steps=3, batch_size=8, weighting="log_uniform",
                             weighting_options={"scale": 2.0})
        assert Trainer(config, tmp_path / "run", progress=False).run().step == 3
        assert len(seen) == 3 and all(t.shape == (8,) for t in seen)
        with pytest.raises(ValueError, match="Unknown weighting 'nope'. Available: edm, likelihood, log_uniform"):
            TrainConfig(weighting="nope")
        with pytest.raises(ValueError, match="weighting_options apply to plugin weightings"):
            Trainer(TrainConfig(dataset="ring", model="mlp", steps=1, weighting="edm",
                                weighting_options={"p_std": 2.0}), tmp_path / "other", progress=False)
    finally:
        set_host(previous)


def test_builtin_weightings_draw_and_weigh_as_before():
    """The registered built-ins reproduce the losses' own samplers and weights."""
    from scoreflow.training.losses import ImportanceTimeSampler, LogNormalTimeSampler
    from scoreflow.training.weighting import EDMWeighting, LikelihoodWeighting, Sigma2Weighting

    sde = sf.VESDE(sigma_min=0.01, sigma_max=20.0)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    t = Sigma2Weighting().bind(sde, 1e-5).sample_times(5, g1)
    torch.testing.assert_close(t, torch.rand(5, generator=g2, dtype=torch.float64) * (1 - 1e-5) + 1e-5)
    lik = LikelihoodWeighting().bind(sde, 1e-5)
    torch.testing.assert_close(lik.sample_times(5, torch.Generator().manual_seed(1)),
                               ImportanceTimeSampler(sde, 1e-5).sample(5, torch.Generator().manual_seed(1)))
    assert lik.weight(t) is None
    edm = EDMWeighting(p_mean=-1.0, p_std=0.5, sigma_data=0.3).bind(sde, 1e-5)
    torch.testing.assert_close(edm.sample_times(5, torch.Generator().manual_seed(2)),
                               LogNormalTimeSampler(sde, 1e-5, -1.0, 0.5).sample(5, torch.Generator().manual_seed(2)))
    torch.testing.assert_close(edm.weight(t), 1 + sde.noise_level(t) ** 2 / 0.09)
    with pytest.raises(ValueError, match="p_std"):
        EDMWeighting(p_std=0.0)
