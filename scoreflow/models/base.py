"""The score-model interface and the adapter that turns any model into ``score(x, t)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from scoreflow.tensor import batch_broadcast

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE

ScoreModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ScoreNet(nn.Module):
    """A network ``(x, t) -> output`` with ``x``'s shape.

    ``parametrization`` says what the output means: ``"score"`` (the score itself)
    or ``"noise"`` (the noise ``z`` in ``x_t = mean + std z``; the score is then
    ``-z / std``).
    """

    parametrization: Literal["score", "noise"] = "score"


def make_score_fn(model: ScoreModel, sde: SDE) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Wrap ``model`` as ``score(x, t)`` with a ``(B,)`` time and a shape check.

    Accepts a :class:`ScoreNet` (noise predictions are converted with the SDE's
    marginal std) or any callable returning the score.
    """
    if not callable(model):
        raise TypeError(f"a score model must be callable as model(x, t), got {type(model).__name__}")
    noise = getattr(model, "parametrization", "score") == "noise"
    if getattr(model, "parametrization", "score") not in ("score", "noise"):
        raise ValueError(
            f"unknown parametrization {model.parametrization!r}; allowed: 'score', 'noise'"
        )

    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = model(x, t)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"score model returned {got}, expected a tensor of shape {tuple(x.shape)}")
        if noise:
            _, std = sde.marginal_prob(x, t)
            out = -out / batch_broadcast(std, x)
        return out

    return score
