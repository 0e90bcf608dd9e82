"""The forward-SDE interface, with score_sde_pytorch's method names."""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from scoreflow.tensor import batch_broadcast, sum_except_batch

if TYPE_CHECKING:
    from scoreflow.sde.reverse import ReverseSDE

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class SDE(abc.ABC):
    """A forward diffusion ``dx = f(x, t) dt + g(t) dw`` on ``t in [0, T]``.

    Every method works for tensors of any rank with ``t`` of shape ``(B,)``.
    Subclasses implement :meth:`sde`, :meth:`marginal_prob`, :meth:`prior_sampling`
    and :meth:`prior_logp`; :meth:`discretize` has a generic Euler default.

    ``capabilities`` names what the SDE offers beyond this interface; components
    declare what they ``require`` of it. Names in use: ``"linear_marginals"``
    (``x_t = alpha(t) x_0 + std(t) z``, so :meth:`marginal_scale` is exact),
    ``"variance_exploding"``, ``"variance_preserving"``, ``"discrete_betas"``.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: The time schedule samplers use unless told otherwise (a ``"schedule"`` name or instance). A plugin SDE
    #: whose noise level is not exponential in ``t`` should name one that is uniform in it, e.g. ``"log_sigma"``.
    default_schedule: ClassVar[str] = "uniform_t"
    #: Where samplers stop by default (the score is singular at ``t = 0``): choose the time at which the noise
    #: level is small against the data's scale (1e-3 for the built-ins, noise level 0.0013 for ``ve``).
    default_eps: ClassVar[float] = 1e-3
    #: Number of discretisation steps assumed by :meth:`discretize` when no ``dt`` is given.
    N: int = 1000

    @property
    def T(self) -> float:  # noqa: N802  (score_sde's name)
        """End time of the forward process."""
        return 1.0

    @abc.abstractmethod
    def sde(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Drift ``f(x, t)`` (shape of ``x``) and diffusion ``g(t)`` (shape ``(B,)``)."""

    @abc.abstractmethod
    def marginal_prob(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (shape of ``x0``) and std (shape ``(B,)``) of ``p_0t(x_t | x_0)``."""

    @abc.abstractmethod
    def prior_sampling(
        self,
        shape: tuple[int, ...] | torch.Size,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Draw ``x_T`` from the prior ``p_T``."""

    @abc.abstractmethod
    def prior_logp(self, z: torch.Tensor) -> torch.Tensor:
        """Log-density of the prior at ``z``, one value per sample (shape ``(B,)``)."""

    def discretize(
        self, x: torch.Tensor, t: torch.Tensor, dt: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward step ``x_{t+dt} = x_t + f_i + G_i z``: returns ``(f_i, G_i)``.

        The default is the Euler-Maruyama discretisation with ``dt = T / N``.
        """
        dt = self.T / self.N if dt is None else dt
        drift, diffusion = self.sde(x, t)
        return drift * dt, diffusion * math.sqrt(dt)

    def reverse(self, score: ScoreFn, probability_flow: bool = False) -> ReverseSDE:
        """The reverse-time SDE (or probability-flow ODE) driven by ``score(x, t)``."""
        from scoreflow.sde.reverse import ReverseSDE

        return ReverseSDE(self, score, probability_flow=probability_flow)

    # -- capability methods with defaults (override instead of isinstance checks) --
    def langevin_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """Step-size scale of the Langevin corrector at ``t`` (1 for VE; ``alpha_t`` for VP)."""
        return torch.ones_like(t)

    def marginal_scale(self, t: torch.Tensor) -> torch.Tensor:
        """``alpha(t)`` with mean ``= alpha(t) x0`` for linear SDEs, shape ``(B,)``."""
        mean, _ = self.marginal_prob(torch.ones(t.shape[0], 1, dtype=t.dtype, device=t.device), t)
        return mean[:, 0]

    def noise_level(self, t: torch.Tensor) -> torch.Tensor:
        """``s(t) = std(t) / alpha(t)``, the noise level of ``x / alpha`` (``(B,)``)."""
        _, std = self.marginal_prob(torch.zeros(t.shape[0], 1, dtype=t.dtype, device=t.device), t)
        return std / self.marginal_scale(t)

    def time_at_noise_level(self, s: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`noise_level` on ``[0, T]`` (float64 bisection; override with a closed form)."""
        s = s.to(torch.float64)
        lo, hi = torch.zeros_like(s), torch.full_like(s, self.T)
        for _ in range(60):
            mid = (lo + hi) / 2
            above = self.noise_level(mid) > s
            hi = torch.where(above, mid, hi)
            lo = torch.where(above, lo, mid)
        return (lo + hi) / 2

    def diffusion_depends_on_x(self) -> bool:
        """Whether ``g`` depends on ``x`` (it does not for VE/VP, so Ito equals Stratonovich)."""
        return False

    def _gaussian_prior_logp(self, z: torch.Tensor, std: float) -> torch.Tensor:
        dim = z[0].numel()
        return -0.5 * dim * math.log(2 * math.pi * std**2) - sum_except_batch(z**2) / (2 * std**2)

    def perturb(
        self, x0: torch.Tensor, t: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample ``x_t ~ p_0t(. | x0)``; returns ``(x_t, noise z, std)``."""
        mean, std = self.marginal_prob(x0, t)
        z = torch.randn(x0.shape, dtype=x0.dtype, device=x0.device, generator=generator)
        return mean + batch_broadcast(std, x0) * z, z, std


def final_time(sde: Any, eps: float | None = None) -> float:
    """Where sampling stops and the likelihood integral starts on ``sde``: ``eps`` if given, else the SDE's
    ``default_eps`` (1e-3 for an SDE-like object that declares none)."""
    return float(getattr(sde, "default_eps", 1e-3)) if eps is None else float(eps)
