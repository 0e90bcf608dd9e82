"""Built-in predictors: Euler-Maruyama, reverse diffusion and none."""

from __future__ import annotations

import math

import attrs

from scoreflow.tensor import batch_broadcast, randn_like
from scoreflow.sampling.base import Predictor, Step


@attrs.define(kw_only=True)
class EulerMaruyama(Predictor):
    """Euler-Maruyama on the reverse SDE: ``x + drift dt + g sqrt(|dt|) z``."""

    def step(self, x, t, dt, *, sde, score, generator=None, state=None) -> Step:
        drift, diffusion = sde.reverse(score).sde(x, t)
        x_mean = x + drift * dt
        noise = batch_broadcast(diffusion, x) * math.sqrt(abs(dt)) * randn_like(x, generator)
        return Step(x_mean + noise, x_mean)


@attrs.define(kw_only=True)
class ReverseDiffusion(Predictor):
    """Reverse of the SDE's own discretisation: ``x - (f - G^2 score) + G z`` (Song et al. 2021)."""

    def step(self, x, t, dt, *, sde, score, generator=None, state=None) -> Step:
        f, G = sde.reverse(score).discretize(x, t, abs(dt))
        x_mean = x - f
        return Step(x_mean + batch_broadcast(G, x) * randn_like(x, generator), x_mean)


@attrs.define(kw_only=True)
class NonePredictor(Predictor):
    """Leaves ``x`` unchanged (corrector-only sampling)."""

    nfe_per_step = 0

    def step(self, x, t, dt, *, sde, score, generator=None, state=None) -> Step:
        return Step(x, x)
