"""Reverse-time SDE sampling with torchsde's solvers."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Literal

import attrs
import torch
from torch import nn

from scoreflow.tensor import as_time
from scoreflow.errors import IncompatibleComponentsError
from scoreflow.sampling.base import TrajectorySolver
from scoreflow.validators import one_of

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE, ScoreFn

ITO_METHODS = ("euler", "milstein", "srk")
STRATONOVICH_METHODS = ("euler_heun", "heun", "midpoint", "reversible_heun", "log_ode")
METHODS = ITO_METHODS + STRATONOVICH_METHODS


class TorchsdeReverseSDE(nn.Module):
    """The reverse-time SDE in torchsde's form, with flattened state and time ``s = t_start - t``.

    torchsde needs increasing time and 2-D ``y``; with ``s = t_start - t`` the reverse
    SDE reads ``dy = -[f - g^2 score] ds + g dw_s``.  The noise is diagonal and does
    not depend on ``y`` for the built-in SDEs, so the Ito and Stratonovich forms agree.
    """

    noise_type = "diagonal"

    def __init__(self, sde: SDE, score: ScoreFn, shape: tuple[int, ...], t_start: float,
                 sde_type: Literal["ito", "stratonovich"] = "ito") -> None:
        super().__init__()
        self.forward_sde = sde
        self.score = score
        self.shape = shape
        self.t_start = t_start
        self.sde_type = sde_type
        self.nfe = 0

    def _time(self, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return as_time(self.t_start - s, y.shape[0], y)

    def f(self, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Drift in reversed time."""
        x = y.reshape(self.shape)
        t = self._time(s, y)
        drift, _ = self.forward_sde.reverse(self.score).sde(x, t)
        self.nfe += 1
        return -drift.reshape(y.shape)

    def g(self, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Diagonal diffusion in reversed time, shape ``(B, D)``."""
        _, diffusion = self.forward_sde.sde(y.reshape(self.shape), self._time(s, y))
        return diffusion[:, None].expand_as(y)


@attrs.define(kw_only=True)
class TorchsdeSolver(TrajectorySolver):
    """Integrate the reverse SDE with ``torchsde.sdeint``.

    Attributes:
        method: A torchsde method: euler, milstein, srk (Ito) or euler_heun, heun,
            midpoint, reversible_heun, log_ode (Stratonovich).
        adaptive: Use torchsde's adaptive step control (``rtol``/``atol``).
        rtol: Relative tolerance for adaptive steps.
        atol: Absolute tolerance for adaptive steps.
        dt: Step size; defaults to the span divided by the sampler's ``num_steps``.
    """

    method: str = attrs.field(default="euler", validator=one_of(METHODS))
    adaptive: bool = False
    rtol: float = 1e-3
    atol: float = 1e-3
    dt: float | None = None

    def solve(self, x, t_start, t_end, num_steps, *, sde, score, generator=None):
        import torchsde

        sde_type = "ito" if self.method in ITO_METHODS else "stratonovich"
        if sde_type == "stratonovich" and sde.diffusion_depends_on_x():
            raise IncompatibleComponentsError(
                f"torchsde method {self.method!r} solves the Stratonovich form, which differs from the Ito "
                f"reverse SDE when the diffusion depends on x; use one of {ITO_METHODS}"
            )
        if self.method == "reversible_heun":
            warnings.warn(
                "reversible_heun is unstable on dissipative dynamics such as the reverse-time SDE: its "
                "parasitic mode grows like exp(int lambda dt) and can collapse multi-modal samples; "
                "prefer 'euler', 'milstein', 'srk', 'heun' or 'midpoint'",
                UserWarning,
                stacklevel=3,
            )
        shape = tuple(x.shape)
        adapter = TorchsdeReverseSDE(sde, score, shape, t_start, sde_type)
        span = t_start - t_end
        y0 = x.reshape(shape[0], -1)
        ts = torch.tensor([0.0, span], dtype=x.dtype, device=x.device)
        entropy = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device if generator else "cpu"))
        levy = "space-time" if self.method in ("srk", "log_ode") else "none"
        step = self.dt or span / num_steps
        # the step as the tree's hint: without it, BrownianInterval refines its tree to the size of every short
        # query, and the last step of a span that num_steps * step misses by a rounding (1e-17) made it split
        # without end (a hang, then gigabytes) on float64 starts below T
        bm = torchsde.BrownianInterval(
            t0=0.0, t1=float(ts[-1]), size=y0.shape, dtype=x.dtype, device=x.device,
            entropy=entropy, levy_area_approximation=levy, dt=step,
        )
        with warnings.catch_warnings():
            # torchsde warns that adaptive Euler needs additive noise; ours is additive
            # (g does not depend on y) even though it is declared "diagonal".
            warnings.filterwarnings("ignore", message=".*adaptive time-stepping.*", category=UserWarning)
            ys = torchsde.sdeint(
                adapter, y0, ts, bm=bm, method=self.method, dt=step,
                adaptive=self.adaptive, rtol=self.rtol, atol=self.atol,
            )
        return ys[-1].reshape(shape), adapter.nfe
