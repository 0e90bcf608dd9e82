"""The reverse-time SDE as a named class (not one built inside ``reverse()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from scoreflow.tensor import batch_broadcast

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE, ScoreFn


class ReverseSDE:
    """``dx = [f - g^2 score] dt + g dw_bar`` run backwards from ``T``.

    With ``probability_flow=True`` it is the probability-flow ODE
    ``dx = [f - g^2 score / 2] dt`` (diffusion zero).
    """

    def __init__(self, forward: SDE, score: ScoreFn, *, probability_flow: bool = False) -> None:
        self.forward = forward
        self.score = score
        self.probability_flow = probability_flow

    @property
    def T(self) -> float:  # noqa: N802
        """End time of the forward process (the reverse process starts there)."""
        return self.forward.T

    def _scale(self) -> float:
        return 0.5 if self.probability_flow else 1.0

    def sde(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reverse drift (shape of ``x``) and diffusion (``(B,)``)."""
        drift, diffusion = self.forward.sde(x, t)
        score = self.score(x, t)
        drift = drift - batch_broadcast(diffusion**2, x) * score * self._scale()
        return drift, torch.zeros_like(diffusion) if self.probability_flow else diffusion

    def discretize(
        self, x: torch.Tensor, t: torch.Tensor, dt: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reverse of the forward discretisation: ``(f - G^2 score, G)``."""
        f, G = self.forward.discretize(x, t, dt)
        rev_f = f - batch_broadcast(G**2, x) * self.score(x, t) * self._scale()
        return rev_f, torch.zeros_like(G) if self.probability_flow else G
