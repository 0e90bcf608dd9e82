"""The one shape every sampler has, and what the sampler shapes share.

A sampler is built once with its options and then draws with ``sample(model, sde, shape, ...)``; everything that
consumes samplers (``sample_many``, the command line, the benchmarks) depends on :class:`SamplerProtocol` only.
The shapes: :class:`~scoreflow.PredictorCorrectorSampler` (a step-wise predictor and corrector on a grid),
:class:`~scoreflow.TrajectorySolverSampler` (a solver that takes the whole trajectory at once) and
:class:`~scoreflow.ProbabilityFlowSampler` (the probability-flow ODE). ``sf.Sampler(...)`` builds the first or
the second from the component it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs
import torch

if TYPE_CHECKING:
    from scoreflow.models.base import ScoreModel
    from scoreflow.sde.base import SDE

#: Called by a sampler with ``{"i", "t", "x", "x_mean", "nfe"}`` after each step (or once, at the end).
StepCallback = Callable[[dict[str, Any]], None]


@attrs.frozen
class SampleResult:
    """Samples and the number of score-function evaluations (NFE) spent on them."""

    samples: torch.Tensor
    nfe: int


@runtime_checkable
class SamplerProtocol(Protocol):
    """What every sampler offers: a check against an SDE before any work, and ``sample``."""

    def check(self, sde: SDE) -> None:
        """Raise now if this sampler cannot run on ``sde``."""

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
        callback: StepCallback | None = None,
    ) -> SampleResult:
        """``shape[0]`` samples of ``model``'s distribution under ``sde``; the same generator state gives the same
        samples."""


def check_shape(shape: Any) -> tuple[int, ...]:
    """Validate a sample shape ``(B, ...)`` of positive integers."""
    try:
        dims = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a sequence of positive integers, got {shape!r}") from None
    if len(dims) < 2 or min(dims) <= 0 or any(int(s) != s for s in shape):
        raise ValueError(f"shape must be (batch, ...) with positive integers and at least 2 dims, got {shape!r}")
    return dims


def model_device(model: Any, default: torch.device | str | None = None) -> torch.device:
    """The device of ``model``'s first parameter, else ``default``, else CPU."""
    if default is not None:
        return torch.device(default)
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
    return torch.device("cpu")


def final_report(eps: float, x: torch.Tensor, nfe: int) -> dict[str, Any]:
    """The callback's ``{"i", "t", "x", "x_mean", "nfe"}`` for a sampler that reports once, at the end."""
    return {"i": 0, "t": torch.tensor(eps), "x": x, "x_mean": x, "nfe": nfe}


class CountingScore:
    """Wraps a score function and counts its network evaluations of the sampled batch: the sampler's NFE, exact
    whatever the components do (a call on a stacked batch of ``k`` copies, as classifier-free guidance makes,
    counts ``k``)."""

    def __init__(self, score: Callable[..., torch.Tensor], batch: int) -> None:
        self.score, self.batch, self.calls = score, batch, 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **labels: Any) -> torch.Tensor:
        self.calls += max(1, -(-x.shape[0] // self.batch))
        return self.score(x, t, **labels)


def begin_sampling(condition: Any, model: ScoreModel, sde: SDE, shape: tuple[int, ...], *,
                   generator: torch.Generator | None, device: torch.device | str | None, dtype: torch.dtype,
                   given: torch.Tensor | None) -> tuple[torch.device, CountingScore, Callable[..., torch.Tensor]]:
    """What a step-wise or whole-trajectory sampler does before its first step: the condition's checks against
    the shape and the model, the device (given, else the model's, else the generator's), the dtype check of the
    model against the samples (or the ``given`` start), and the score the steps use (counted, then guided)."""
    from scoreflow.models.base import check_model_dtype, make_score_fn

    condition.check(shape, sde)
    condition.check_model(model)
    device = model_device(model, device if device is not None else (generator.device if generator else None))
    check_model_dtype(model, given.dtype if isinstance(given, torch.Tensor) else dtype)
    counting = CountingScore(make_score_fn(model, sde), shape[0])
    return device, counting, condition.guide(counting, sde)
