"""Denoising score matching losses and the time distributions they sample from."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import torch

from scoreflow.models.parametrization import noise_estimate
from scoreflow.tensor import batch_broadcast, sum_except_batch

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE
    from scoreflow.training.weighting import LossWeighting

#: The loss weightings (``TrainConfig.weighting``): the tutorial's ``lambda = std^2``, the likelihood weighting
#: ``lambda = g^2`` and EDM's ``lambda = (s^2 + sd^2) / (s sd)^2`` on the denoiser with log-normal noise levels.
WEIGHTINGS = ("sigma2", "likelihood", "edm")


class ImportanceTimeSampler:
    """Draws ``t`` with density proportional to ``g(t)^2 / std(t)^2`` on ``[eps, T]``.

    With the likelihood weighting ``lambda = g^2`` the per-sample loss
    ``g^2 ||s + z/std||^2 = (g^2/std^2) ||s std + z||^2``; sampling ``t`` from this
    density cancels the factor, leaving ``||s std + z||^2`` up to a constant (Song et
    al. 2021, "Maximum likelihood training of score-based diffusion models"). The
    inverse CDF is tabulated numerically, so any SDE works.
    """

    def __init__(self, sde: SDE, eps: float, grid: int = 20_000) -> None:
        # log-spaced near eps, where g^2/std^2 ~ 1/t is steep
        ts = torch.cat([torch.logspace(torch.log10(torch.tensor(eps)), torch.log10(torch.tensor(sde.T)), grid,
                                       dtype=torch.float64)])
        ones = torch.ones(len(ts), 1, dtype=torch.float64)
        _, g = sde.sde(ones, ts)
        _, std = sde.marginal_prob(ones, ts)
        w = g**2 / std**2
        cdf = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum((w[1:] + w[:-1]) / 2 * ts.diff(), 0)])
        self.normaliser = float(cdf[-1])
        self.ts = ts
        self.cdf = cdf / cdf[-1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` times (float64) by inverse-CDF interpolation."""
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        i = torch.searchsorted(self.cdf, u).clamp(1, len(self.cdf) - 1)
        c0, c1 = self.cdf[i - 1], self.cdf[i]
        frac = (u - c0) / (c1 - c0).clamp_min(1e-300)
        return self.ts[i - 1] + frac * (self.ts[i] - self.ts[i - 1])


class LogNormalTimeSampler:
    """Draws ``t`` whose noise level ``s(t)`` is log-normal, ``ln s ~ N(p_mean, p_std^2)`` (Karras et al. 2022),
    clipped to the SDE's noise levels on ``[eps, T]``; works for any SDE with a noise level."""

    def __init__(self, sde: SDE, eps: float, p_mean: float = -1.2, p_std: float = 1.2) -> None:
        if not (math.isfinite(p_std) and p_std > 0) or not math.isfinite(p_mean):
            raise ValueError(f"p_mean must be finite and p_std finite and positive, got {p_mean!r}, {p_std!r}")
        self.sde, self.eps, self.p_mean, self.p_std = sde, eps, p_mean, p_std

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` times (float64)."""
        log_s = torch.randn(n, generator=generator, dtype=torch.float64) * self.p_std + self.p_mean
        t = self.sde.time_at_noise_level(torch.exp(log_s))
        return t.to(torch.float64).clamp(self.eps, self.sde.T)


def dsm_loss(
    model,
    sde: SDE,
    x: torch.Tensor,
    t: torch.Tensor,
    z: torch.Tensor,
    *,
    weighting: Literal["sigma2", "likelihood", "edm"] | LossWeighting = "sigma2",
    importance_sampled: bool = False,
    sigma_data: float = 0.5,
    class_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample denoising score-matching loss, summed over pixels (shape ``(B,)``).

    The network's output is read through its declared ``parametrization`` (score, noise, data or v) as the
    noise estimate ``z_hat`` (:func:`~scoreflow.models.parametrization.noise_estimate`), so
    ``||z - z_hat||^2 = std^2 ||s(x_t, t) - grad log p(x_t | x_0)||^2`` is the score loss whatever the network
    predicts. Weightings:

    ``sigma2``: the tutorial's ``lambda(t) = std(t)^2``, i.e. ``||s(x_t, t) std + z||^2``.
    ``likelihood``: ``lambda = g(t)^2``; with ``importance_sampled`` the ``t`` were drawn
    from :class:`ImportanceTimeSampler` and the weight is already accounted for.
    ``edm``: Karras et al.'s ``lambda(s) ||D - x_0||^2`` with ``lambda = (s^2 + sd^2) / (s sd)^2`` at noise level
    ``s``, i.e. ``(1 + s^2 / sd^2) ||z - z_hat||^2`` (unit weight on a preconditioned network's raw output); the
    times come from :class:`LogNormalTimeSampler`.
    A :class:`~scoreflow.training.weighting.LossWeighting` instance (a registered ``"weighting"``, plugins'
    included) gives the weight itself. ``class_labels`` (a class-conditional network's labels, ``NO_CLASS`` where
    dropped) are passed to the network.
    """
    if isinstance(weighting, str) and weighting not in WEIGHTINGS:
        raise ValueError(f"Unknown weighting {weighting!r}. Available: {', '.join(WEIGHTINGS)}.")
    mean, std = sde.marginal_prob(x, t)
    xt = mean + batch_broadcast(std, x) * z
    out = model(xt, t) if class_labels is None else model(xt, t, class_labels=class_labels)
    residual = sum_except_batch((z - noise_estimate(out, xt, t, sde, _parametrization(model))) ** 2)
    if not isinstance(weighting, str):  # a LossWeighting component
        w = weighting.weight(t)
        return residual if w is None else residual * w
    if weighting == "likelihood" and not importance_sampled:
        _, g = sde.sde(x, t)
        residual = residual * g**2 / std**2
    elif weighting == "edm":
        s = sde.noise_level(t)
        residual = residual * (1 + s**2 / sigma_data**2)
    return residual


def _parametrization(model) -> str:
    """The network's declared parameterisation (``"score"`` for a plain callable); DistributedDataParallel hides
    it on ``module``."""
    declared = getattr(model, "parametrization", None)
    if declared is None:
        declared = getattr(getattr(model, "module", None), "parametrization", "score")
    return declared
