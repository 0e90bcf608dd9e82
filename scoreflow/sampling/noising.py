"""Draws of the forward process that sampling starts from or jumps back by: the prior at a start time, given
images noised to it, and a state carried to a noisier time (RePaint's jump back)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from scoreflow.tensor import batch_broadcast, check_finite, randn_like

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE


def renoise(
    x: torch.Tensor, s: torch.Tensor, t: torch.Tensor, *, sde: SDE, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw ``x_t`` given ``x_s`` (``s < t``, shape ``(B,)`` each) under the forward process of a linear SDE:
    ``x_t = (alpha_t / alpha_s) x_s + alpha_t sqrt(sigma_t^2 - sigma_s^2) z`` with ``sigma`` the noise level."""
    alpha_s = batch_broadcast(sde.marginal_scale(s).to(x.dtype), x)
    alpha_t = batch_broadcast(sde.marginal_scale(t).to(x.dtype), x)
    level_s = batch_broadcast(sde.noise_level(s).to(x.dtype), x)
    level_t = batch_broadcast(sde.noise_level(t).to(x.dtype), x)
    spread = (level_t**2 - level_s**2).clamp_min(0).sqrt()
    return alpha_t / alpha_s * x + alpha_t * spread * randn_like(x, generator)


def prior_at(sde: SDE, shape: tuple[int, ...], t: float, *, generator: torch.Generator | None = None,
             device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A draw to start sampling from at time ``t``: the SDE's prior at ``T``; below it the same draw scaled to
    ``std(t) / std(T)``, the forward marginal at ``t`` of a point at the origin (what truncating the start
    neglects is the data's own spread, ``alpha(t)^2 Var(x_0)`` against ``std(t)^2``)."""
    x = sde.prior_sampling(shape, generator=generator, device=device, dtype=dtype)
    if t >= sde.T:
        return x
    _, std = sde.marginal_prob(torch.zeros(2, 1, dtype=torch.float64), torch.tensor([t, sde.T], dtype=torch.float64))
    return x * float(std[0] / std[1])


def noise_images(images: torch.Tensor, t: float, *, sde: SDE, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """``images`` carried by the forward process to time ``t``: a draw of ``x_t ~ p_0t(. | x_0 = images)``."""
    mean, std = sde.marginal_prob(images, torch.full((images.shape[0],), t, dtype=images.dtype,
                                                     device=images.device))
    return mean + batch_broadcast(std, images) * randn_like(images, generator)


def check_init(init: Any, shape: tuple[int, ...], name: str = "init") -> torch.Tensor:
    """A copy of a given starting state (``init`` or ``images``) after checking its type, shape and values."""
    if not isinstance(init, torch.Tensor) or not init.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {type(init).__name__}")
    if tuple(init.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(init.shape)}, expected the sample shape {shape}")
    check_finite(name, init)
    return init.clone()


def starting_state(shape: tuple[int, ...], start: float, *, sde: SDE, generator: torch.Generator | None,
                   device: torch.device, dtype: torch.dtype, init: torch.Tensor | None,
                   images: torch.Tensor | None) -> torch.Tensor:
    """Where a sampler starts at time ``start``: ``init`` as given, ``images`` noised to ``start`` (SDEdit) or a
    draw of the prior scaled to ``start``."""
    if init is not None and images is not None:
        raise ValueError("give init (the state at the start time) or images (noised to it), not both")
    if images is not None:
        return noise_images(check_init(images, shape, "images"), start, sde=sde, generator=generator)
    if init is None:
        return prior_at(sde, shape, start, generator=generator, device=device, dtype=dtype)
    return check_init(init, shape)
