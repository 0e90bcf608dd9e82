"""ODE solvers for the probability-flow ODE; the built-in one wraps torchdiffeq."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, NamedTuple, Union

import attrs
import torch

from scoreflow.errors import SolverError
from scoreflow.validators import one_of

State = Union[torch.Tensor, tuple[torch.Tensor, ...]]

ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
FIXED_METHODS = ("euler", "midpoint", "heun3", "rk4", "explicit_adams", "implicit_adams")
#: Highest order of the Adams methods unless ``options`` sets ``max_order``. torchdiffeq's own default, 12, lets the
#: history grow to Adams-Bashforth 12, whose stability interval is tiny: on ``dy/dt = -y`` over [0, 1] its error
#: grows with the steps (0.37 off at 100), and on the ring oracle the samples blew up to 1e35.
ADAMS_MAX_ORDER = 4


class ODEResult(NamedTuple):
    """Final state of a solve and the number of function evaluations it took."""

    y1: State
    nfe: int


class _Counted(torch.nn.Module):
    """Wraps ``func(t, y)`` to count evaluations (an ``nn.Module`` so adjoint methods work)."""

    def __init__(self, func: Callable[[torch.Tensor, State], State]) -> None:
        super().__init__()
        self.func = func
        self.nfe = 0

    def forward(self, t: torch.Tensor, y: State) -> State:
        self.nfe += 1
        return self.func(t, y)


class ODESolver(abc.ABC):
    """Integrates ``dy/dt = func(t, y)`` from ``t0`` to ``t1`` (``t1 < t0`` is allowed)."""

    @abc.abstractmethod
    def solve(self, func: Callable[[torch.Tensor, State], State], y0: State, t0: float, t1: float) -> ODEResult:
        """Return the state at ``t1`` and the number of ``func`` evaluations."""

    def solve_at(self, func: Callable[[torch.Tensor, State], State], y0: State, ts: torch.Tensor) -> ODEResult:
        """The states at every time of ``ts`` (monotone; ``ts[0]`` is ``y0``'s), stacked along a new first axis
        (per component of a tuple state), and the evaluations. This default chains :meth:`solve` over consecutive
        times, each interval a fresh solve; solvers with dense output (torchdiffeq's) answer in one solve."""
        states, nfe, y = [y0], 0, y0
        for t0, t1 in zip(ts[:-1].tolist(), ts[1:].tolist()):
            y, n = self.solve(func, y, t0, t1)
            states.append(y)
            nfe += n
        if isinstance(y0, tuple):
            return ODEResult(tuple(torch.stack([s[i] for s in states]) for i in range(len(y0))), nfe)
        return ODEResult(torch.stack(states), nfe)


class ClampedTime(torch.nn.Module):
    """Wraps ``func(t, y)`` so that it is only ever evaluated for ``t`` in ``[lo, hi]``.

    torchdiffeq's adaptive methods choose their first step by evaluating ``func`` at ``t0 + h0`` with a
    guessed ``h0`` that can reach far past the end time (``h0 = 0.01 |y0| / |f0|``: huge where the rate is
    near zero, as for a VP flow started from its Gaussian prior), where the dynamics may be undefined
    (``t < 0``). Such a probe is answered at the end time; the error control then sizes the real steps,
    and ``step_t`` keeps every step inside the interval, so a solve that never probed outside is unchanged.
    """

    def __init__(self, func: Callable[[torch.Tensor, State], State], lo: float, hi: float) -> None:
        super().__init__()
        self.func = func
        self.lo, self.hi = min(lo, hi), max(lo, hi)

    def forward(self, t: torch.Tensor, y: State) -> State:
        return self.func(t.clamp(self.lo, self.hi), y)


def _valid_tol(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """A positive number, or a tuple of them (one per component of a tuple state)."""
    values = value if isinstance(value, tuple) else (value,)
    numbers = all(not isinstance(v, bool) and isinstance(v, (int, float)) and v >= 0 for v in values)
    if not values or not numbers or not (all(v > 0 for v in values) or isinstance(value, tuple) and any(values)):
        raise ValueError(f"{attribute.name} must be positive (or a tuple of positive numbers, one per state "
                         f"component), got {value!r}")


def _even_grid(num_steps: int) -> Callable[..., torch.Tensor]:
    def grid(func: Any, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.linspace(float(t[0]), float(t[-1]), num_steps + 1, dtype=t.dtype, device=t.device)

    return grid


@attrs.define(kw_only=True)
class TorchdiffeqSolver(ODESolver):
    """``torchdiffeq.odeint`` with its own option names.

    Attributes:
        method: A torchdiffeq method (adaptive: dopri5, dopri8, bosh3, fehlberg2,
            adaptive_heun; fixed-grid: euler, midpoint, heun3, rk4, explicit_adams,
            implicit_adams).
        rtol: Relative tolerance of adaptive methods.
        atol: Absolute tolerance of adaptive methods.
        num_steps: Steps of fixed-grid methods (ignored by adaptive ones unless
            ``options`` sets a step size).
        options: Extra torchdiffeq ``options`` (e.g. ``{"max_num_steps": 10000}``).
        adjoint: Use ``odeint_adjoint`` (memory-light gradients through the solve).
    """

    method: str = attrs.field(default="dopri5", validator=one_of(ADAPTIVE_METHODS + FIXED_METHODS))
    rtol: float | tuple[float, ...] = attrs.field(default=1e-5, validator=_valid_tol)
    atol: float | tuple[float, ...] = attrs.field(default=1e-5, validator=_valid_tol)
    num_steps: int = attrs.field(default=100, validator=attrs.validators.gt(0))
    options: dict[str, Any] = attrs.field(factory=dict)
    adjoint: bool = False

    def solve(self, func, y0, t0, t1) -> ODEResult:
        ref = y0[0] if isinstance(y0, tuple) else y0
        out, nfe = self.solve_at(func, y0, torch.tensor([t0, t1], dtype=ref.dtype, device=ref.device))
        return ODEResult(tuple(o[-1] for o in out) if isinstance(out, tuple) else out[-1], nfe)

    def solve_at(self, func, y0, ts) -> ODEResult:
        """torchdiffeq's dense output: one solve through every time of ``ts``, never stepping or probing past the
        last (the one end-time guard of every probability-flow solve: sampling, likelihood, tuning)."""
        import torchdiffeq

        ref = y0[0] if isinstance(y0, tuple) else y0
        counted = _Counted(func)
        rhs: torch.nn.Module = counted
        options = dict(self.options)
        ts = ts.to(dtype=ref.dtype, device=ref.device)
        t0, t1 = float(ts[0]), float(ts[-1])
        if self.method in FIXED_METHODS:
            if self.method.endswith("_adams"):
                options.setdefault("max_order", ADAMS_MAX_ORDER)
            if "grid_constructor" not in options and "step_size" not in options:
                # exactly num_steps even steps (a step_size can round to one more, tiny, step)
                options["grid_constructor"] = _even_grid(self.num_steps)
        else:
            # Never step past the end time: the dynamics may be undefined beyond it (t < 0).
            options.setdefault("step_t", ts[-1:])
            rhs = ClampedTime(counted, t0, t1)  # nor probe past it when choosing the first step
        odeint = torchdiffeq.odeint_adjoint if self.adjoint else torchdiffeq.odeint
        kwargs: dict[str, Any] = {}
        if self.adjoint:
            kwargs["adjoint_params"] = tuple(p for p in rhs.parameters())
        try:
            out = odeint(rhs, y0, ts, method=self.method, rtol=self.rtol, atol=self.atol,
                         options=options or None, **kwargs)
        except AssertionError as exc:  # torchdiffeq signals a stuck integration with a bare assert
            raise SolverError(f"torchdiffeq's {self.method!r} could not advance from t0={t0:g} to t1={t1:g} after "
                              f"{counted.nfe} evaluations ({exc}); loosen rtol/atol (now {self.rtol:g}/{self.atol:g}) "
                              "or check the dynamics") from None
        return ODEResult(out, counted.nfe)
