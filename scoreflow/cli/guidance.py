"""The guidance of ``scoreflow sample --class``: classifier-free on a class-conditional checkpoint, classifier
guidance with ``--classifier`` on any other."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scoreflow.cli.sampler_options import GuidedSamplingOptions


def guidance_condition(options: GuidedSamplingOptions, sde: Any, model: Any) -> dict[str, Any]:
    """``Sampler`` keywords for ``--class/--classifier/--guidance-scale`` (empty without ``--class``): classifier-free
    guidance on a class-conditional checkpoint, classifier guidance with ``--classifier`` on any other."""
    from scoreflow.models.base import model_classes

    label = options.class_label
    classes = model_classes(model)
    if label is None:
        if options.classifier:
            raise ValueError("--classifier given without --class (the label to guide toward)")
        if options.guidance_scale is not None:
            raise ValueError("--guidance-scale given without --class (the label to guide toward)")
        return {}
    if classes is not None:
        if options.classifier:
            raise ValueError("this checkpoint is class-conditional: --class uses classifier-free guidance, which "
                             "needs no --classifier (leave it out)")
        return {"condition": _free_guidance(label, classes, options)}
    if not options.classifier:
        raise ValueError("--class needs --classifier (a folder written by `scoreflow train-classifier`): this "
                         "checkpoint is unconditional; a class-conditional one (trained with --class-dropout) "
                         "takes --class with classifier-free guidance")
    if options.ode_solver:
        raise ValueError(f"--class with --classifier guides predictor-corrector sampling; it cannot apply to "
                         f"--ode-solver {options.ode_solver}")
    return {"condition": _classifier_guidance(label, options, sde)}


#: The guidance scale ``w`` of ``--class`` on a class-conditional checkpoint when --guidance-scale is not given: on
#: ``mnist-cfg`` the smallest scale of the sweep that put 98 % of samples in the asked digit on a seed the report
#: does not use (docs/reproduction/mnist-free-guidance.md).
DEFAULT_FREE_GUIDANCE_SCALE = 0.5


def _free_guidance(label: int, classes: int, options: GuidedSamplingOptions) -> Any:
    from scoreflow.sampling.free_guidance import ClassifierFreeGuidance

    if not 0 <= label < classes:
        raise ValueError(f"--class {label} is not a class of this checkpoint (allowed: 0..{classes - 1})")
    scale = DEFAULT_FREE_GUIDANCE_SCALE if options.guidance_scale is None else options.guidance_scale
    if not math.isfinite(scale) or scale < -1:
        raise ValueError(f"--guidance-scale must be a finite number >= -1 (-1: unconditional, 0: conditional), "
                         f"got {scale}")
    return ClassifierFreeGuidance(label, scale=scale)


def _classifier_guidance(label: int, options: GuidedSamplingOptions, sde: Any) -> Any:
    from scoreflow.models.classifier import classifier_fn
    from scoreflow.sampling.conditioning import ClassifierGuidance
    from scoreflow.training.classifier import load_classifier

    model, _ = load_classifier(classifier_location(options.classifier), device=options.device)
    if not 0 <= label < model.n_classes:
        raise ValueError(f"--class {label} is not a class of {options.classifier!r} "
                         f"(allowed: 0..{model.n_classes - 1})")
    scale = 1.0 if options.guidance_scale is None else options.guidance_scale
    if not math.isfinite(scale) or scale < 0:
        raise ValueError(f"--guidance-scale of classifier guidance must be a finite number >= 0, got {scale}")
    return ClassifierGuidance(classifier_fn(model, sde), label, scale=scale)


def classifier_location(text: str) -> Path:
    """A classifier folder as given, else the verified folder of the shipped classifier of that name."""
    from scoreflow.pretrained import shipped_classifier

    if Path(text).exists() or "/" in text or "\\" in text:
        return Path(text)
    return shipped_classifier(text)
