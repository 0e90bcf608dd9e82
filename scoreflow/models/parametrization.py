"""What a network predicts, and the one conversion from its output to the score, the noise and the denoiser.

Every SDE with linear marginals has ``x_t = alpha(t) x_0 + std(t) z``. In the scaled variable
``y = x / alpha`` this is ``y = x_0 + s z`` with the noise level ``s = std / alpha``
(:meth:`~scoreflow.sde.SDE.noise_level`). A network may predict, at ``(x_t, t)``:

``"score"``
    ``grad log p_t(x_t)`` itself (the tutorial U-Net, any plain callable);
``"noise"``
    the noise ``z`` (DDPM's epsilon); score ``= -z / std``;
``"data"``
    the denoiser ``D = E[x_0 | x_t]`` (EDM's ``D(x, sigma)``); score ``= (alpha D - x) / std^2``;
``"v"``
    ``v = (z - s x_0) / sqrt(1 + s^2)`` (Salimans & Ho's v-prediction in the scaled variable, so for a VP SDE
    it is ``alpha z - sigma x_0``); then ``D = y / (1 + s^2) - s v / sqrt(1 + s^2)``.

:func:`noise_estimate` turns any of them into the estimate of ``z``, from which the score (``-z / std``) and
the denoiser (``(x - std z) / alpha``) follow; the training loss (:func:`~scoreflow.training.dsm_loss`),
every sampler (:func:`~scoreflow.models.make_score_fn`) and the likelihood go through it, so a network's
declaration is honoured everywhere. :class:`~scoreflow.models.preconditioning.EDMPreconditioner` wraps any
raw network as a denoiser with Karras et al.'s (2022) ``c_skip``, ``c_out``, ``c_in`` and ``c_noise``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch

from scoreflow.tensor import batch_broadcast

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE

Parametrization = Literal["score", "noise", "data", "v"]

#: The parameterisations a network may declare (``ScoreNet.parametrization``).
PARAMETRIZATIONS: tuple[str, ...] = ("score", "noise", "data", "v")


def check_parametrization(value: object) -> str:
    """``value`` if it names a parameterisation, else ``ValueError`` naming the allowed ones."""
    if not isinstance(value, str) or value not in PARAMETRIZATIONS:
        raise ValueError(f"unknown parametrization {value!r}; allowed: {', '.join(map(repr, PARAMETRIZATIONS))}")
    return value


def scale_and_std(sde: SDE, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``alpha(t)`` and ``std(t)`` of the SDE's marginal, each shaped to broadcast against ``x``."""
    _, std = sde.marginal_prob(x, t)
    alpha = sde.marginal_scale(t)
    return batch_broadcast(alpha.to(x.dtype), x), batch_broadcast(std.to(x.dtype), x)


def noise_estimate(output: torch.Tensor, x: torch.Tensor, t: torch.Tensor, sde: SDE,
                   parametrization: str) -> torch.Tensor:
    """The estimate of the noise ``z`` in ``x = alpha x_0 + std z`` that a network ``output`` stands for."""
    if parametrization == "noise":
        return output
    alpha, std = scale_and_std(sde, x, t)
    if parametrization == "score":
        return -output * std
    if parametrization == "data":
        return (x - alpha * output) / std
    if parametrization == "v":
        s = std / alpha
        y = x / alpha
        denoised = y / (1 + s**2) - s * output / torch.sqrt(1 + s**2)
        return (x - alpha * denoised) / std
    raise ValueError(f"unknown parametrization {parametrization!r}; allowed: "
                     f"{', '.join(map(repr, PARAMETRIZATIONS))}")


def to_score(output: torch.Tensor, x: torch.Tensor, t: torch.Tensor, sde: SDE, parametrization: str) -> torch.Tensor:
    """The score ``grad log p_t(x)`` a network ``output`` of the given parameterisation stands for."""
    if parametrization == "score":
        return output
    _, std = scale_and_std(sde, x, t)
    return -noise_estimate(output, x, t, sde, parametrization) / std


def denoised_from_score(score: torch.Tensor, x: torch.Tensor, t: torch.Tensor, sde: SDE) -> torch.Tensor:
    """Tweedie's formula: ``E[x_0 | x_t] = (x + std^2 score) / alpha``."""
    alpha, std = scale_and_std(sde, x, t)
    return (x + std**2 * score) / alpha


def target_for(parametrization: str, x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor, sde: SDE) -> torch.Tensor:
    """What a network of this parameterisation should output at ``x_t = alpha x0 + std z`` (for tests and
    plugin losses): the score ``-z / std``, ``z``, ``x0`` or ``v``."""
    alpha, std = scale_and_std(sde, x0, t)
    if parametrization == "score":
        return -z / std
    if parametrization == "noise":
        return z
    if parametrization == "data":
        return x0
    if parametrization == "v":
        s = std / alpha
        return (z - s * x0) / torch.sqrt(1 + s**2)
    raise ValueError(f"unknown parametrization {parametrization!r}; allowed: "
                     f"{', '.join(map(repr, PARAMETRIZATIONS))}")
