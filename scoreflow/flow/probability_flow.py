"""The probability-flow ODE and sampling with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import torch
from torch import nn

from scoreflow.errors import DroppedOptionsError, NonFiniteError
from scoreflow.flow.solvers import ODESolver
from scoreflow.registry import check_instance
from scoreflow.sampling.conditioning import Condition
from scoreflow.sampling.protocol import CountingScore, SampleResult, check_shape, final_report, model_device
from scoreflow.tensor import as_time, check_finite
from scoreflow.validators import boolean, check_eps

if TYPE_CHECKING:
    from scoreflow.models.base import ScoreModel
    from scoreflow.plugins import PluginHost
    from scoreflow.sde.base import SDE, ScoreFn


class ProbabilityFlowODE(nn.Module):
    """``dx/dt = f(x, t) - g(t)^2 score(x, t) / 2``, deterministic with the SDE's marginals."""

    def __init__(self, sde: SDE, score: ScoreFn) -> None:
        super().__init__()
        self.sde = sde
        self.reverse = sde.reverse(score, probability_flow=True)
        self.calls = 0

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if not torch.isfinite(x).all():
            raise NonFiniteError(f"the ODE state became non-finite at t={float(t.reshape(-1)[0]):.6g} "
                                 f"(evaluation {self.calls})")
        drift, _ = self.reverse.sde(x, as_time(t, x.shape[0], x))
        if not torch.isfinite(drift).all():
            raise NonFiniteError(f"the score model returned non-finite values at t={float(t.reshape(-1)[0]):.6g} "
                                 f"(evaluation {self.calls})")
        return drift


class _TimeProgress(nn.Module):
    """Wraps an ODE right-hand side to show how much of ``[t1, t0]`` has been integrated."""

    def __init__(self, func: nn.Module, t0: float, t1: float) -> None:
        super().__init__()
        from tqdm.auto import tqdm

        self.func, self.t0, self.span = func, float(t0), abs(float(t0) - float(t1))
        self.bar = tqdm(total=1000, desc="ODE (per mille of the time span)", leave=False)
        self.calls = 0

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        done = int(1000 * min(1.0, abs(self.t0 - float(t)) / self.span))
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)
        self.bar.set_postfix_str(f"t={float(t):.4f}, NFE {self.calls}", refresh=False)
        return self.func(t, x)

    def close(self) -> None:
        self.bar.close()


def solver_name(solver: Any) -> str:
    """A solver's name for messages: its class, and its method where it has one (``TorchdiffeqSolver('rk4')``)."""
    method = getattr(solver, "method", None)
    return f"{type(solver).__name__}({method!r})" if method else type(solver).__name__


def resolve_solver(
    solver: str | ODESolver, *, host: PluginHost | None = None, **options: Any
) -> ODESolver:
    """An ODE solver instance from a registered name (with ``options``) or an instance.

    Only a name needs the plugin host: an instance comes back as it is (options given with it are refused)."""
    if not isinstance(solver, str) and host is None:
        if options:
            raise DroppedOptionsError(f"options {sorted(options)} cannot apply to the solver instance "
                                      f"{type(solver).__name__}; set them on it")
        return check_instance("ode_solver", solver, ODESolver)
    from scoreflow.plugins import get_host

    return (host or get_host()).ode_solvers.resolve(solver, **options)


def ode_sample(
    model: ScoreModel,
    sde: SDE,
    shape: tuple[int, ...] | torch.Size,
    *,
    sampler: ProbabilityFlowSampler | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    z: torch.Tensor | None = None,
    progress: bool = False,
) -> SampleResult:
    """Sample by integrating the probability-flow ODE from ``T`` to ``eps``: a convenience for
    ``(sampler or ProbabilityFlowSampler()).sample(model, sde, shape, ...)``.

    Args:
        model: Score network or callable ``score(x, t)``.
        sde: The forward SDE.
        shape: ``(batch, ...)`` sample shape.
        sampler: The solver, its tolerances, ``eps`` and ``denoise`` (default: dopri5 at tolerance 1e-5 to
            ``eps = 1e-3``, built without the plugin host).
        generator: Random generator for the prior draw.
        device: Device (default: the model's).
        z: Prior latent to start from instead of a fresh draw (float32; another dtype: the sampler's
            ``sample(..., dtype=...)``).
        progress: Show a tqdm bar of the time integrated so far (and the evaluations spent).
    """
    return (sampler or ProbabilityFlowSampler()).sample(model, sde, shape, generator=generator, device=device,
                                                        progress=progress, init=z,
                                                        dtype=z.dtype if z is not None else torch.float32)


#: Tolerances of a solver given by name (or the default dopri5) when none are given.
DEFAULT_TOLERANCE = 1e-5


def build_solver(solver: str | ODESolver | None, host: PluginHost | None, **options: Any) -> ODESolver:
    """The solver of a probability-flow sampler or likelihood: ``None`` is torchdiffeq's dopri5 with ``options``
    (built here, without the plugin host), a name is resolved through ``host`` (or the default host) with
    ``options``, an instance comes back as it is and refuses any option (:class:`DroppedOptionsError`)."""
    from scoreflow.errors import UnknownOptionError
    from scoreflow.flow.solvers import TorchdiffeqSolver

    if solver is None:
        try:
            return TorchdiffeqSolver(method="dopri5", **options)
        except TypeError as exc:
            raise UnknownOptionError(f"dopri5 (torchdiffeq): {exc}; it takes rtol, atol, options, adjoint") from None
    if not isinstance(solver, str):
        return resolve_solver(solver, **options)  # no host: an instance is checked, never resolved
    return resolve_solver(solver, host=host, **options)


