"""Sampling with a solver that takes the whole reverse trajectory at once (adaptive torchsde methods, Gotta Go
Fast): it chooses its own steps, so there is no grid, corrector or per-step condition."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import torch

from scoreflow.errors import DroppedOptionsError, IncompatibleComponentsError
from scoreflow.models.base import ScoreModel
from scoreflow.sampling.base import TrajectorySolver
from scoreflow.sampling.conditioning import Condition
from scoreflow.sampling.noising import starting_state
from scoreflow.sampling.predictor_corrector import resolve_component, resolve_condition
from scoreflow.sampling.protocol import SampleResult, StepCallback, begin_sampling, check_shape, final_report
from scoreflow.sampling.schedules import check_start
from scoreflow.sde.base import final_time
from scoreflow.tensor import check_finite
from scoreflow.validators import check_eps, positive_int, sde_time

if TYPE_CHECKING:
    from scoreflow.plugins import PluginHost
    from scoreflow.sde.base import SDE


@attrs.define(kw_only=True)
class TrajectorySolverSampler:
    """Sampling with a :class:`~scoreflow.TrajectorySolver` from the start time down to ``eps``.

    ``sf.Sampler(predictor="torchsde")`` builds one. The solver is given by its ``trajectory_solver`` name
    (resolved here) or as an instance.

    Attributes:
        solver: The solver's registered name or an instance.
        num_steps: The step budget handed to the solver (a fixed-step method's steps; adaptive ones start from it).
        eps: Final time; default: the SDE's ``default_eps``.
        start_time: Where sampling starts (default: the SDE's end time ``T``), as for
            :class:`~scoreflow.PredictorCorrectorSampler`.
        solver_options: Options of a solver given by name.
        condition: A condition that only steers the score (it cannot adjust the state after steps the solver
            chooses itself); ``None`` samples unconditionally.
        condition_options: Options of a condition given by name.
        host: Plugin host to resolve names with (default: :func:`scoreflow.get_host`, asked only for names).
    """

    solver: str | TrajectorySolver
    num_steps: int = attrs.field(default=1000, validator=positive_int)
    eps: float | None = attrs.field(default=None, validator=attrs.validators.optional(sde_time))
    start_time: float | None = attrs.field(default=None, validator=attrs.validators.optional(sde_time))
    solver_options: dict[str, Any] = attrs.field(factory=dict)
    condition: str | Condition | None = attrs.field(default=None, eq=False)
    condition_options: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
    host: PluginHost | None = attrs.field(default=None, repr=False, eq=False)
    _solver: TrajectorySolver = attrs.field(init=False, repr=False, eq=False)
    _condition: Condition = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.solver, str) and self.solver_options:
            raise DroppedOptionsError(f"solver_options {sorted(self.solver_options)} cannot apply to the solver "
                                      f"instance {type(self.solver).__name__}; set them on it")
        self._solver = resolve_component("trajectory_solver", self.solver, self.host, **self.solver_options)
        self._condition = resolve_condition(self.condition, self.condition_options, self.host)
        kind = type(self._condition)
        if kind.constrain is not Condition.constrain:
            raise IncompatibleComponentsError(
                f"predictor {type(self._solver).__name__} integrates the whole trajectory and cannot apply "
                f"condition {kind.__name__}, which adjusts the state after every step; use a step-wise predictor")

    @property
    def predictor_obj(self) -> TrajectorySolver:
        """The resolved solver (the name matches :attr:`PredictorCorrectorSampler.predictor_obj`)."""
        return self._solver

    def eps_for(self, sde: SDE) -> float:
        """The final time on ``sde``: this sampler's ``eps``, else the SDE's ``default_eps``."""
        return final_time(sde, self.eps)

    def start_for(self, sde: SDE) -> float:
        """Where sampling starts on ``sde``: ``start_time``, else ``T``."""
        return sde.T if self.start_time is None else check_start(self.start_time, sde, self.eps_for(sde))

    def check(self, sde: SDE) -> None:
        """Raise now if this sampler cannot run on ``sde`` (a requirement of the solver, ``eps`` or the start)."""
        self._solver.check_sde(sde)
        check_eps(self.eps_for(sde), sde.T)
        if self.start_time is not None:
            check_start(self.start_time, sde, self.eps_for(sde))

    def sample(
        self,
        model: ScoreModel,
        sde: SDE,
        shape: tuple[int, ...] | torch.Size,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        callback: StepCallback | None = None,
        progress: bool = False,
        dtype: torch.dtype = torch.float32,
        init: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
    ) -> SampleResult:
        """Draw ``shape[0]`` samples, as :meth:`PredictorCorrectorSampler.sample
        <scoreflow.PredictorCorrectorSampler.sample>` (``callback`` is called once, at the end: the solver has no
        steps to report; ``progress`` is not shown)."""
        shape = check_shape(shape)
        self.check(sde)
        device, counting, score = begin_sampling(self._condition, model, sde, shape, generator=generator,
                                                 device=device, dtype=dtype,
                                                 given=init if init is not None else images)
        with torch.no_grad():
            start, eps = self.start_for(sde), self.eps_for(sde)
            x = starting_state(shape, start, sde=sde, generator=generator, device=device, dtype=dtype, init=init,
                               images=images)
            x, _ = self._solver.solve(x, start, eps, self.num_steps, sde=sde, score=score, generator=generator)
            x = self._condition.finalize(x)
            if callback is not None:
                callback(final_report(eps, x, counting.calls))
        check_finite("samples", x)
        return SampleResult(x, counting.calls)
