"""Time schedules: the decreasing grid ``T = t_0 > t_1 > ... > t_N = eps`` a sampler steps along.

A grid may start below ``T`` (``start``): sampling then begins there, from the forward marginal of the data's
centre (truncated sampling, as diffusers' "leading" timesteps do) or from noised images (image-to-image).

A schedule is a registered component (kind ``"schedule"``, hook
``scoreflow_register_schedules``). Grids that are uniform in something other than ``t``
(the noise level, its logarithm, Karras et al.'s ``rho`` ramp) go through
:meth:`scoreflow.SDE.noise_level` and its inverse :meth:`~scoreflow.SDE.time_at_noise_level`,
so they work for any SDE, including one whose noise level is not exponential in ``t``.
An SDE names its preferred schedule in ``default_schedule`` (``"uniform_t"`` for the built-ins).
"""

from __future__ import annotations

import abc
import inspect
import math
from typing import TYPE_CHECKING, Any

import attrs
import torch

from scoreflow.validators import check_eps

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE

DEFAULT_SCHEDULE = "uniform_t"


def check_times(times: Any, sde: SDE | None = None) -> torch.Tensor:
    """Validate an explicit grid: 1-D, finite, at least two points, strictly decreasing, positive, and not
    beyond ``sde.T``. Returns it as float64."""
    if not isinstance(times, torch.Tensor):
        try:
            times = torch.as_tensor(times, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"times must be a 1-D tensor of decreasing times, got {type(times).__name__}") from None
    if times.dim() != 1 or len(times) < 2:
        raise ValueError(f"times must be a 1-D tensor of at least 2 decreasing times, got shape {tuple(times.shape)}")
    if not times.is_floating_point():
        raise TypeError(f"times must be floating point, got {times.dtype}")
    times = times.detach().to("cpu", torch.float64)
    if not torch.isfinite(times).all():
        raise ValueError(f"times must be finite, got {times.tolist()}")
    if not (times[1:] < times[:-1]).all():
        bad = int(torch.nonzero(times[1:] >= times[:-1])[0]) + 1
        raise ValueError(f"times must decrease strictly; times[{bad}] = {float(times[bad])!r} does not "
                         f"(times[{bad - 1}] = {float(times[bad - 1])!r})")
    if float(times[-1]) <= 0:
        raise ValueError(f"the last time must be positive (the score is singular at t = 0), got {float(times[-1])!r}")
    if sde is not None and float(times[0]) > sde.T * (1 + 1e-12):
        raise ValueError(f"the first time {float(times[0])!r} is beyond the SDE's end time T = {sde.T}")
    return times


def _check_request(sde: SDE, num_steps: int, eps: float) -> None:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps <= 0:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    check_eps(eps, sde.T)


def check_start(start: Any, sde: SDE, eps: float) -> float:
    """Validate a start time: a real number in ``(eps, sde.T]`` (within ``1e-6 T`` above ``T`` counts as ``T``, for
    times found by inverting the noise level at the top); returns it, at most ``T``."""
    if isinstance(start, bool) or not isinstance(start, (int, float)) or not math.isfinite(start):
        raise ValueError(f"start_time must be a real number in (eps, T] = ({eps:g}, {sde.T:g}], got {start!r}")
    if not eps < start <= sde.T * (1 + 1e-6):  # a time a bisection put a rounding beyond T is T
        raise ValueError(f"start_time must lie in (eps, T] = ({eps:g}, {sde.T:g}], got {start!r}")
    return min(float(start), sde.T)


class _StartingAt:
    """``sde`` seen as if it ended at ``start``: what a schedule reads to lay a grid from ``start`` down (every
    attribute but ``T`` is ``sde``'s own)."""

    def __init__(self, sde: SDE, start: float) -> None:
        self._sde, self.T = sde, start

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sde, name)

    def __repr__(self) -> str:
        return repr(self._sde)


