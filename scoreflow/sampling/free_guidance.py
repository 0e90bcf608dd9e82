"""Classifier-free guidance (Ho & Salimans 2022): a class-conditional network steers its own sampling.

A network trained with label dropout (``scoreflow train --class-dropout 0.1``) gives both the conditional score
``s(x, t, c)`` and the unconditional one ``s(x, t)`` (its "no class" label). The guided score is

    s_w(x, t) = (1 + w) s(x, t, c) - w s(x, t),

so ``w = 0`` samples the conditional model, ``w = -1`` the unconditional one, and ``w > 0`` sharpens the class
(Ho & Salimans' ``w``; diffusers' ``guidance_scale`` is ``1 + w``). Each guided evaluation is one network call
on the stacked batch ``[x, x]`` with labels ``[c, no class]``, counted as two network evaluations of the original
batch in a sampler's NFE (``w = 0`` and ``w = -1`` need one).

:class:`ClassifierFreeGuidance` is a :class:`~scoreflow.sampling.conditioning.Condition`, so it composes with
every predictor, corrector, schedule and trajectory solver of :class:`~scoreflow.Sampler`, and with
:class:`~scoreflow.ProbabilityFlowSampler` (``condition=``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import torch

from scoreflow.models.base import model_classes
from scoreflow.models.embedding import NO_CLASS
from scoreflow.sampling.conditioning import Condition

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE, ScoreFn

#: A guidance scale: one number, or a schedule ``w(t) -> (B,)`` over the times of the batch.
GuidanceScale = float | Callable[[torch.Tensor], torch.Tensor]


def _check_scale(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if callable(value):
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"guidance scale must be a finite number or a schedule w(t), got {value!r}")


def _labels(value: Any) -> torch.Tensor:
    labels = torch.as_tensor(value)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool or labels.dim() > 1 \
            or labels.numel() == 0 or (labels < 0).any():
        raise ValueError(f"labels must be a non-negative int or a 1-D tensor of them, got {value!r}")
    return labels.long()


@attrs.define(eq=False)
class GuidanceInterval:
    """A guidance schedule: ``scale`` inside the noise-level interval ``[sigma_low, sigma_high]`` and ``0`` (the
    plain conditional score) outside it (Kynkäänniemi et al. 2024 apply guidance only in the middle of the
    noise levels, where it sharpens classes without the sample-diversity loss it causes at high levels).
    ``sde`` gives each time's noise level."""

    sde: SDE
    scale: float = attrs.field(validator=_check_scale)
    sigma_low: float = 0.0
    sigma_high: float = math.inf

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.sigma_low < self.sigma_high:
            raise ValueError(f"need 0 <= sigma_low < sigma_high, got {self.sigma_low!r}, {self.sigma_high!r}")

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        s = self.sde.noise_level(t)
        inside = (s >= self.sigma_low) & (s <= self.sigma_high)
        return torch.where(inside, torch.full_like(s, float(self.scale)), torch.zeros_like(s))


@attrs.define(eq=False)
class ClassifierFreeGuidance(Condition):
    """Sample ``p(x | c)`` sharpened by ``scale`` with a class-conditional network's own unconditional score.

    Attributes:
        labels: The wanted class: one int for every sample, or one per sample (``0..num_classes-1``).
        scale: ``w`` (Ho & Salimans): ``0`` the conditional model, ``-1`` the unconditional one, larger values
            sharper classes; or a schedule ``w(t) -> (B,)`` such as :class:`GuidanceInterval`.
    """

    labels: int | torch.Tensor = attrs.field(converter=_labels)
    scale: GuidanceScale = attrs.field(default=1.0, validator=_check_scale)

    def check(self, shape: tuple[int, ...], sde: SDE) -> None:
        if self.labels.dim() == 1 and len(self.labels) != shape[0]:
            raise ValueError(f"classifier_free_guidance: {len(self.labels)} labels for a batch of {shape[0]} samples")

    def check_model(self, model: object) -> None:
        classes = model_classes(model)
        if classes is None:
            raise ValueError(f"classifier-free guidance needs a class-conditional network; {type(model).__name__} "
                             "is unconditional (train one with --class-dropout, or guide this one with a noise-"
                             "conditional classifier: classifier_guidance)")
        top = int(self.labels.max())
        if top >= classes:
            raise ValueError(f"class {top} is not a class of this network (allowed: 0..{classes - 1})")

    def guide(self, score: ScoreFn, sde: SDE) -> ScoreFn:
        constant = None if callable(self.scale) else float(self.scale)

        def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            b = x.shape[0]
            wanted = self.labels.to(x.device).expand(b)
            if constant == 0.0:
                return score(x, t, class_labels=wanted)
            none = torch.full((b,), NO_CLASS, dtype=torch.long, device=x.device)
            if constant == -1.0:
                return score(x, t, class_labels=none)
            both = score(torch.cat([x, x]), torch.cat([t, t]), class_labels=torch.cat([wanted, none]))
            conditional, unconditional = both[:b], both[b:]
            w = torch.full((b,), constant, dtype=x.dtype, device=x.device) if constant is not None \
                else torch.as_tensor(self.scale(t), dtype=x.dtype, device=x.device).expand(b)
            w = w.reshape(b, *([1] * (x.dim() - 1)))
            return conditional + w * (conditional - unconditional)

        return guided
