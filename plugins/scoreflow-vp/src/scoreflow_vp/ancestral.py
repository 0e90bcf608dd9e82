"""Ancestral sampling (DDPM, Ho et al. 2020) as a scoreflow predictor."""

from __future__ import annotations

import attrs
import torch

import scoreflow
from scoreflow.tensor import batch_broadcast, randn_like


@attrs.define(kw_only=True)
class AncestralSampling(scoreflow.Predictor):
    """DDPM's reverse step ``x <- (x + b score) / sqrt(1 - b) + sqrt(b) z`` with ``b = beta(t) |dt|``.

    Needs the SDE's discrete beta chain (the VP SDE offers it; sub-VP does not).
    """

    requires = frozenset({"discrete_betas"})

    def step(self, x, t, dt, *, sde, score, generator=None, state=None) -> scoreflow.Step:
        b = (sde.beta(t) * abs(dt)).clamp(max=0.999)
        b_ = batch_broadcast(b, x)
        x_mean = (x + b_ * score(x, t)) / torch.sqrt(1 - b_)
        return scoreflow.Step(x_mean + torch.sqrt(b_) * randn_like(x, generator), x_mean)
