"""Predictor, corrector and whole-trajectory solver interfaces.

Predictors and correctors are stateless attrs objects holding hyperparameters;
the SDE and the score function are passed on every step, so one instance can be
reused across models and calls. A multistep or higher-order predictor keeps what it
remembers between steps (past denoiser outputs, the grid's noise levels) in a state
object of its own type: the sampler asks it for a fresh one at the start of every
call (:meth:`Predictor.init_state`, which receives the call's :class:`GridPosition`)
and hands it back to every :meth:`Predictor.step`. Nothing else reads it.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

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


@attrs.define
class GridPosition:
    """Where one sampling call is on its grid: the sampler moves ``index`` before every step.

    Created fresh for every call and given to :meth:`Predictor.init_state` and
    :meth:`Condition.init_state <scoreflow.Condition.init_state>`, so a component's state can read the grid.

    Attributes:
        times: The whole decreasing grid ``t_0 > ... > t_N`` in float64 (exact, whatever the sampling dtype).
        index: The step being taken: from ``times[index]`` to ``times[index + 1]``.
    """

    times: torch.Tensor
    index: int = 0

    @property
    def t(self) -> float:
        """The current time ``times[index]``."""
        return float(self.times[self.index])

    @property
    def t_next(self) -> float:
        """The time this step ends at, ``times[index + 1]``."""
        return float(self.times[self.index + 1])

    @property
    def is_last(self) -> bool:
        """Whether this step ends the grid."""
        return self.index == len(self.times) - 2


class Predictor(_Component, abc.ABC):
    """Moves ``x`` from ``t`` to ``t + dt`` (``dt < 0``) along the reverse-time SDE or its probability-flow ODE."""

    #: Score evaluations per call of :meth:`step` (nominal: :class:`~scoreflow.Sampler` counts the actual calls).
    nfe_per_step: ClassVar[int] = 1
    #: Data dimension the statistical conformance check should use (2: the 2-D ring oracle;
    #: methods designed for high-dimensional data, e.g. per-sample adaptive steps, ask for 64).
    conformance_dim: ClassVar[int] = 2
    #: Schedule used when neither the sampler nor the SDE's user chose one (``None``: the SDE's default).
    #: Few-step ODE solvers prefer ``"karras"``.
    preferred_schedule: ClassVar[str | None] = None

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
        state: Any = None,
    ) -> Step:
        """One reverse step from time ``t`` (shape ``(B,)``) by ``dt < 0``; ``state`` is what
        :meth:`init_state` returned for this sampling call (``None`` for a predictor that keeps none)."""

    def init_state(self, grid: GridPosition, sde: SDE) -> Any:
        """A fresh state for one sampling call on ``grid`` (kept by a multistep or higher-order method: its past
        outputs, the grid's noise levels), or ``None`` (the default): the predictor remembers nothing between
        steps. Only this predictor reads it."""
        return None

    @property
    def stateful(self) -> bool:
        """Whether this predictor keeps a state across steps (it overrides :meth:`init_state`): it cannot repeat
        steps (``resample``) or run under a condition that reorders the batch."""
        return type(self).init_state is not Predictor.init_state

    def finish(self, x: torch.Tensor, *, sde: SDE, score: ScoreFn, state: Any = None) -> torch.Tensor | None:
        """The denoised output after the last step (``Sampler(denoise=True)``), or ``None`` to return the
        last step's ``x_mean``. ODE solvers use it for the final step to noise level 0 (one evaluation)."""
        return None


class TrajectorySolver(_Component, abc.ABC):
    """Integrates the whole reverse trajectory at once (adaptive torchsde methods, Gotta Go Fast).

    It is registered beside the predictors, so ``Sampler(predictor="torchsde")`` selects it, but it
    has no :meth:`~Predictor.step`: :class:`~scoreflow.Sampler` hands it the prior sample and the time
    span, and it chooses its own steps. It cannot be combined with a corrector, a schedule or a grid.
    """

    #: Data dimension for the statistical conformance check (see :attr:`Predictor.conformance_dim`).
    conformance_dim: ClassVar[int] = 2

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
