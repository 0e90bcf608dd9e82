"""Ancestral sampling (DDPM, Ho et al. 2020) as a scoreflow predictor."""

from __future__ import annotations


import attrs
import torch

import scoreflow


@attrs.define(kw_only=True)
class AncestralSampling(scoreflow.Predictor):
    """DDPM's reverse step ``x <- (x + b score) / sqrt(1 - b) + sqrt(b) z`` with ``b = beta(t) |dt|``.

    Needs the SDE's discrete beta chain (the VP SDE offers it; sub-VP does not).
    """

    requires = frozenset({"discrete_betas"})

    def step(self, x, t, dt, *, sde, score, generator=None) -> scoreflow.Step:
        b = (sde.beta(t) * abs(dt)).clamp(max=0.999)
        b_ = b.reshape(-1, *[1] * (x.dim() - 1))
        x_mean = (x + b_ * score(x, t)) / torch.sqrt(1 - b_)
        noise = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
        return scoreflow.Step(x_mean + torch.sqrt(b_) * noise, x_mean)


