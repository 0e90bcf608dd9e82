"""k-diffusion's (and EDM's) denoiser convention ``D(x, sigma)``, both ways.

k-diffusion's samplers take a denoiser ``D(x, sigma) = E[x_0 | x]`` of ``x = x_0 + sigma n`` (the variance-exploding
form) and noise levels ``sigma``. Every scoreflow SDE with linear marginals, ``x_t = alpha(t) (x_0 + s(t) z)``, is
that form in the scaled variable ``y = x_t / alpha`` with ``sigma = s(t)`` (:meth:`~scoreflow.sde.SDE.noise_level`),
so

- :func:`to_denoiser` turns a scoreflow model and its SDE into ``D(y, sigma)``: ``t`` is the time at noise level
  ``sigma``, the model sees ``x_t = alpha(t) y``, and ``D`` is its ``E[x_0 | x_t]``;
- :func:`from_denoiser` turns a denoiser into a scoreflow model (``parametrization = "data"``) on a VE SDE whose
  noise levels run from ``sigma_min`` at its ``default_eps`` to ``sigma_max`` at ``T``; the model is evaluated at
  the SDE's noise level ``s(t)`` and refuses levels outside that range.

Neither imports k-diffusion.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import torch

from scoreflow.models.base import ScoreModel, ScoreNet, make_denoiser_fn
from scoreflow.sde.base import SDE, final_time
from scoreflow.sde.ve import VESDE
from scoreflow.tensor import as_time, batch_broadcast

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class KDiffusionDenoiser:
    """``D(y, sigma)`` of a scoreflow model (see :func:`to_denoiser`); ``sigma_min``/``sigma_max`` are the noise
    levels at the SDE's ``eps`` and ``T``, the range a sampler should use."""

    def __init__(self, model: ScoreModel, sde: SDE, eps: float | None = None) -> None:
        self.sde = sde
        self.denoise = make_denoiser_fn(model, sde)
        eps = final_time(sde, eps)
        ends = sde.noise_level(torch.tensor([eps, sde.T], dtype=torch.float64))
        self.sigma_min, self.sigma_max = float(ends[0]), float(ends[1])

    def __call__(self, y: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        sigma = as_time(sigma, y.shape[0], y).to(torch.float64)
        low, high = float(sigma.min()), float(sigma.max())
        if low <= 0 or high > self.sigma_max * (1 + 1e-6):
            raise ValueError(f"noise level sigma must lie in (0, {self.sigma_max:g}] (the SDE's range), got "
                             f"[{low:g}, {high:g}]")
        t = self.sde.time_at_noise_level(sigma).clamp(max=self.sde.T)
        alpha = batch_broadcast(self.sde.marginal_scale(t).to(y.dtype), y)
        return self.denoise(alpha * y, t.to(y.dtype))


def to_denoiser(model: ScoreModel, sde: SDE, eps: float | None = None) -> KDiffusionDenoiser:
    """A callable ``D(x, sigma)`` in k-diffusion's convention for ``model`` on ``sde``; k-diffusion's
    ``sample_*`` functions accept it as their ``model``. Start them from ``randn * D.sigma_max`` and give them
    noise levels in ``[D.sigma_min, D.sigma_max]`` (then 0); the result is in the data's units (``x_0``)."""
    return KDiffusionDenoiser(model, sde, eps)


@attrs.define(kw_only=True)
class DenoiserVESDE(VESDE):
    """The VE SDE of a denoiser trained on noise levels ``[level_min, sigma_max]``: its noise level
    ``sqrt(sigma(t)^2 - sigma_min^2)`` is ``level_min`` at ``default_eps`` (samplers stop there unless told
    otherwise) and about ``sigma_max`` at ``T`` (exactly, as :func:`from_denoiser` builds it)."""

    level_min: float = attrs.field(default=0.0)
    default_eps: float = attrs.field(init=False, default=0.0)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.default_eps = float(self.time_at_noise_level(torch.tensor(self.level_min, dtype=torch.float64)))

    @classmethod
    def for_levels(cls, sigma_min: float, sigma_max: float) -> DenoiserVESDE:
        """The SDE whose noise level is ``sigma_min`` at ``default_eps`` and ``sigma_max`` at ``T``: its
        ``sigma_max`` is raised so that ``sqrt(sigma_max'^2 - sigma_min^2)`` is ``sigma_max`` itself."""
        return cls(sigma_min=sigma_min, sigma_max=(sigma_max**2 + sigma_min**2) ** 0.5, level_min=sigma_min)


def check_trained_levels(sigma: torch.Tensor, sigma_min: float, sigma_max: float, sde: SDE,
                         tolerance: float = 1e-6) -> None:
    """Refuse noise levels outside ``[sigma_min, sigma_max]``, the range a network was trained on."""
    low, high = float(sigma.min()), float(sigma.max())
    if low < sigma_min * (1 - tolerance) or high > sigma_max * (1 + tolerance):
        raise ValueError(f"the model was trained on noise levels [{sigma_min:g}, {sigma_max:g}], asked for "
                         f"[{low:g}, {high:g}]; stop samplers and likelihoods at the SDE's default_eps "
                         f"({sde.default_eps:g}), not below it")


class DenoiserScoreNet(ScoreNet):
    """A denoiser ``D(x, sigma)`` as a scoreflow model on its VE SDE (see :func:`from_denoiser`)."""

    parametrization = "data"

    def __init__(self, denoiser: Denoiser, sde: SDE, sigma_min: float, sigma_max: float) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.sde = sde
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        if isinstance(denoiser, torch.nn.Module):
            self.add_module("inner", denoiser)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        sigma = self.sde.noise_level(as_time(t, x.shape[0], x).to(torch.float64))
        check_trained_levels(sigma, self.sigma_min, self.sigma_max, self.sde)
        return self.denoiser(x, sigma.to(x.dtype))


class PreconditionedDenoiser(torch.nn.Module):
    """k-diffusion's ``Denoiser`` wrapper (Karras et al. 2022's preconditioning) around a raw network ``F``:
    ``D(x, s) = c_skip x + c_out F(c_in x, s)`` with ``c_skip = sd^2 / (s^2 + sd^2)``,
    ``c_out = s sd / sqrt(s^2 + sd^2)`` and ``c_in = 1 / sqrt(s^2 + sd^2)`` (``sd`` the data's standard
    deviation). ``F`` receives the noise level itself, as k-diffusion's inner models do."""

    def __init__(self, network: Denoiser, sigma_data: float) -> None:
        super().__init__()
        self.network, self.sigma_data = network, float(sigma_data)  # a Module network's parameters are registered

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, *([1] * (x.dim() - 1)))
        sd2 = self.sigma_data**2
        total = s**2 + sd2
        return sd2 / total * x + s * self.sigma_data * torch.rsqrt(total) * self.network(x * torch.rsqrt(total), sigma)


