"""The variance-exploding SDE of Song et al. (2021)."""

from __future__ import annotations

import math

import attrs
import torch

from scoreflow.sde.base import SDE
from scoreflow.validators import positive_int


#: The noise levels a VE SDE may span: their squares (the variances) and ratios stay well inside float32.
NOISE_LEVEL_RANGE = (1e-10, 1e8)


def _positive(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be a finite positive number, got {value!r}")
    low, high = NOISE_LEVEL_RANGE
    if not low <= value <= high:
        raise ValueError(f"{attribute.name} must lie in [{low:g}, {high:g}] (its square is a float32 variance), "
                         f"got {value!r}")


@attrs.define(kw_only=True)
class VESDE(SDE):
    """``dx = sqrt(d[sigma^2(t)]/dt) dw`` with ``sigma(t) = sigma_min (sigma_max/sigma_min)^t``.

    The perturbation kernel is ``N(x0, (sigma(t)^2 - sigma(0)^2) I)`` (exact: it is the
    integral of ``g^2``) and the prior is ``N(0, (sigma_max^2 - sigma_min^2) I)``.
    """

    capabilities = frozenset({"linear_marginals", "variance_exploding"})

    sigma_min: float = attrs.field(default=0.01, validator=_positive)
    sigma_max: float = attrs.field(default=50.0, validator=_positive)
    N: int = attrs.field(default=1000, validator=positive_int)

    def __attrs_post_init__(self) -> None:
        if self.sigma_max <= self.sigma_min:
            raise ValueError(
                f"sigma_max must exceed sigma_min, got sigma_min={self.sigma_min}, sigma_max={self.sigma_max}"
            )

    @classmethod
    def tutorial(cls, sigma: float = 25.0) -> VESDE:
        """The classic notebook's ``dx = sigma^t dw``.

        It is this family with ``sigma_min = 1/sqrt(2 ln sigma)`` and
        ``sigma_max = sigma/sqrt(2 ln sigma)``: then ``g(t) = sigma^t`` and the
        marginal variance is ``(sigma^(2t) - 1) / (2 ln sigma)``.
        """
        if not (sigma > 1):
            raise ValueError(f"sigma must be > 1, got {sigma!r}")
        c = math.sqrt(2 * math.log(sigma))
        return cls(sigma_min=1 / c, sigma_max=sigma / c)

    @property
    def log_ratio(self) -> float:
        """``ln(sigma_max / sigma_min)``."""
        return math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """``sigma(t) = sigma_min (sigma_max / sigma_min)^t``."""
        return self.sigma_min * torch.exp(t * self.log_ratio)

    def marginal_std(self, t: torch.Tensor) -> torch.Tensor:
        """``sqrt(sigma(t)^2 - sigma_min^2)``, computed stably for small ``t``."""
        return self.sigma_min * torch.sqrt(torch.expm1(2 * t * self.log_ratio))

    def sde(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        diffusion = self.sigma(t) * math.sqrt(2 * self.log_ratio)
        return torch.zeros_like(x), diffusion

    def marginal_prob(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x0, self.marginal_std(t)

    def marginal_scale(self, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(t)

    def time_at_noise_level(self, s: torch.Tensor) -> torch.Tensor:
        """Closed form: ``t = ln(1 + s^2 / sigma_min^2) / (2 ln(sigma_max / sigma_min))``."""
        return torch.log1p((s / self.sigma_min) ** 2) / (2 * self.log_ratio)

    @property
    def prior_std(self) -> float:
        """Standard deviation of the prior, ``sqrt(sigma_max^2 - sigma_min^2)``."""
        return math.sqrt(self.sigma_max**2 - self.sigma_min**2)

    def prior_sampling(self, shape, *, generator=None, device=None, dtype=None) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype) * self.prior_std

    def prior_logp(self, z: torch.Tensor) -> torch.Tensor:
        return self._gaussian_prior_logp(z, self.prior_std)

    def discretize(self, x, t, dt=None):
        """Exact VE transition from ``t - dt`` to ``t``: ``f = 0``, ``G = sqrt(sigma_t^2 - sigma_{t-dt}^2)``."""
        dt = self.T / self.N if dt is None else dt
        prev = torch.clamp(t - dt, min=0.0)
        G = torch.sqrt(torch.clamp(self.marginal_std(t) ** 2 - self.marginal_std(prev) ** 2, min=0.0))
        return torch.zeros_like(x), G

    def __repr__(self) -> str:
        return f"VESDE(sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g})"


