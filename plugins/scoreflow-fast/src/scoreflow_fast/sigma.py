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


def karras_sigmas(s_max: float, s_min: float, n: int, rho: float = 7.0) -> torch.Tensor:
    """``n`` noise levels from ``s_max`` down to ``s_min``, dense near ``s_min`` (EDM's rho schedule)."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    return (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho


def log_snr_sigmas(s_max: float, s_min: float, n: int) -> torch.Tensor:
    """``n`` noise levels uniform in ``log s`` (DPM-Solver's uniform log-SNR schedule)."""
    return torch.exp(torch.linspace(torch.log(torch.tensor(s_max)), torch.log(torch.tensor(s_min)), n,
                                    dtype=torch.float64))


SCHEDULES = {"karras": karras_sigmas, "log_snr": log_snr_sigmas}


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


def sigma_grid(sde, t_start: float, t_end: float, num_steps: int, schedule: str, rho: float = 7.0) -> list[float]:
    """``num_steps + 1`` scaled noise levels from ``s(t_start)`` to ``s(t_end)``."""
    ends = sde.noise_level(torch.tensor([t_start, t_end], dtype=torch.float64))
    if schedule == "karras":
        return karras_sigmas(float(ends[0]), float(ends[1]), num_steps + 1, rho).tolist()
    return SCHEDULES[schedule](float(ends[0]), float(ends[1]), num_steps + 1).tolist()