class Schedule(abc.ABC):
    """Maps ``(sde, num_steps, eps)`` to ``num_steps + 1`` decreasing times from ``sde.T`` (or a given ``start``)
    down to ``eps``."""

    #: Whether the schedule picks its own first time (a tuned grid may start below ``T``); the others start at
    #: ``sde.T`` unless a ``start`` is given.
    chooses_start: bool = False

    def __call__(self, sde: SDE, num_steps: int, eps: float, dtype: torch.dtype = torch.float64, *,
                 start: float | None = None) -> torch.Tensor:
        """The grid in ``dtype``, first point ``start`` (default ``sde.T``) and last ``eps`` (as ``dtype`` rounds
        them), validated. A ``start`` below ``T`` lays the same kind of grid over ``[eps, start]`` (truncated
        sampling, image-to-image)."""
        _check_request(sde, num_steps, eps)
        if start is not None:
            start = check_start(start, sde, eps)
        view = sde if start is None or start == sde.T or self.chooses_start else _StartingAt(sde, start)
        takes_dtype = "dtype" in inspect.signature(self.times).parameters  # plugin schedules may not
        times = (self.times(view, num_steps, eps, dtype=dtype) if takes_dtype else self.times(view, num_steps, eps))
        times = times.to(dtype).clone()
        if self.chooses_start:
            if start is not None and not math.isclose(float(times[0]), start, rel_tol=1e-9):
                raise ValueError(f"{type(self).__name__} starts its grid at t={float(times[0]):.6g}, not at the "
                                 f"requested start_time {start:.6g}")
        else:
            times[0] = sde.T if start is None else start
        times[-1] = eps
        check_times(times, sde)
        return times

    @abc.abstractmethod
    def times(self, sde: SDE, num_steps: int, eps: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``num_steps + 1`` times from ``sde.T`` down to ``eps`` (computed in float64 unless the schedule
        is exact in ``dtype``, as a uniform grid is)."""


def _noise_levels(sde: SDE, eps: float) -> tuple[float, float]:
    ends = sde.noise_level(torch.tensor([sde.T, eps], dtype=torch.float64))
    s_max, s_min = float(ends[0]), float(ends[1])
    if not (s_max > s_min > 0 and math.isfinite(s_max)):
        raise ValueError(f"{type(sde).__name__}'s noise level must grow from t = eps to T; got "
                         f"{s_min!r} at eps = {eps} and {s_max!r} at T")
    return s_max, s_min


def _times_at(sde: SDE, levels: torch.Tensor) -> torch.Tensor:
    return sde.time_at_noise_level(levels).to(torch.float64)


@attrs.define(kw_only=True)
class UniformT(Schedule):
    """Uniform in ``t`` (the tutorial's ``linspace(T, eps, N + 1)``)."""

    def times(self, sde, num_steps, eps, dtype=torch.float64):
        # in the sampling dtype, so float32 sampling steps on exactly the grid the tutorial's loop uses
        return torch.linspace(sde.T, eps, num_steps + 1, dtype=dtype)


@attrs.define(kw_only=True)
class LogSigma(Schedule):
    """Uniform in the log of the noise level ``s(t) = std(t) / alpha(t)`` (uniform log-SNR); with ``rho != 1``,
    k-diffusion's polyexponential ramp ``log s_i = log s_min + (1 - i/N)^rho (log s_max - log s_min)``.

    Attributes:
        rho: Concentration towards low noise in ``log s`` (1: uniform; 2: denser at low noise).
    """

    rho: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))

    def times(self, sde, num_steps, eps, dtype=torch.float64):
        s_max, s_min = _noise_levels(sde, eps)
        if self.rho == 1.0:
            log_levels = torch.linspace(math.log(s_max), math.log(s_min), num_steps + 1, dtype=torch.float64)
        else:
            ramp = torch.linspace(1, 0, num_steps + 1, dtype=torch.float64) ** self.rho
            log_levels = math.log(s_min) + ramp * (math.log(s_max) - math.log(s_min))
        return _times_at(sde, torch.exp(log_levels))


@attrs.define(kw_only=True)
class UniformSigma(Schedule):
    """Uniform in the noise level ``s(t)``."""

    def times(self, sde, num_steps, eps, dtype=torch.float64):
        s_max, s_min = _noise_levels(sde, eps)
        return _times_at(sde, torch.linspace(s_max, s_min, num_steps + 1, dtype=torch.float64))


@attrs.define(kw_only=True)
class Karras(Schedule):
    """Karras et al. (2022): ``s_i = (s_max^(1/rho) + i/N (s_min^(1/rho) - s_max^(1/rho)))^rho``, dense at low noise.

    Attributes:
        rho: Concentration towards low noise (EDM's 7; 1 is :class:`UniformSigma`).
    """

    rho: float = attrs.field(default=7.0, validator=attrs.validators.gt(0))

    def times(self, sde, num_steps, eps, dtype=torch.float64):
        s_max, s_min = _noise_levels(sde, eps)
        ramp = torch.linspace(0, 1, num_steps + 1, dtype=torch.float64)
        levels = (s_max ** (1 / self.rho) + ramp * (s_min ** (1 / self.rho) - s_max ** (1 / self.rho))) ** self.rho
        return _times_at(sde, levels)


def default_schedule_name(sde: SDE) -> Any:
    """The schedule ``sde`` asks for (its ``default_schedule``: a name or a :class:`Schedule`), else uniform in t."""
    return getattr(sde, "default_schedule", None) or DEFAULT_SCHEDULE


#: The built-in schedules by name: a default a sampler picks (the SDE's ``default_schedule``, a predictor's
#: ``preferred_schedule``) is taken from here, so a plugin that registers another ``"karras"`` changes only the
#: samplers that ask for it by name.
BUILTIN_SCHEDULES: dict[str, type[Schedule]] = {
    "karras": Karras, "log_sigma": LogSigma, "uniform_sigma": UniformSigma, "uniform_t": UniformT}
