"""Loss weightings as components: where training draws its times and what weight each draw gets.

The denoising score-matching loss of one draw is ``weight(t) ||z - z_hat||^2`` (``z_hat`` the network's noise
estimate, whatever it predicts), with ``t`` from :meth:`LossWeighting.sample_times`. The built-ins are
registered by name under the ``"weighting"`` kind like any plugin's: ``sigma2`` (the tutorial's), ``likelihood``
(``lambda = g^2``, optionally importance-sampled) and ``edm`` (Karras et al.'s, log-normal noise levels). A plugin
adds its own with the ``scoreflow_register_weightings`` hook and a training config selects it with
``weighting = "name"`` and ``weighting_options = {...}``.
"""

from __future__ import annotations

import abc
import math
from typing import TYPE_CHECKING

import torch

from scoreflow.training.losses import ImportanceTimeSampler, LogNormalTimeSampler

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE


class LossWeighting(abc.ABC):
    """How the training loss weighs noise levels.

    :meth:`bind` is called once with the run's SDE and smallest time; then :meth:`sample_times` draws each
    batch's times and :meth:`weight` gives each draw's weight (``None``: all 1).
    """

    sde: SDE
    eps: float

    def bind(self, sde: SDE, eps: float) -> LossWeighting:
        """Attach the run's SDE and smallest training time (and precompute what depends on them)."""
        self.sde, self.eps = sde, float(eps)
        return self

    def sample_times(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """``n`` training times (float64); uniform on ``[eps, T]`` unless overridden."""
        return torch.rand(n, generator=generator, dtype=torch.float64) * (self.sde.T - self.eps) + self.eps

    @abc.abstractmethod
    def weight(self, t: torch.Tensor) -> torch.Tensor | None:
        """Per-draw weight of ``||z - z_hat||^2`` at times ``t`` (shape ``(B,)``), or ``None`` for 1."""


class Sigma2Weighting(LossWeighting):
    """The tutorial's ``lambda = std^2``: ``||s std + z||^2`` with ``t ~ U(eps, T)``."""

    def weight(self, t: torch.Tensor) -> None:
        return None


class LikelihoodWeighting(LossWeighting):
    """``lambda = g^2`` (Song et al. 2021): the loss bounds the negative log-likelihood. With
    ``importance_sampling`` the times are drawn with density ``g^2 / std^2`` and every weight is 1."""

    def __init__(self, importance_sampling: bool = True) -> None:
        if not isinstance(importance_sampling, bool):
            raise ValueError(f"importance_sampling must be true or false, got {importance_sampling!r}")
        self.importance_sampling = importance_sampling
        self._sampler: ImportanceTimeSampler | None = None

    def bind(self, sde: SDE, eps: float) -> LossWeighting:
        super().bind(sde, eps)
        self._sampler = ImportanceTimeSampler(sde, eps) if self.importance_sampling else None
        return self

    def sample_times(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return self._sampler.sample(n, generator) if self._sampler else super().sample_times(n, generator)

    def weight(self, t: torch.Tensor) -> torch.Tensor | None:
        if self._sampler is not None:
            return None
        ones = torch.ones(t.shape[0], 1, dtype=t.dtype, device=t.device)
        _, g = self.sde.sde(ones, t)
        _, std = self.sde.marginal_prob(ones, t)
        return g**2 / std**2


class EDMWeighting(LossWeighting):
    """Karras et al. (2022): ``ln s ~ N(p_mean, p_std^2)`` and ``lambda(s) ||D - x_0||^2`` with
    ``lambda = (s^2 + sd^2) / (s sd)^2``, i.e. weight ``1 + s^2 / sd^2`` on ``||z - z_hat||^2``."""

    def __init__(self, p_mean: float = -1.2, p_std: float = 1.2, sigma_data: float = 0.5) -> None:
        for name, value, positive in (("p_mean", p_mean, False), ("p_std", p_std, True),
                                      ("sigma_data", sigma_data, True)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or (positive and value <= 0):
                raise ValueError(f"{name} must be a finite{' positive' if positive else ''} number, got {value!r}")
        self.p_mean, self.p_std, self.sigma_data = float(p_mean), float(p_std), float(sigma_data)
        self._sampler: LogNormalTimeSampler | None = None

    def bind(self, sde: SDE, eps: float) -> LossWeighting:
        super().bind(sde, eps)
        self._sampler = LogNormalTimeSampler(sde, eps, self.p_mean, self.p_std)
        return self

    def sample_times(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return self._sampler.sample(n, generator)

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        return 1 + self.sde.noise_level(t) ** 2 / self.sigma_data**2
