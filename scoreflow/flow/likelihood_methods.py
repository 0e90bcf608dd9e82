"""How :func:`~scoreflow.log_likelihood` integrates and estimates: each choice an attrs class that validates its
own options when it is built.

- :class:`ODELikelihood`: the augmented probability-flow ODE solved by an ODE solver (dopri5 at tolerance 1e-5,
  the tutorial's way, by default), in ``t`` or in the log noise level.
- :class:`ExponentialLikelihood`: a fixed number of steps of a third-order exponential integrator in the log
  noise level (:mod:`scoreflow.flow.exponential_likelihood`), the same work on every batch.
- :class:`DivergenceEstimator`: Hutchinson probes (Gaussian or Rademacher, ``n_probes`` of them) or the exact
  divergence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import attrs
import torch
from torch import nn

from scoreflow.errors import DroppedOptionsError, NonFiniteError
from scoreflow.validators import one_of, positive_int, positive_number

if TYPE_CHECKING:
    from scoreflow.flow.divergence import DivergenceODE
    from scoreflow.flow.solvers import ODESolver
    from scoreflow.plugins import PluginHost
    from scoreflow.sde.base import SDE

ESTIMATORS = ("gaussian", "rademacher", "exact")
TIME_VARIABLES = ("t", "log_sigma")
#: The start time of the integral by default (the tutorial's).
DEFAULT_EPS = 1e-5
EXPONENTIAL_DEFAULT_STEPS = 20


@runtime_checkable
class LikelihoodMethod(Protocol):
    """What :func:`~scoreflow.log_likelihood` needs of a method: its start time and an integrator."""

    eps: float

    def integrate(self, divergence: DivergenceODE, sde: SDE, x: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``(z, delta_logp, nfe)``: the state at ``T`` and ``int_eps^T div F dt`` from ``x`` at ``eps``."""


@attrs.frozen(kw_only=True)
class ODELikelihood:
    """Solve the augmented ODE ``(x, delta) -> (F, div F)`` from ``eps`` to ``T`` with an ODE solver.

    Attributes:
        solver: ``None`` (torchdiffeq's dopri5, built here without the plugin host), a registered ``ode_solver``
            name (resolved once, here, through ``host`` or the default host), or an instance; an instance
            carries its own options, so ``rtol``, ``atol``, ``logp_atol`` and ``num_steps`` must stay unset.
        rtol: Relative tolerance of a solver given by name (default 1e-5).
        atol: Absolute tolerance of a solver given by name (default 1e-5).
        logp_atol: Absolute tolerance on the accumulated ``delta_logp`` (nats per sample), which then has no
            relative tolerance; by default ``rtol``/``atol`` as for ``x``. It sets the bits/dim error: ``x``
            can take a much looser tolerance (docs/benchmarks.md, likelihood).
        num_steps: Steps of a fixed-grid solver given by name (``"rk4"``): with ``time_variable="log_sigma"``,
            ``solver="rk4", num_steps=30`` matches the adaptive solve at tolerance 1e-5 to about 5e-4 bits/dim
            in about a fifth of the time.
        time_variable: Integrate in ``"t"`` (the tutorial's way) or in ``"log_sigma"``, the log of the SDE's
            noise level, where the flow is about equally hard everywhere.
        eps: Start time of the integral.
        host: Plugin host that resolves a solver name.
    """

    solver: str | ODESolver | None = None
    rtol: float | None = attrs.field(default=None, validator=attrs.validators.optional(positive_number))
    atol: float | None = attrs.field(default=None, validator=attrs.validators.optional(positive_number))
    logp_atol: float | None = attrs.field(default=None, validator=attrs.validators.optional(positive_number))
    num_steps: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive_int))
    time_variable: Literal["t", "log_sigma"] = attrs.field(default="t", validator=one_of(TIME_VARIABLES))
    eps: float = attrs.field(default=DEFAULT_EPS, validator=positive_number)
    host: PluginHost | None = attrs.field(default=None, eq=False, repr=False)
    ode_solver: ODESolver = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "ode_solver", self._build_solver())

    def _build_solver(self) -> ODESolver:
        from scoreflow.flow.probability_flow import DEFAULT_TOLERANCE, build_solver

        if self.solver is not None and not isinstance(self.solver, str):  # an instance refuses every option
            return build_solver(self.solver, self.host, **{name: value for name in (
                "rtol", "atol", "logp_atol", "num_steps") if (value := getattr(self, name)) is not None})
        rtol = DEFAULT_TOLERANCE if self.rtol is None else self.rtol
        atol = DEFAULT_TOLERANCE if self.atol is None else self.atol
        options: dict[str, Any] = {"rtol": rtol, "atol": atol}
        if self.logp_atol is not None:  # x keeps its tolerances; delta_logp gets an absolute one only, in nats
            options = {"rtol": (rtol, 0.0), "atol": (atol, self.logp_atol)}
        if self.num_steps is not None:
            options["num_steps"] = self.num_steps
        return build_solver(self.solver, self.host, **options)

    def integrate(self, divergence: DivergenceODE, sde: SDE, x: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, int]:
        from scoreflow.flow.divergence import LogNoiseLevelTime
        from scoreflow.flow.probability_flow import solver_name
        from scoreflow.sde.noise_levels import log_noise_bounds

        func: nn.Module = divergence
        delta0 = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        start, end = self.eps, sde.T
        if self.time_variable == "log_sigma":
            func = LogNoiseLevelTime(func, sde)
            start, end = log_noise_bounds(sde, self.eps)
        try:
            (z, delta), nfe = self.ode_solver.solve(func, (x, delta0), start, end)
        except NonFiniteError as exc:
            raise NonFiniteError(f"log_likelihood with {solver_name(self.ode_solver)}: {exc}") from None
        return z, delta, nfe


