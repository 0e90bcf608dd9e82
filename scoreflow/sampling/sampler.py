"""``sf.Sampler(...)``: the sampler for a predictor, built from a registered name or an instance.

A step-wise predictor gives a :class:`~scoreflow.PredictorCorrectorSampler`, a whole-trajectory solver (torchsde,
Gotta Go Fast) a :class:`~scoreflow.TrajectorySolverSampler`; both have the :class:`~scoreflow.SamplerProtocol`
shape, so the caller never needs to know which it got.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scoreflow.errors import DroppedOptionsError, IncompatibleComponentsError, UnknownComponentError
from scoreflow.sampling.base import Predictor, TrajectorySolver
from scoreflow.sampling.predictor_corrector import PredictorCorrectorSampler
from scoreflow.sampling.trajectory import TrajectorySolverSampler

if TYPE_CHECKING:
    from scoreflow.plugins import PluginHost

#: Options of predictor-corrector sampling's grid with the value that means "not used": a whole-trajectory solver
#: refuses any other value.
_GRID_ONLY: dict[str, Any] = {"schedule": None, "schedule_options": {}, "times": None, "denoise": True}
#: The corrector's options: without a corrector they configure nothing, for either shape.
_CORRECTOR_OPTIONS = ("snr", "n_steps", "corrector_options")


def Sampler(*, predictor: str | Predictor | TrajectorySolver | None = None, **options: Any
            ) -> PredictorCorrectorSampler | TrajectorySolverSampler:
    """The sampler for ``predictor`` with ``options``: a :class:`~scoreflow.PredictorCorrectorSampler` for a
    step-wise predictor (the default, Euler-Maruyama, included) and a :class:`~scoreflow.TrajectorySolverSampler`
    for a whole-trajectory solver (its ``predictor_options`` are the solver's options). The options are those of
    :class:`~scoreflow.PredictorCorrectorSampler`; a trajectory solver refuses a corrector and the grid's options
    (``schedule``, ``schedule_options``, ``times``, ``resample``, ``denoise=False``).

    ``Sampler(predictor="euler", corrector="langevin", num_steps=500)``; ``Sampler(predictor="torchsde")``.
    """
    if predictor is None:
        return PredictorCorrectorSampler(**options)
    if not _is_trajectory_solver(predictor, options.get("host")):
        return PredictorCorrectorSampler(predictor=predictor, **options)
    return _trajectory_sampler(predictor, options)


def _is_trajectory_solver(predictor: Any, host: PluginHost | None) -> bool:
    if not isinstance(predictor, str):
        from scoreflow.registry import check_instance

        return isinstance(check_instance("predictor", predictor, (Predictor, TrajectorySolver)), TrajectorySolver)
    host = host or _default_host()
    predictors, solvers = host.registry("predictor"), host.registry("trajectory_solver")
    if predictor in predictors:
        return False
    if predictor in solvers:
        return True
    try:
        predictors.get(predictor)
    except UnknownComponentError as exc:
        raise UnknownComponentError(f"{exc} Whole-trajectory solvers (trajectory_solver): "
                                    f"{solvers.describe_names() or '(none)'}.") from None
    return False


def _trajectory_sampler(solver: str | TrajectorySolver, options: dict[str, Any]) -> TrajectorySolverSampler:
    """A whole-trajectory sampler, refusing what it cannot use with the error the combination deserves."""
    label = solver if isinstance(solver, str) else type(solver).__name__
    corrector = options.pop("corrector", None)
    if not (corrector is None or corrector == "none" or getattr(corrector, "nfe_per_step", 1) == 0):
        raise IncompatibleComponentsError(f"predictor {label} integrates the whole trajectory and cannot be "
                                          f"combined with corrector {corrector!r}; use corrector=None")
    for name in _CORRECTOR_OPTIONS:
        options.pop(name, None)
    resample = options.pop("resample", 0)
    options.pop("resample_jump", None)
    if resample:
        raise IncompatibleComponentsError(
            f"resample={resample} jumps back in time and repeats steps; predictor {label} integrates the whole "
            "trajectory and cannot; use a one-step predictor (euler_maruyama, reverse_diffusion, ...)")
    unused = sorted(name for name, neutral in _GRID_ONLY.items()
                    if name in options and _differs(options.pop(name), neutral))
    if unused:
        raise DroppedOptionsError(
            f"predictor {label} integrates the whole trajectory on its own grid and would ignore {', '.join(unused)}"
            "; use its own options (predictor_options) instead")
    return TrajectorySolverSampler(solver=solver, solver_options=options.pop("predictor_options", None) or {},
                                   **options)


def _differs(value: Any, neutral: Any) -> bool:
    return value is not None if neutral is None else not (type(value) is type(neutral) and value == neutral)


def _default_host() -> PluginHost:
    from scoreflow.plugins import get_host

    return get_host()


def canonical_predictor_name(name: str, *, host: PluginHost) -> str:
    """The canonical name of a predictor or whole-trajectory solver (the one its results are stored under)."""
    kind = "trajectory_solver" if _is_trajectory_solver(name, host) else "predictor"
    return host.registry(kind).get(name).name
