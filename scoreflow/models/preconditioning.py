"""EDM preconditioning: any raw network becomes a denoiser whose identity and scale need no learning."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from scoreflow.models.base import ScoreNet
from scoreflow.tensor import batch_broadcast

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE

#: The preconditionings a training config may name (``TrainConfig.preconditioning``).
PRECONDITIONINGS: tuple[str, ...] = ("none", "edm")


class EDMPreconditioner(ScoreNet):
    """``D(x, t) = c_skip y + c_out F(c_in y, c_noise)`` with ``y = x / alpha(t)`` at noise level ``s(t)``.

    Karras et al. (2022), Table 1: ``c_skip = sd^2 / (s^2 + sd^2)``, ``c_out = s sd / sqrt(s^2 + sd^2)``,
    ``c_in = 1 / sqrt(s^2 + sd^2)``, ``c_noise = ln(s) / 4``, with ``sd = sigma_data``: the identity and the
    data's scale need no learning, the network's input and target have unit variance at every noise level,
    and at small ``s`` every pixel's output starts from its input (so no pixel has to learn to copy its noise).
    Works for any SDE with a noise level (VE, VP, sub-VP, plugin SDEs). The output is the denoiser of ``x_0``
    (parametrization ``"data"``), which :func:`~scoreflow.models.make_score_fn` turns into the score.

    Args:
        net: The raw network ``F(x, c_noise)`` (its second argument is ``c_noise``, shape ``(B,)``).
        sde: The SDE whose ``noise_level`` and ``marginal_scale`` define ``s`` and ``alpha``.
        sigma_data: The data's standard deviation (EDM: 0.5).
    """

    parametrization = "data"

    def __init__(self, net: nn.Module, sde: SDE, sigma_data: float = 0.5) -> None:
        super().__init__()
        if isinstance(sigma_data, bool) or not isinstance(sigma_data, (int, float)) or not (
                math.isfinite(sigma_data) and sigma_data > 0):
            raise ValueError(f"sigma_data must be a finite positive number, got {sigma_data!r}")
        if getattr(net, "parametrization", "noise") == "score" and getattr(net, "sde", None) is not None:
            raise ValueError(f"{type(net).__name__} scales its output by the SDE's std (a score network); EDM "
                             "preconditioning wraps a raw network such as 'resunet'")
        self.net = net
        self.sde = sde
        self.sigma_data = float(sigma_data)
        self.num_classes = getattr(net, "num_classes", None)

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                      torch.Tensor]:
        """``(alpha, c_skip, c_out, c_in, c_noise)`` at ``t``, each of shape ``(B,)``."""
        s = self.sde.noise_level(t)
        sd2 = self.sigma_data**2
        root = torch.sqrt(s**2 + sd2)
        return self.sde.marginal_scale(t), sd2 / (s**2 + sd2), s * self.sigma_data / root, 1 / root, torch.log(s) / 4

    def forward(self, x: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        alpha, c_skip, c_out, c_in, c_noise = (c.to(x.dtype) for c in self.coefficients(t))
        y = x / batch_broadcast(alpha, x)
        extra = {} if class_labels is None else {"class_labels": class_labels}
        return batch_broadcast(c_skip, x) * y + batch_broadcast(c_out, x) * self.net(batch_broadcast(c_in, x) * y,
                                                                                    c_noise, **extra)
