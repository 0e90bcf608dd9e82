"""Denoising score matching losses and the time distributions they sample from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch

from scoreflow.tensor import batch_broadcast, sum_except_batch

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE

WEIGHTINGS = ("sigma2", "likelihood")


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


def sample_times(sde: SDE, n: int, eps: float, generator: torch.Generator | None,
                 importance: ImportanceTimeSampler | None = None) -> torch.Tensor:
    """``t ~ U(eps, T)``, or from ``importance`` when given (float64)."""
    if importance is not None:
        return importance.sample(n, generator)
    return torch.rand(n, generator=generator, dtype=torch.float64) * (sde.T - eps) + eps


def dsm_loss(
    model,
    sde: SDE,
    x: torch.Tensor,
    t: torch.Tensor,
    z: torch.Tensor,
    *,
    weighting: Literal["sigma2", "likelihood"] = "sigma2",
    importance_sampled: bool = False,
) -> torch.Tensor:
    """Per-sample denoising score-matching loss, summed over pixels (shape ``(B,)``).

    ``sigma2``: the tutorial's ``lambda(t) = std(t)^2``, i.e. ``||s(x_t, t) std + z||^2``.
    ``likelihood``: ``lambda = g(t)^2``; with ``importance_sampled`` the ``t`` were drawn
    from :class:`ImportanceTimeSampler` and the weight is already accounted for.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"Unknown weighting {weighting!r}. Available: {', '.join(WEIGHTINGS)}.")
    mean, std = sde.marginal_prob(x, t)
    xt = mean + batch_broadcast(std, x) * z
    residual = sum_except_batch((model(xt, t) * batch_broadcast(std, x) + z) ** 2)
    if weighting == "likelihood" and not importance_sampled:
        _, g = sde.sde(x, t)
        residual = residual * g**2 / std**2
    return residual
