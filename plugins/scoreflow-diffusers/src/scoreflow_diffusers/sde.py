"""A variance-preserving SDE whose noise levels are a discrete-time model's ``alphas_cumprod`` table.

A diffusers DDPM-family model is trained at timesteps ``i = 0 .. N-1`` with ``x_i = sqrt(abar_i) x_0 +
sqrt(1 - abar_i) eps``: in scoreflow's terms ``alpha_i = sqrt(abar_i)`` and the noise level
``s_i = sqrt((1 - abar_i) / abar_i)``. :class:`AlphasCumprodSDE` puts timestep ``i`` at time ``t = (i + 1) / N``
(so ``t = 1`` is the last trained timestep and ``t = 1 / N``, its ``default_eps``, the first) and interpolates
``log s`` linearly between neighbouring timesteps (k-diffusion's ``DiscreteSchedule``). The marginals
``x_t = alpha(t) (x_0 + s(t) z)`` with ``alpha = (1 + s^2)^(-1/2)`` are those of the VP SDE
``dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw`` with ``beta = d ln(1 + s^2) / dt``, which the samplers and the
likelihood use, so every scoreflow component runs on it unchanged. Below ``t = 1 / N`` (the clean data's side of the first
timestep, never trained) ``s^2`` falls linearly to 0 at ``t = 0``, so the marginals start at the data as the SDE's
drift and diffusion say; the bridged network refuses those times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import torch

import scoreflow


def _table(values: Sequence[float] | torch.Tensor) -> torch.Tensor:
    abar = torch.as_tensor(values, dtype=torch.float64).flatten().clone()
    if abar.numel() < 2:
        raise ValueError(f"alphas_cumprod needs at least 2 timesteps, got {abar.numel()}")
    if not bool(((abar > 0) & (abar < 1)).all()):
        raise ValueError("alphas_cumprod must lie in (0, 1) at every timestep")
    if not bool((abar[1:] < abar[:-1]).all()):
        raise ValueError("alphas_cumprod must decrease strictly from one timestep to the next")
    return abar


@attrs.define(kw_only=True, eq=False)
class AlphasCumprodSDE(scoreflow.SDE):
    """The VP SDE of a discrete ``alphas_cumprod`` table (see the module docstring).

    Capabilities: ``linear_marginals``, ``variance_preserving`` and ``discrete_betas`` (:meth:`beta` and DDPM's
    chain in :meth:`discretize`), so the VP plugin's ``ancestral`` predictor runs on it too.

    Attributes:
        alphas_cumprod: ``abar_i`` for the trained timesteps ``i = 0 .. N-1`` (strictly decreasing, in (0, 1)).
    """

    capabilities = frozenset({"linear_marginals", "variance_preserving", "discrete_betas"})

    alphas_cumprod: torch.Tensor = attrs.field(converter=_table)
    N: int = attrs.field(init=False)
    default_eps: float = attrs.field(init=False)
    log_levels: torch.Tensor = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self.N = int(self.alphas_cumprod.numel())
        self.default_eps = 1.0 / self.N
        self.log_levels = 0.5 * torch.log((1 - self.alphas_cumprod) / self.alphas_cumprod)

    # -- the clock: timestep i sits at t = (i + 1) / N -------------------------------------------------------
    def timestep(self, t: torch.Tensor) -> torch.Tensor:
        """The fractional diffusers timestep ``t N - 1`` at time ``t`` (not clamped)."""
        return t.to(torch.float64) * self.N - 1

    def _segment(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tau = self.timestep(t).clamp(0, self.N - 1)
        i = tau.floor().clamp(max=self.N - 2).long()
        frac = tau - i
        table = self.log_levels.to(tau.device)
        return table[i], table[i + 1], frac

    def log_noise_level(self, t: torch.Tensor) -> torch.Tensor:
        low, high, frac = self._segment(t)
        inside = low + frac * (high - low)
        before = self.log_levels[0] + 0.5 * torch.log((t.to(torch.float64) * self.N).clamp(min=0))  # s^2 = s_0^2 t N
        return torch.where(self.timestep(t) >= 0, inside, before)

    def noise_level(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_noise_level(t)).to(t.dtype)

    def marginal_scale(self, t: torch.Tensor) -> torch.Tensor:
        s2 = torch.exp(2 * self.log_noise_level(t))
        return torch.rsqrt(1 + s2).to(t.dtype)

    def marginal_prob(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s2 = torch.exp(2 * self.log_noise_level(t))
        alpha = torch.rsqrt(1 + s2)
        std = torch.sqrt(s2 / (1 + s2))
        return alpha.to(x0.dtype).view(-1, *([1] * (x0.dim() - 1))) * x0, std.to(x0.dtype)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """``beta(t) = d ln(1 + s^2) / dt``."""
        low, high, _ = self._segment(t)
        s2 = torch.exp(2 * self.log_noise_level(t))
        slope = (high - low) * self.N  # d ln s / dt on this segment
        s0_2 = torch.exp(2 * self.log_levels[0])
        before = s0_2 * self.N / (1 + s2)  # d ln(1 + s_0^2 t N) / dt
        return torch.where(self.timestep(t) >= 0, 2 * s2 / (1 + s2) * slope, before).to(t.dtype)

    def sde(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        beta = self.beta(t).to(x.dtype)
        return -0.5 * beta.view(-1, *([1] * (x.dim() - 1))) * x, torch.sqrt(beta)

    def time_at_noise_level(self, s: torch.Tensor) -> torch.Tensor:
        """Exact inverse of :meth:`noise_level` (``T`` above the last trained level)."""
        s = s.to(torch.float64)
        log_s = torch.log(s).clamp(float(self.log_levels[0]), float(self.log_levels[-1]))
        table = self.log_levels.to(log_s.device)
        i = (torch.searchsorted(table, log_s.contiguous(), right=True) - 1).clamp(0, self.N - 2)
        frac = (log_s - table[i]) / (table[i + 1] - table[i])
        before = (s / torch.exp(table[0])) ** 2 / self.N  # s^2 = s_0^2 t N below the first timestep
        return torch.where(s < torch.exp(table[0]), before, (i + frac + 1) / self.N)

    def langevin_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """``1 - beta_i``, the per-timestep ``alpha`` of the discrete chain (score_sde's VP corrector)."""
        return (1 - self.beta(t) / self.N).to(t.dtype)

    def discretize(self, x: torch.Tensor, t: torch.Tensor, dt: float | None = None):
        """DDPM's step ``x_i = sqrt(1 - b_i) x_{i-1} + sqrt(b_i) z`` with ``b_i = beta(t) dt`` (the chain the
        ``reverse_diffusion`` predictor reverses; ``ancestral`` takes the same ``b``)."""
        dt = self.T / self.N if dt is None else dt
        b = (self.beta(t) * dt).clamp(max=1.0).to(x.dtype)
        return (torch.sqrt(1 - b) - 1).view(-1, *([1] * (x.dim() - 1))) * x, torch.sqrt(b)

    def prior_sampling(self, shape, *, generator=None, device=None, dtype=None) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)

    def prior_logp(self, z: torch.Tensor) -> torch.Tensor:
        return self._gaussian_prior_logp(z, 1.0)

    def __repr__(self) -> str:
        return (f"AlphasCumprodSDE(N={self.N}, noise levels {math.exp(float(self.log_levels[0])):.4g} to "
                f"{math.exp(float(self.log_levels[-1])):.4g})")