def from_denoiser(denoiser: Denoiser, sigma_min: float, sigma_max: float, *, sigma_data: float | None = None
                  ) -> tuple[DenoiserScoreNet, SDE]:
    """A scoreflow model and VE SDE for a denoiser ``D(x, sigma)`` trained on noise levels
    ``[sigma_min, sigma_max]`` (a k-diffusion or EDM model). The model declares ``parametrization = "data"``, so
    every sampler and the likelihood use ``D`` through the same conversion as a scoreflow denoiser. The SDE's
    noise level is ``sigma_min`` at its ``default_eps`` (where samplers stop unless told otherwise; pass it as
    the likelihood's ``eps``) and ``sigma_max`` at ``T``; the model refuses levels outside that range.

    With ``sigma_data``, ``denoiser`` is a raw network ``F(c_in x, sigma)`` and ``D`` its preconditioned form
    (:class:`PreconditionedDenoiser`, k-diffusion's ``Denoiser(inner_model, sigma_data)``)."""
    if not (isinstance(sigma_min, (int, float)) and isinstance(sigma_max, (int, float)) and 0 < sigma_min < sigma_max):
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min!r}, sigma_max={sigma_max!r}")
    if sigma_data is not None:
        if isinstance(sigma_data, bool) or not (isinstance(sigma_data, (int, float)) and 0 < sigma_data < math.inf):
            raise ValueError(f"sigma_data must be a finite positive number (the data's standard deviation), got "
                             f"{sigma_data!r}")
        denoiser = PreconditionedDenoiser(denoiser, sigma_data)
    sde = DenoiserVESDE.for_levels(float(sigma_min), float(sigma_max))
    return DenoiserScoreNet(denoiser, sde, float(sigma_min), float(sigma_max)), sde
