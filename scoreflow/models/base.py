"""The score-model interface and the adapter that turns any model into ``score(x, t)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from scoreflow.models.parametrization import Parametrization, check_parametrization, denoised_from_score, to_score

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE

ScoreModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ScoreNet(nn.Module):
    """A network ``(x, t) -> output`` with ``x``'s shape.

    ``parametrization`` says what the output means (:mod:`scoreflow.models.parametrization`): ``"score"``
    (the score itself), ``"noise"`` (the noise ``z`` in ``x_t = alpha x_0 + std z``), ``"data"`` (the
    denoiser ``E[x_0 | x_t]``) or ``"v"``. Training, sampling and the likelihood all convert it the same way.
    """

    parametrization: Parametrization = "score"
    #: The interval the network's data lives in: scoreflow's datasets and models use ``[0, 1]``; a bridged
    #: diffusers model ``[-1, 1]``. Samplers return samples in it; ``log_likelihood(..., dequantize=...)`` takes
    #: quantized data in ``[0, 1]``, maps it into this range and reports the bits/dim of the ``[0, 1]`` data.
    data_range: tuple[float, float] = (0.0, 1.0)
    #: ``None`` for an unconditional network; a class-conditional one (trained with labels and label dropout,
    #: ``--class-dropout``) has this many classes and takes ``forward(x, t, class_labels)`` with int labels in
    #: ``0..num_classes-1`` or :data:`~scoreflow.models.embedding.NO_CLASS` (its unconditional score).
    num_classes: int | None = None


def model_classes(model: object) -> int | None:
    """How many classes ``model`` is conditional on (:attr:`ScoreNet.num_classes`; ``None``: unconditional)."""
    n = getattr(model, "num_classes", None)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"a model's num_classes must be a positive integer or None, got {n!r}")
    return n


def check_model_dtype(model: object, dtype: torch.dtype) -> None:
    """Refuse to run a network whose floating weights have another dtype than the samples asked for (torch's own
    error names neither), saying how to fix it."""
    if not isinstance(model, nn.Module):
        return
    weight = next((p for p in model.parameters() if p.is_floating_point()), None)
    if weight is not None and weight.dtype != dtype:
        raise ValueError(f"the model's weights are {weight.dtype} but the samples are {dtype}: cast the model "
                         f"(model.to({dtype})) or ask for {weight.dtype}")


def data_range(model: object) -> tuple[float, float]:
    """The data interval of ``model`` (:attr:`ScoreNet.data_range`; ``[0, 1]`` for plain callables)."""
    low, high = getattr(model, "data_range", (0.0, 1.0))
    if not float(low) < float(high):
        raise ValueError(f"a model's data_range must be an increasing pair, got {(low, high)!r}")
    return float(low), float(high)


def make_score_fn(model: ScoreModel, sde: SDE) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Wrap ``model`` as ``score(x, t)`` with a ``(B,)`` time and a shape check.

    Accepts a :class:`ScoreNet` (its declared ``parametrization`` is converted with the SDE's marginal) or any
    callable returning the score. For a class-conditional model (:func:`model_classes`) the function also takes
    ``class_labels`` (``score(x, t, class_labels=y)``); without them it is the model's unconditional score.
    """
    if not callable(model):
        raise TypeError(f"a score model must be callable as model(x, t), got {type(model).__name__}")
    parametrization = check_parametrization(getattr(model, "parametrization", "score"))
    conditional = model_classes(model) is not None

    def score(x: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if class_labels is not None and not conditional:
            raise ValueError(f"{type(model).__name__} is unconditional (no num_classes): it takes no class labels; "
                             "classifier-free guidance needs a network trained with --class-dropout")
        out = model(x, t) if class_labels is None else model(x, t, class_labels=class_labels)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"score model returned {got}, expected a tensor of shape {tuple(x.shape)}")
        return to_score(out, x, t, sde, parametrization)

    return score


def make_denoiser_fn(model: ScoreModel, sde: SDE) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Wrap ``model`` as the denoiser ``D(x, t) = E[x_0 | x_t = x]`` (Tweedie's formula on its score; a
    ``"data"`` network's own output)."""
    score = make_score_fn(model, sde)
    if getattr(model, "parametrization", "score") == "data":
        def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            out = model(x, t)
            if out.shape != x.shape:
                raise ValueError(f"denoiser returned {tuple(out.shape)}, expected {tuple(x.shape)}")
            return out
        return denoise

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return denoised_from_score(score(x, t), x, t, sde)

    return denoise
