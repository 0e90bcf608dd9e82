"""Built-in correctors: Langevin MCMC and none."""

from __future__ import annotations

import attrs
import torch

from scoreflow.tensor import batch_broadcast, randn_like
from scoreflow.sampling.base import Corrector, Step


@attrs.define(kw_only=True)
class Langevin(Corrector):
    """Langevin MCMC with the step size set by a target signal-to-noise ratio.

    Each step: ``eps = 2 alpha (snr ||z|| / ||score||)^2`` (norms averaged over the
    batch), then ``x <- x + eps score + sqrt(2 eps) z`` (Song et al. 2021, Alg. 4).
    """

    def step(self, x, t, *, sde, score, generator=None) -> Step:
        alpha = sde.langevin_alpha(t)
        x_mean = x
        for _ in range(self.n_steps):
            grad = score(x, t)
            noise = randn_like(x, generator)
            grad_norm = torch.linalg.vector_norm(grad.reshape(grad.shape[0], -1), dim=-1).mean()
            noise_norm = torch.linalg.vector_norm(noise.reshape(noise.shape[0], -1), dim=-1).mean()
            step_size = 2 * alpha * (self.snr * noise_norm / grad_norm.clamp_min(torch.finfo(x.dtype).tiny)) ** 2
            step_size = batch_broadcast(step_size, x)
            x_mean = x + step_size * grad
            x = x_mean + torch.sqrt(2 * step_size) * noise
        return Step(x, x_mean)


@attrs.define(kw_only=True)
class NoneCorrector(Corrector):
    """Leaves ``x`` unchanged (predictor-only sampling)."""

    @property
    def nfe_per_step(self) -> int:
        return 0

    def step(self, x, t, *, sde, score, generator=None) -> Step:
        return Step(x, x)