@attrs.define(kw_only=True)
class ProbabilityFlowSampler:
    """Sampling by the probability-flow ODE from ``T`` to ``eps``, with the :class:`~scoreflow.Sampler`'s shape:
    options fixed once, then ``sample(model, sde, shape, generator=..., ...) -> SampleResult``, so every consumer
    of samplers (``evaluation.runs.sample_many``, the command line) has one sampling path. Everything stays on the
    tensors' device (no numpy round trip per step).

    Attributes:
        solver: ``None`` (torchdiffeq's dopri5, built without the plugin host), an ``ode_solver`` name (resolved
            when the sampler is built, so an unknown name or option fails at once) or an instance, which carries
            its own options: ``rtol``, ``atol`` and ``solver_options`` must then stay unset.
        rtol: Relative tolerance of a solver given by name (default 1e-5).
        atol: Absolute tolerance of a solver given by name (default 1e-5).
        eps: Final time.
        solver_options: Further options of a solver given by name (``num_steps`` of ``rk4``).
        denoise: End with one Tweedie step ``x <- E[x_0 | x_eps] = (x + std^2 score) / alpha`` at ``eps``
            (score_sde's ``denoise=True``; one more network evaluation), removing the noise left at ``eps``.
        condition: Steers the score of every evaluation (a condition that only guides the score, such as
            :class:`~scoreflow.sampling.free_guidance.ClassifierFreeGuidance`; conditions that adjust the state
            after each step need a :class:`~scoreflow.Sampler`); the NFE then counts network evaluations of the
            batch.
        host: Plugin host that resolves a solver name.
    """

    solver: str | ODESolver | None = None
    rtol: float | None = None
    atol: float | None = None
    eps: float = 1e-3
    solver_options: dict[str, Any] = attrs.field(factory=dict)
    denoise: bool = attrs.field(default=False, validator=boolean)
    condition: Condition | None = attrs.field(default=None, eq=False)
    host: PluginHost | None = attrs.field(default=None, repr=False, eq=False)
    _solver: ODESolver = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.solver is not None and not isinstance(self.solver, str):  # an instance refuses every option
            self._solver = build_solver(self.solver, self.host, **{
                **{name: value for name in ("rtol", "atol") if (value := getattr(self, name)) is not None},
                **self.solver_options})
        else:
            self._solver = build_solver(self.solver, self.host, **{
                "rtol": DEFAULT_TOLERANCE if self.rtol is None else self.rtol,
                "atol": DEFAULT_TOLERANCE if self.atol is None else self.atol, **self.solver_options})
        if self.condition is not None:
            check_instance("condition", self.condition, Condition)
            kind = type(self.condition)
            if kind.constrain is not Condition.constrain or kind.finalize is not Condition.finalize:
                raise ValueError(f"condition {kind.__name__} adjusts the state after every step, which the "
                                 "probability-flow ODE does not take; sample with a Sampler instead")

    @property
    def solver_obj(self) -> ODESolver:
        """The solver instance (resolved when the sampler was built)."""
        return self._solver

    def check(self, sde: SDE) -> None:
        """Raise now if ``eps`` does not lie in ``(0, sde.T)``."""
        check_eps(self.eps, sde.T)

    def sample(
        self,
        model: ScoreModel,
        sde: SDE,
        shape: tuple[int, ...] | torch.Size,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
        dtype: torch.dtype = torch.float32,
        init: torch.Tensor | None = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
    ) -> SampleResult:
        """``shape[0]`` samples; ``init`` is the prior latent to start from (default: a draw from the prior).
        ``callback`` gets the :class:`~scoreflow.Sampler`'s ``{"i", "t", "x", "x_mean", "nfe"}`` once, at the end
        (the solver chooses its own steps)."""
        shape = check_shape(shape)
        check_eps(self.eps, sde.T)
        device = model_device(model, device if device is not None else (generator.device if generator else None))
        if self.condition is None:
            result = self._integrate(model, sde, shape, generator, device, dtype, init, progress)
        else:
            from scoreflow.models.base import make_score_fn

            self.condition.check(shape, sde)
            self.condition.check_model(model)
            counting = CountingScore(make_score_fn(model, sde), shape[0])
            result = self._integrate(self.condition.guide(counting, sde), sde, shape, generator, device, dtype, init,
                                     progress)
            result = SampleResult(result.samples, counting.calls)
        if callback is not None:
            callback(final_report(self.eps, result.samples, result.nfe))
        return result

    def _integrate(self, model: ScoreModel, sde: SDE, shape: tuple[int, ...], generator: torch.Generator | None,
                   device: torch.device, dtype: torch.dtype, z: torch.Tensor | None, progress: bool) -> SampleResult:
        """The ODE solved from ``z`` (or a prior draw) at ``T`` to ``eps``, then the optional Tweedie step."""
        from scoreflow.models.base import make_score_fn
        from scoreflow.models.parametrization import denoised_from_score

        score = make_score_fn(model, sde)
        func = ProbabilityFlowODE(sde, score)
        with torch.no_grad():
            if z is None:
                z = sde.prior_sampling(shape, generator=generator, device=device, dtype=dtype)
            elif tuple(z.shape) != shape:
                raise ValueError(f"z has shape {tuple(z.shape)}, expected {shape}")
            if progress:
                func = _TimeProgress(func, sde.T, self.eps)
            try:
                x, nfe = self._solver.solve(func, z, sde.T, self.eps)
            except NonFiniteError as exc:
                raise NonFiniteError(f"ode_sample with {solver_name(self._solver)}: {exc}") from None
            finally:
                if progress:
                    func.close()
            if self.denoise:
                t_end = as_time(self.eps, x.shape[0], x)
                x = denoised_from_score(score(x, t_end), x, t_end, sde)
                nfe += 1
        check_finite("samples", x)
        return SampleResult(x, nfe)
