"""The variance-preserving SDE (Song et al. 2021), DDPM's continuous-time limit."""

from __future__ import annotations

import attrs
import torch

import scoreflow
from scoreflow.tensor import batch_broadcast


@attrs.define(kw_only=True)
class VPSDE(scoreflow.SDE):
    """``dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw`` with linear ``beta``; prior ``N(0, I)``."""

    capabilities = frozenset({"linear_marginals", "variance_preserving", "discrete_betas"})

    beta_min: float = attrs.field(default=0.1, validator=attrs.validators.gt(0))
    beta_max: float = attrs.field(default=20.0, validator=attrs.validators.gt(0))
    N: int = attrs.field(default=1000, validator=attrs.validators.gt(0))

    def __attrs_post_init__(self) -> None:
        if self.beta_max <= self.beta_min:
            raise ValueError(f"beta_max must exceed beta_min, got {self.beta_min}, {self.beta_max}")

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """``beta(t) = beta_min + t (beta_max - beta_min)``."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _log_mean_coeff(self, t: torch.Tensor) -> torch.Tensor:
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def sde(self, x, t):
        beta = self.beta(t)
        return -0.5 * batch_broadcast(beta, x) * x, torch.sqrt(beta)

    def marginal_scale(self, t):
        return torch.exp(self._log_mean_coeff(t))

    def marginal_prob(self, x0, t):
        log_coeff = self._log_mean_coeff(t)
        mean = batch_broadcast(torch.exp(log_coeff), x0) * x0
        std = torch.sqrt(-torch.expm1(2 * log_coeff))
        return mean, std

    def prior_sampling(self, shape, *, generator=None, device=None, dtype=None):
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)

    def prior_logp(self, z):
        return self._gaussian_prior_logp(z, 1.0)

    def discretize(self, x, t, dt=None):
        """DDPM's step ``x_i = sqrt(1 - b_i) x_{i-1} + sqrt(b_i) z`` with ``b_i = beta(t) dt``."""
        dt = self.T / self.N if dt is None else dt
        b = (self.beta(t) * dt).clamp(max=1.0)
        f = batch_broadcast(torch.sqrt(1 - b) - 1, x) * x
        return f, torch.sqrt(b)

    def _time_of_log_coeff(self, log_coeff: torch.Tensor) -> torch.Tensor:
        """Solve ``-(b1 - b0) t^2 / 4 - b0 t / 2 = log_coeff`` for ``t >= 0``."""
        a, b = 0.25 * (self.beta_max - self.beta_min), 0.5 * self.beta_min
        return (-b + torch.sqrt(b**2 - 4 * a * log_coeff)) / (2 * a)

    def time_at_noise_level(self, s):
        """Closed form of the inverse of ``s = sqrt(1 - alpha^2) / alpha``."""
        return self._time_of_log_coeff(-0.5 * torch.log1p(s**2))

    def langevin_alpha(self, t):
        """``alpha_i = 1 - beta_i`` of the matching discrete chain (score_sde's VP corrector)."""
        return 1 - self.beta(t) * (self.T / self.N)

    def __repr__(self) -> str:
        return f"VPSDE(beta_min={self.beta_min:g}, beta_max={self.beta_max:g})"


@attrs.define(kw_only=True)
class SubVPSDE(VPSDE):
    """Sub-VP SDE: VP's drift with diffusion ``sqrt(beta(t) (1 - e^{-2 int_0^t beta}))``.

    Its marginal std is ``1 - alpha(t)^2`` (below VP's ``sqrt(1 - alpha^2)``), which gives
    better likelihoods (Song et al. 2021, section 3.4).
    """

    capabilities = frozenset({"linear_marginals"})

    def sde(self, x, t):
        drift, _ = super().sde(x, t)
        discount = -torch.expm1(-2 * self.beta_min * t - (self.beta_max - self.beta_min) * t**2)
        return drift, torch.sqrt(self.beta(t) * discount)

    def marginal_prob(self, x0, t):
        log_coeff = self._log_mean_coeff(t)
        mean = batch_broadcast(torch.exp(log_coeff), x0) * x0
        return mean, -torch.expm1(2 * log_coeff)

    def time_at_noise_level(self, s):
        """Closed form: ``s = (1 - alpha^2) / alpha`` gives ``alpha = (sqrt(s^2 + 4) - s) / 2``."""
        return self._time_of_log_coeff(torch.log((torch.sqrt(s**2 + 4) - s) / 2))

    def discretize(self, x, t, dt=None):
        """Euler-Maruyama discretisation (sub-VP has no DDPM chain)."""
        return scoreflow.SDE.discretize(self, x, t, dt)

    def __repr__(self) -> str:
        return f"SubVPSDE(beta_min={self.beta_min:g}, beta_max={self.beta_max:g})"
