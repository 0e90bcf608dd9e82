"""A diffusers ``UNet2DModel`` and its scheduler as a scoreflow model and SDE.

- DDPM-family schedulers (``DDPMScheduler``, ``DDIMScheduler`` and the others that carry ``alphas_cumprod``):
  :class:`~scoreflow_diffusers.sde.AlphasCumprodSDE` from the scheduler's table, and the network called at the
  fractional timestep ``t N - 1``; its ``prediction_type`` becomes scoreflow's ``parametrization`` (``epsilon``:
  ``"noise"``, ``v_prediction``: ``"v"``, ``sample``: ``"data"``; the conventions are the same).
- ``ScoreSdeVeScheduler`` (NCSN++-style models with a Fourier time embedding, which return the score given the
  noise level): a VE SDE whose noise level runs from the scheduler's ``sigma_min`` to ``sigma_max``, the network
  called at that noise level.

diffusers models work on data in ``[-1, 1]``; the bridged model says so (``data_range``), so scoreflow's
likelihood maps ``[0, 1]`` data into it and reports bits/dim of the ``[0, 1]`` data (one bit per dimension less
than the density of the ``[-1, 1]`` data), and ``scoreflow sample`` saves samples in ``[0, 1]``.
"""

from __future__ import annotations

from typing import Any

import torch

import scoreflow
from scoreflow.models.denoiser_convention import DenoiserVESDE, check_trained_levels
from scoreflow.tensor import as_time
from scoreflow_diffusers.sde import AlphasCumprodSDE

#: diffusers' ``prediction_type`` -> scoreflow's ``parametrization``.
PARAMETRIZATIONS = {"epsilon": "noise", "v_prediction": "v", "sample": "data"}
#: ``beta_schedule`` values whose tables the bridge has been checked on.
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
#: Scheduler classes the bridge reads ``alphas_cumprod`` from (the DDPM family) and the VE one.
VP_SCHEDULERS = ("DDPMScheduler", "DDIMScheduler", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler",
                 "PNDMScheduler", "UniPCMultistepScheduler", "DEISMultistepScheduler", "HeunDiscreteScheduler")
VE_SCHEDULERS = ("ScoreSdeVeScheduler",)
#: diffusers' data range.
DATA_RANGE = (-1.0, 1.0)
#: How far (in timesteps, or relative noise level) an evaluation may stray outside the trained range.
TOLERANCE = 1e-6


class DiffusersScoreNet(scoreflow.ScoreNet):
    """A DDPM-family ``UNet2DModel`` on its :class:`AlphasCumprodSDE`: called at the fractional timestep
    ``t N - 1``, never outside ``[0, N - 1]``; its output is what ``prediction_type`` says (``parametrization``).
    A network that also predicts its variance (twice the input channels) gives its first half."""

    data_range = DATA_RANGE

    def __init__(self, unet: torch.nn.Module, sde: AlphasCumprodSDE, prediction_type: str) -> None:
        super().__init__()
        if prediction_type not in PARAMETRIZATIONS:
            raise ValueError(f"unsupported prediction_type {prediction_type!r}; supported: "
                             f"{', '.join(PARAMETRIZATIONS)}")
        self.unet = unet
        self.sde = sde
        self.prediction_type = prediction_type
        self.parametrization = PARAMETRIZATIONS[prediction_type]

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tau = self.sde.timestep(as_time(t, x.shape[0], x))
        low, high = float(tau.min()), float(tau.max())
        if low < -TOLERANCE or high > self.sde.N - 1 + TOLERANCE:
            raise ValueError(f"the diffusers model was trained on timesteps 0..{self.sde.N - 1} (t in "
                             f"[{1 / self.sde.N:g}, 1]); asked for timesteps [{low:g}, {high:g}]: stop samplers and "
                             f"likelihoods at the SDE's default_eps ({self.sde.default_eps:g})")
        out = self.unet(x, tau.clamp(0, self.sde.N - 1).to(x.dtype)).sample
        if out.shape[1] == 2 * x.shape[1]:
            out = out[:, : x.shape[1]]  # learned variance (improved DDPM): the mean's prediction comes first
        return out


class DiffusersVEScoreNet(scoreflow.ScoreNet):
    """An NCSN++-style ``UNet2DModel`` (Fourier time embedding) with ``ScoreSdeVeScheduler``: called at the
    noise level, it returns the score."""

    parametrization = "score"
    data_range = DATA_RANGE

    def __init__(self, unet: torch.nn.Module, sde: DenoiserVESDE, sigma_min: float, sigma_max: float) -> None:
        super().__init__()
        self.unet = unet
        self.sde = sde
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        sigma = self.sde.noise_level(as_time(t, x.shape[0], x).to(torch.float64))
        check_trained_levels(sigma, self.sigma_min, self.sigma_max, self.sde, TOLERANCE)
        return self.unet(x, sigma.to(x.dtype)).sample


def _config(scheduler: Any) -> dict[str, Any]:
    config = getattr(scheduler, "config", None)
    if config is None:
        raise TypeError(f"expected a diffusers scheduler (with a config), got {type(scheduler).__name__}")
    return dict(config)


def bridge(unet: torch.nn.Module, scheduler: Any) -> tuple[scoreflow.ScoreNet, scoreflow.SDE]:
    """``(model, sde)`` for a diffusers ``UNet2DModel`` and its scheduler (objects in memory); see the module
    docstring for what is supported. Errors name the unsupported scheduler, schedule or prediction type."""
    name = type(scheduler).__name__
    config = _config(scheduler)
    if name in VE_SCHEDULERS:
        sigma_min, sigma_max = float(config["sigma_min"]), float(config["sigma_max"])
        sde = DenoiserVESDE.for_levels(sigma_min, sigma_max)
        return DiffusersVEScoreNet(unet, sde, sigma_min, sigma_max), sde
    if name not in VP_SCHEDULERS:
        raise ValueError(f"unsupported scheduler {name}; supported: {', '.join(VP_SCHEDULERS + VE_SCHEDULERS)}")
    schedule = config.get("beta_schedule", "linear")
    if config.get("trained_betas") is None and schedule not in BETA_SCHEDULES:
        raise ValueError(f"unsupported beta_schedule {schedule!r}; supported: {', '.join(BETA_SCHEDULES)} (or "
                         "trained_betas)")
    prediction = config.get("prediction_type", "epsilon")
    if prediction not in PARAMETRIZATIONS:
        raise ValueError(f"unsupported prediction_type {prediction!r}; supported: {', '.join(PARAMETRIZATIONS)}")
    sde = AlphasCumprodSDE(alphas_cumprod=scheduler.alphas_cumprod)
    return DiffusersScoreNet(unet, sde, prediction), sde
