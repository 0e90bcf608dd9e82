"""Annealed Langevin dynamics (Song & Ermon 2019, NCSN) as a scoreflow corrector."""

from __future__ import annotations

import attrs

import scoreflow
from scoreflow.tensor import batch_broadcast, randn_like


@attrs.define(kw_only=True)
class AnnealedLangevin(scoreflow.Corrector):
    """NCSN's corrector: ``x <- x + (a/2) score + sqrt(a) z`` with ``a = step_lr (std_t / sigma_min)^2``.

    ``sigma_min`` is the smallest noise level of the variance-exploding SDE (its
    ``sigma_min`` attribute, NCSN's sigma_L).

    Args:
        step_lr: The NCSN step size epsilon at the smallest noise level.
    """

    step_lr: float = attrs.field(default=2e-5, validator=attrs.validators.gt(0))
    requires = frozenset({"variance_exploding"})

    def step(self, x, t, *, sde, score, generator=None) -> scoreflow.Step:
        _, std = sde.marginal_prob(x, t)
        a = batch_broadcast(self.step_lr * (std / sde.sigma_min) ** 2, x)
        x_mean = x
        for _ in range(self.n_steps):
            x_mean = x + a / 2 * score(x, t)
            x = x_mean + a.sqrt() * randn_like(x, generator)
        return scoreflow.Step(x, x_mean)