@attrs.frozen(kw_only=True)
class ExponentialLikelihood:
    """``num_steps`` steps of a third-order exponential integrator in the log noise level, integrating the
    divergence over its nodes: 3 network passes per step, 2 of them with a VJP, the same on every batch (and
    every rank). On the tutorial's MNIST U-Net 20 steps (61 passes) are within 0.0064 bits/dim of a
    tolerance-1e-7 solve on each of 288 test images and 7.6x faster than the tutorial's RK45 at the tolerance
    that keeps 96 of them within 0.01 (docs/benchmarks.md, likelihood).

    Attributes:
        num_steps: Steps of the integrator.
        eps: Start time of the integral.
    """

    num_steps: int = attrs.field(default=EXPONENTIAL_DEFAULT_STEPS, validator=positive_int)
    eps: float = attrs.field(default=DEFAULT_EPS, validator=positive_number)

    def integrate(self, divergence: DivergenceODE, sde: SDE, x: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, int]:
        from scoreflow.flow.exponential_likelihood import integrate_exponential

        try:
            return integrate_exponential(divergence, sde, x, self.eps, self.num_steps)
        except NonFiniteError as exc:
            raise NonFiniteError(f"log_likelihood with ExponentialLikelihood: {exc}") from None


#: The methods :func:`~scoreflow.log_likelihood` accepts by name, with their defaults.
METHODS = {"ode": ODELikelihood, "exponential": ExponentialLikelihood}


@attrs.frozen
class DivergenceEstimator:
    """How the divergence ``div F`` is estimated: ``"gaussian"`` or ``"rademacher"`` Hutchinson probes
    ``v^T (dF/dx) v`` fixed for the whole solve (``n_probes`` averaged, one batched VJP per evaluation), or
    ``"exact"``: the trace from ``D`` VJPs (for low dimension; it takes no probes)."""

    kind: Literal["gaussian", "rademacher", "exact"] = attrs.field(default="gaussian", validator=one_of(ESTIMATORS))
    n_probes: int = attrs.field(default=1, validator=positive_int, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.kind == "exact" and self.n_probes != 1:
            raise DroppedOptionsError(f"the exact divergence takes no probes; n_probes={self.n_probes} would be "
                                      "ignored")


def likelihood_method(method: LikelihoodMethod | str | None) -> LikelihoodMethod:
    """``method`` as an instance: ``None`` is :class:`ODELikelihood`'s defaults, ``"ode"`` and ``"exponential"``
    those of the two built-in methods."""
    if method is None:
        return ODELikelihood()
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(f"Unknown method {method!r}. Available: {', '.join(METHODS)} (or an instance: "
                             "ODELikelihood(...), ExponentialLikelihood(...)).")
        return METHODS[method]()
    if not isinstance(method, LikelihoodMethod):
        raise TypeError(f"method must be ODELikelihood(...), ExponentialLikelihood(...) or a name among "
                        f"{', '.join(METHODS)}, got {type(method).__name__}")
    return method


def divergence_estimator(estimator: DivergenceEstimator | str) -> DivergenceEstimator:
    """``estimator`` as an instance (a name is that kind with one probe)."""
    if isinstance(estimator, DivergenceEstimator):
        return estimator
    if isinstance(estimator, str) and estimator in ESTIMATORS:
        return DivergenceEstimator(estimator)
    raise ValueError(f"Unknown estimator {estimator!r}. Available: {', '.join(ESTIMATORS)} or "
                     "DivergenceEstimator(kind, n_probes=...).")
