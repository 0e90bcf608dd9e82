"""Probability-flow encoding: data to latent and back (Song et al. 2021, sec. 4.3).

The probability-flow ODE is a bijection between the data at ``eps`` and the prior at ``T``: :func:`encode`
integrates it forward (data to latent), :func:`decode` backward (:func:`~scoreflow.ode_sample` from given
latents), and :func:`interpolate` decodes spherical interpolations between two latents. The latent of a
well-trained model is distributed as the prior, so an interpolation between two latents stays on the prior's
shell of typical draws, where the network has seen its inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import torch

from scoreflow.errors import NonFiniteError
from scoreflow.flow.probability_flow import ProbabilityFlowODE, ProbabilityFlowSampler, solver_name
from scoreflow.sampling.protocol import SampleResult
from scoreflow.tensor import check_finite

if TYPE_CHECKING:
    from scoreflow.models.base import ScoreModel
    from scoreflow.sde.base import SDE


@attrs.frozen
class EncodeResult:
    """Latents (the ODE's state at ``T``) and the score evaluations (NFE) spent on them."""

    latents: torch.Tensor
    nfe: int


def _check_data(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (batch, ...), got {type(x).__name__}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (batch, ...) with at least one item, got {tuple(x.shape)}")
    check_finite(name, x)
    return x


def _flow(sampler: ProbabilityFlowSampler | None, sde: SDE) -> ProbabilityFlowSampler:
    """The probability-flow sampler that encodes and decodes (default: dopri5 at 1e-5 down to eps 1e-3), checked
    against ``sde``; one that ends with a denoising step would not invert :func:`encode`."""
    sampler = ProbabilityFlowSampler() if sampler is None else sampler
    if not isinstance(sampler, ProbabilityFlowSampler):
        raise TypeError(f"sampler must be a ProbabilityFlowSampler, got {type(sampler).__name__}")
    if sampler.denoise:
        raise ValueError("encoding and decoding invert each other: give a ProbabilityFlowSampler with denoise=False")
    sampler.check(sde)
    return sampler


def encode(model: ScoreModel, sde: SDE, x: torch.Tensor, *, sampler: ProbabilityFlowSampler | None = None
           ) -> EncodeResult:
    """The probability-flow latents of ``x`` (data in the model's convention): the ODE integrated from ``eps``
    to ``T``. :func:`decode` with the same sampler inverts it up to the solver's error.

    Args:
        model: Score network or callable ``score(x, t)``.
        sde: The SDE the model was trained for.
        x: Data, shape ``(batch, ...)``.
        sampler: The solver, its tolerances and ``eps`` (the time the data sit at: the ODE is singular at 0), as
            a :class:`~scoreflow.ProbabilityFlowSampler` (default: dopri5 at tolerance 1e-5, ``eps`` 1e-3).
    """
    from scoreflow.models.base import make_score_fn

    x = _check_data("x", x)
    flow = _flow(sampler, sde)
    ode_solver, eps = flow.solver_obj, flow.eps
    func = ProbabilityFlowODE(sde, make_score_fn(model, sde))
    with torch.no_grad():
        try:
            z, nfe = ode_solver.solve(func, x, eps, sde.T)
        except NonFiniteError as exc:
            raise NonFiniteError(f"encode with {solver_name(ode_solver)}: {exc}") from None
    check_finite("latents", z)
    return EncodeResult(z, nfe)


def decode(model: ScoreModel, sde: SDE, latents: torch.Tensor, *, sampler: ProbabilityFlowSampler | None = None
           ) -> SampleResult:
    """The data the probability-flow ODE carries ``latents`` (at ``T``) to at ``sampler.eps``: :func:`encode`'s
    inverse, and :func:`~scoreflow.ode_sample` from given latents (no final denoising step, so that it inverts)."""
    latents = _check_data("latents", latents)
    return _flow(sampler, sde).sample(model, sde, tuple(latents.shape), init=latents, dtype=latents.dtype)


def slerp(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between ``a`` and ``b`` (each ``(...)``) at ``weights`` in [0, 1] (shape ``(n,)``):
    ``(n, ...)``, the norm interpolated linearly and the direction along the great circle."""
    a64, b64 = a.double().flatten(), b.double().flatten()
    na, nb = a64.norm(), b64.norm()
    cos = torch.clamp(a64 @ b64 / (na * nb), -1.0, 1.0)
    angle = torch.arccos(cos)
    w = weights.double()[:, None]
    if float(angle) < 1e-6:  # parallel: a straight line is the great circle
        out = (1 - w) * a64 + w * b64
    else:
        ua, ub = a64 / na, b64 / nb
        direction = (torch.sin((1 - w) * angle) * ua + torch.sin(w * angle) * ub) / torch.sin(angle)
        out = direction * ((1 - w) * na + w * nb)
    return out.to(a.dtype).reshape(len(weights), *a.shape)


#: The most frames :func:`interpolate` decodes (all at once, as one batch).
MAX_FRAMES = 256


def interpolate(model: ScoreModel, sde: SDE, x_a: torch.Tensor, x_b: torch.Tensor, n: int, *,
                sampler: ProbabilityFlowSampler | None = None) -> SampleResult:
    """``n`` frames from ``x_a`` to ``x_b`` (one item each, without a batch dimension: ``(C, H, W)`` for an
    image): both encoded, their latents interpolated spherically (:func:`slerp`), every frame decoded. The first
    and last frames reconstruct ``x_a`` and ``x_b``; the NFE counts the encoding too."""
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= MAX_FRAMES:
        raise ValueError(f"the number of frames must be an integer in [2, {MAX_FRAMES}] (the two ends included), "
                         f"got {n!r}")
    pair = [_check_data(name, v[None] if isinstance(v, torch.Tensor) else v)
            for name, v in (("x_a", x_a), ("x_b", x_b))]
    if pair[0].shape != pair[1].shape:
        raise ValueError(f"x_a and x_b must have one shape, got {tuple(pair[0].shape)} and {tuple(pair[1].shape)}")
    encoded = encode(model, sde, torch.cat(pair), sampler=sampler)
    latents = slerp(encoded.latents[0], encoded.latents[1], torch.linspace(0, 1, n))
    decoded = decode(model, sde, latents, sampler=sampler)
    return SampleResult(decoded.samples, encoded.nfe + decoded.nfe)
