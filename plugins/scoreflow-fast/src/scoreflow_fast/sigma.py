"""The scaled variable every fast solver works in.

For an SDE with ``x_t = alpha(t) x_0 + std(t) z`` define ``x~ = x / alpha`` and
``s = std / alpha``. Then ``x~ = x_0 + s z`` (a VE process in ``s``) and the
probability-flow ODE is ``dx~/ds = eps(x~, s) = (x~ - D(x~, s)) / s`` with the
denoiser ``D = x~ + s^2 alpha score(alpha x~, t(s))`` (Karras et al. 2022). This
covers the VE SDE (``alpha = 1``) and VP/sub-VP alike; ``t(s)`` is inverted
by ``SDE.time_at_noise_level`` (closed form for VE/VP/sub-VP, bisection otherwise),
so any SDE with linear marginals works.
"""

from __future__ import annotations

import torch


class Denoiser:
    """``D(x~, s)`` and ``eps(x~, s)`` from a score function; counts evaluations."""

    def __init__(self, sde, score) -> None:
        self.sde, self.score = sde, score
        self.nfe = 0

    def __call__(self, x: torch.Tensor, s: float) -> torch.Tensor:
        """Data prediction ``D(x~, s)``."""
        t = self.sde.time_at_noise_level(torch.tensor([s], dtype=torch.float64))
        t_b = t.to(x.dtype).expand(x.shape[0]).to(x.device)
        alpha = float(self.sde.marginal_scale(t)[0])
        self.nfe += 1
        return x + s**2 * alpha * self.score(alpha * x, t_b)

    def eps(self, x: torch.Tensor, s: float) -> torch.Tensor:
        """Noise prediction ``(x~ - D) / s``."""
        return (x - self(x, s)) / s
