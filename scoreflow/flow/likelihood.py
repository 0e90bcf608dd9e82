"""Log-likelihood through the probability-flow ODE (instantaneous change of variables).

``log p_eps(x) = log p_T(x_T) + int_eps^T div F(x_t, t) dt`` with ``F`` the
probability-flow drift.  The divergence is the Skilling-Hutchinson estimate
``v^T (dF/dx) v`` with probes fixed for the whole solve, or the exact trace.
Each ODE evaluation does one network forward and one (batched) vector-Jacobian
product that serves every probe.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import attrs
import torch
from torch import nn

from scoreflow.data.base import EIGHT_BIT_LEVELS, check_levels, dequantize
from scoreflow.flow.divergence import DivergenceODE, make_probes
from scoreflow.flow.likelihood_methods import (
    DivergenceEstimator,
    LikelihoodMethod,
    divergence_estimator,
    likelihood_method,
)
from scoreflow.flow.probability_flow import ProbabilityFlowODE
from scoreflow.tensor import check_finite, per_sample_dim
from scoreflow.validators import check_eps

if TYPE_CHECKING:
    from scoreflow.models.base import ScoreModel
    from scoreflow.sde.base import SDE



@attrs.frozen
class LikelihoodResult:
    """Per-sample log-likelihood in nats and bits/dim.

    ``logp = prior_logp + delta_logp`` (plus ``D ln(high - low)`` for quantized data mapped into a model's
    ``data_range``); ``bpd = -logp / (D ln 2)``, plus ``log2(levels)`` when the input was dequantized data of
    that many levels (8 for 8-bit images: the probability of the ``[0, 256)`` pixel values).
    """

    logp: torch.Tensor
    prior_logp: torch.Tensor
    delta_logp: torch.Tensor
    bpd: torch.Tensor
    nfe: int
    z: torch.Tensor


#: How far (in units of one level) a value may sit from its level's grid point and still count as on it.
GRID_TOLERANCE = 1e-3


def dequantization_levels(dequantize: bool | int) -> int | None:
    """The quantization levels a ``dequantize`` argument asks for: ``False`` none, ``True`` 8-bit (256), an
    integer that many."""
    if isinstance(dequantize, bool):
        return EIGHT_BIT_LEVELS if dequantize else None
    if isinstance(dequantize, int):
        return check_levels(dequantize)
    raise ValueError(f"dequantize must be True, False or a number of quantization levels, got {dequantize!r}")


def dequantize_uniform(x: torch.Tensor, generator: torch.Generator | None = None,
                       levels: int = EIGHT_BIT_LEVELS) -> torch.Tensor:
    """Check that ``x`` holds ``levels`` evenly spaced values in ``[0, 1]`` (``k / (levels - 1)``), then apply
    :func:`scoreflow.data.dequantize`; data off that grid is an error naming the levels it does fit."""
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 1:
        raise ValueError(f"dequantization expects data scaled to [0, 1], got values in [{low:g}, {high:g}]")
    scaled = x.detach().double() * (levels - 1)
    off = float((scaled - scaled.round()).abs().max())
    if off > GRID_TOLERANCE:
        raise ValueError(f"dequantization with {levels} levels expects values k/{levels - 1}, but some lie "
                         f"{off:.3g} of a level off that grid; {_levels_hint(x)}")
    return dequantize(x, generator, levels)


def _levels_hint(x: torch.Tensor) -> str:
    """Which quantization levels ``x`` fits, for an error message."""
    values = torch.unique(x.detach().double())
    for levels in range(max(2, len(values)), MAX_HINT_LEVELS + 1):  # L levels hold at most L distinct values
        scaled = values * (levels - 1)
        if float((scaled - scaled.round()).abs().max()) <= GRID_TOLERANCE:
            return f"they fit {levels} levels (pass dequantize={levels})"
    return (f"they fit no grid of at most {MAX_HINT_LEVELS} levels: pass dequantize=False for continuous data")


#: The most quantization levels an error message's hint tries.
MAX_HINT_LEVELS = 4096


def log_likelihood(
    model: ScoreModel,
    sde: SDE,
    x: torch.Tensor,
    *,
    method: LikelihoodMethod | Literal["ode", "exponential"] | None = None,
    estimator: DivergenceEstimator | Literal["gaussian", "rademacher", "exact"] = "gaussian",
    generator: torch.Generator | None = None,
    dequantize: bool | int = False,
    dtype: torch.dtype = torch.float32,
) -> LikelihoodResult:
    """Per-sample log-likelihood of ``x`` under the model's probability-flow ODE.

    Args:
        model: Score network or callable ``score(x, t)``.
        sde: The forward SDE.
        x: Data batch ``(B, ...)``.
        method: How to integrate, with its options and start time ``eps``: :class:`ODELikelihood` (the
            default: dopri5 at tolerance 1e-5 from ``eps = 1e-5``, the tutorial's) or
            :class:`ExponentialLikelihood` (a fixed number of exponential-integrator steps); ``"ode"`` and
            ``"exponential"`` name their defaults.
        estimator: :class:`DivergenceEstimator` (kind and ``n_probes``), or its kind by name with one probe.
        generator: Random generator for probes and dequantization noise.
        dequantize: Treat ``x`` as quantized data in ``[0, 1]`` and report bits/dim of the discrete data:
            ``True`` for 8-bit images (uniform dequantization ``(255 x + u)/256``, the tutorial's
            ``-logp / (D ln 2) + 8``), an integer ``L`` for data with ``L`` levels ``k / (L - 1)`` (17 for
            scikit-learn's digits: ``(16 x + u) / 17`` and ``+ log2(17)``); ``TensorData.levels`` says which.
            The quantized data is given in ``[0, 1]`` and mapped into the model's ``data_range`` after
            dequantization (``[-1, 1]`` for a bridged diffusers model); bits/dim are those of the ``[0, 1]`` data.
        dtype: Floating dtype for the computation (float32 by default).
    """
    method = likelihood_method(method)
    estimator = divergence_estimator(estimator)
    if isinstance(x, torch.Tensor):
        from scoreflow.validators import check_request

        check_request(f"{estimator.n_probes} probe(s) for a batch of shape {tuple(x.shape)}", estimator.n_probes,
                      x.shape, max(4, x.element_size()))
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ValueError(f"x must be a (batch, ...) tensor, got {getattr(x, 'shape', type(x).__name__)}")
    check_eps(method.eps, sde.T)
    levels = dequantization_levels(dequantize)
    x = x.to(dtype)
    check_finite("x", x)
    from scoreflow.models.base import data_range, make_score_fn

    log_jacobian = 0.0
    if levels is not None:
        x = dequantize_uniform(x, generator, levels)
        low, high = data_range(model)
        if (low, high) != (0.0, 1.0):  # the model's data lives elsewhere (a diffusers model: [-1, 1])
            x = low + (high - low) * x
            log_jacobian = per_sample_dim(x) * math.log(high - low)

    flow = ProbabilityFlowODE(sde, make_score_fn(model, sde))
    probes = make_probes(x, estimator.kind, estimator.n_probes, generator)
    divergence = DivergenceODE(flow, probes, exact=estimator.kind == "exact")
    z, delta, nfe = method.integrate(divergence, sde, x)
    return _result(sde, x, z, delta, nfe, levels, log_jacobian)


def _result(sde: SDE, x: torch.Tensor, z: torch.Tensor, delta: torch.Tensor, nfe: int,
            levels: int | None, log_jacobian: float = 0.0) -> LikelihoodResult:
    """Prior term, total and bits/dim of an integrated batch (of data with ``levels`` quantization levels; the
    ``[0, 1]`` data's density is the model's times ``exp(log_jacobian)``)."""
    prior = sde.prior_logp(z)
    logp = prior + delta + log_jacobian
    dim = per_sample_dim(x)
    bpd = -logp / (dim * math.log(2)) + (math.log2(levels) if levels is not None else 0.0)
    return LikelihoodResult(logp=logp, prior_logp=prior, delta_logp=delta, bpd=bpd, nfe=nfe, z=z)
