"""The adaptive-step reverse-SDE solver of Jolicoeur-Martineau et al. (2021), "Gotta go fast"."""

from __future__ import annotations

import attrs
import torch

import scoreflow
from scoreflow.tensor import batch_broadcast, randn_like


@attrs.define(kw_only=True)
class GottaGoFast(scoreflow.TrajectorySolver):
    """Improved Euler with extrapolation and per-sample step sizes on the reverse SDE.

    Each sample proposes ``x' = x + h f(x, t) + sqrt(h) g(t) z`` (Euler-Maruyama) and
    ``x'' = x + h f(x', t - h) + sqrt(h) g(t - h) z`` (same noise), takes
    ``x_hi = (x' + x'') / 2``, and measures ``E = ||(x' - x_hi) / delta||_2 / sqrt(D)``
    with ``delta = max(abs_tol, rel_tol * max(|x'|, |x'_prev|))``. The step is
    accepted when ``E <= 1``; either way ``h <- min(t - eps, safety * h * E^(-exponent))``.
    Finishes with a denoising step (``x + std^2 score`` scaled by ``alpha``).

    Args:
        abs_tol: Absolute tolerance (the paper uses 1/128 for images in [-1, 1]).
        rel_tol: Relative tolerance.
        safety: Safety factor theta.
        exponent: Step-size exponent r.
        h_init: Initial step size.
        max_iters: Give up (with an error) after this many proposals.
    """

    abs_tol: float = 0.0078
    rel_tol: float = 0.05
    safety: float = 0.9
    exponent: float = 0.9
    h_init: float = 0.01
    max_iters: int = 10_000
    requires = frozenset({"linear_marginals"})
    conformance_dim = 64  # its per-sample error norm needs many dimensions (see README)

    def solve(self, x, t_start, t_end, num_steps, *, sde, score, generator=None):
        b = x.shape[0]
        t = torch.full((b,), float(t_start), dtype=x.dtype, device=x.device)
        h = torch.full((b,), self.h_init, dtype=x.dtype, device=x.device)
        x_prev = x.clone()
        rsde = sde.reverse(score)
        nfe = 0
        dim = x[0].numel()
        for _ in range(self.max_iters):
            active = t > t_end + 1e-7
            if not active.any():
                break
            h = torch.minimum(h, t - t_end).clamp_min(0)
            z = randn_like(x, generator)
            drift, g = rsde.sde(x, t)
            x1 = x - batch_broadcast(h, x) * drift + batch_broadcast(h.sqrt() * g, x) * z
            drift2, g2 = rsde.sde(x1, t - h)
            x2 = x - batch_broadcast(h, x) * drift2 + batch_broadcast(h.sqrt() * g2, x) * z
            nfe += 2
            x_hi = (x1 + x2) / 2
            delta = torch.maximum(torch.full_like(x1, self.abs_tol),
                                  self.rel_tol * torch.maximum(x1.abs(), x_prev.abs()))
            err = ((x1 - x_hi) / delta).reshape(b, -1).norm(dim=1) / dim**0.5
            accept = (err <= 1) & active
            x = torch.where(batch_broadcast(accept, x), x_hi, x)
            x_prev = torch.where(batch_broadcast(accept, x), x1, x_prev)
            t = torch.where(accept, t - h, t)
            h = torch.where(active, self.safety * h * err.clamp_min(1e-10) ** (-self.exponent), h)
        else:
            raise RuntimeError(f"GottaGoFast did not reach t={t_end} in {self.max_iters} proposals; "
                               "loosen abs_tol/rel_tol")
        t_final = torch.full((b,), float(t_end), dtype=x.dtype, device=x.device)
        alpha = batch_broadcast(sde.marginal_scale(t_final), x)
        _, std = sde.marginal_prob(x, t_final)
        x = (x + batch_broadcast(std, x) ** 2 * score(x, t_final)) / alpha
        return x, nfe + 1
