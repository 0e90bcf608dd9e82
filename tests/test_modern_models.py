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
    plain = sf.ode_sample(gm.score_model(sde), sde, (4000, 2), eps=eps, generator=torch.Generator().manual_seed(0))
    denoised = sf.ode_sample(gm.score_model(sde), sde, (4000, 2), eps=eps,
                             generator=torch.Generator().manual_seed(0), denoise=True)
    assert denoised.nfe == plain.nfe + 1
    v = 0.25**2
    assert abs(float(plain.samples.var(0).mean()) - (v + s**2)) < 0.006
    assert abs(float(denoised.samples.var(0).mean()) - v**2 / (v + s**2)) < 0.006
    with pytest.raises(ValueError, match="denoise"):
        sf.ode_sample(gm.score_model(sde), sde, (4, 2), denoise=1)


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
