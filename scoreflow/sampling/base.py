"""Predictor and corrector interfaces.

Predictors and correctors are stateless attrs objects holding hyperparameters;
the SDE and the score function are passed on every step, so one instance can be
reused across models.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import attrs
import torch

from scoreflow.errors import IncompatibleComponentsError

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE, ScoreFn


class Step(NamedTuple):
    """Result of one step: the noisy state ``x`` and its noise-free mean ``x_mean``."""

    x: torch.Tensor
    x_mean: torch.Tensor


class _Component:
    """Shared by predictors and correctors: requirement checks against an SDE."""

    #: Capabilities the SDE must offer (see :attr:`scoreflow.SDE.capabilities`).
    requires: ClassVar[frozenset[str]] = frozenset()

    def check_sde(self, sde: SDE) -> None:
        """Raise :class:`IncompatibleComponentsError` if ``sde`` lacks a required capability."""
        missing = self.requires - sde.capabilities
        if missing:
            raise IncompatibleComponentsError(
                f"{type(self).__name__} requires SDE capabilities {sorted(missing)} that "
                f"{type(sde).__name__} does not offer (it offers {sorted(sde.capabilities) or 'none'})"
            )


class Predictor(_Component, abc.ABC):
    """Moves ``x`` from ``t`` to ``t + dt`` (``dt < 0``) along the reverse-time SDE."""

    #: Score evaluations per call of :meth:`step`.
    nfe_per_step: ClassVar[int] = 1
    #: Data dimension the statistical conformance check should use (2: the 2-D ring oracle;
    #: methods designed for high-dimensional data, e.g. per-sample adaptive steps, ask for 64).
    conformance_dim: ClassVar[int] = 2

    @abc.abstractmethod
    def step(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        dt: float,
        *,
        sde: SDE,
        score: ScoreFn,
        generator: torch.Generator | None = None,
    ) -> Step:
        """One reverse step from time ``t`` (shape ``(B,)``) by ``dt < 0``."""


class TrajectorySolver(Predictor):
    """A predictor that integrates the whole reverse trajectory at once (e.g. torchsde).

    :class:`~scoreflow.Sampler` hands it the prior sample and the time span
    instead of stepping it; correctors cannot be interleaved with it.
    """

    @abc.abstractmethod
    def solve(
        self,
        x: torch.Tensor,
        t_start: float,
        t_end: float,
        num_steps: int,
        *,
        sde: SDE,
        score: ScoreFn,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, int]:
        """Integrate from ``t_start`` down to ``t_end``; returns ``(x, nfe)``."""

    def step(self, x, t, dt, *, sde, score, generator=None) -> Step:
        t0 = float(t.reshape(-1)[0])
        out, _ = self.solve(x, t0, t0 + dt, 1, sde=sde, score=score, generator=generator)
        return Step(out, out)


@attrs.define(kw_only=True)
class Corrector(_Component, abc.ABC):
    """Refines ``x`` toward ``p_t`` at fixed ``t`` with score-based MCMC.

    Attributes:
        snr: Target signal-to-noise ratio that sets the step size.
        n_steps: MCMC steps per noise level (each one score evaluation).
    """

    snr: float = attrs.field(default=0.15, validator=attrs.validators.gt(0))  # the tutorial's value
    n_steps: int = attrs.field(default=1, validator=attrs.validators.ge(0))

    @property
    def nfe_per_step(self) -> int:
        """Score evaluations per call of :meth:`step`."""
        return self.n_steps

    @abc.abstractmethod
    def step(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        *,
        sde: SDE,
        score: ScoreFn,
        generator: torch.Generator | None = None,
    ) -> Step:
        """Run ``n_steps`` MCMC steps at time ``t``."""
