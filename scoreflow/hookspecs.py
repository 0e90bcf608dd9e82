"""The hook specifications plugins implement.

Every hook receives a :class:`~scoreflow.registry.Registry` and returns nothing;
a plugin calls ``registry.add(name, factory, aliases=(...))``.  Arguments may be
added to these specs later, never removed (pluggy lets an implementation accept
only the arguments it names).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from scoreflow.registry import Registry

PROJECT_NAME = "scoreflow"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def scoreflow_register_sdes(registry: Registry) -> None:
    """Add forward SDEs (subclasses of :class:`scoreflow.SDE`) to ``registry``."""


@hookspec
def scoreflow_register_score_nets(registry: Registry) -> None:
    """Add score-network factories (returning :class:`scoreflow.ScoreNet`) to ``registry``."""


@hookspec
def scoreflow_register_predictors(registry: Registry) -> None:
    """Add reverse-time predictors (:class:`scoreflow.Predictor`) to ``registry``."""


@hookspec
def scoreflow_register_trajectory_solvers(registry: Registry) -> None:
    """Add whole-trajectory reverse-SDE solvers (:class:`scoreflow.TrajectorySolver`: ``solve()`` only, no
    step) to ``registry``; ``Sampler(predictor=name)`` selects them in place of the step loop."""


@hookspec
def scoreflow_register_correctors(registry: Registry) -> None:
    """Add score-based MCMC correctors (:class:`scoreflow.Corrector`) to ``registry``."""


@hookspec
def scoreflow_register_ode_solvers(registry: Registry) -> None:
    """Add probability-flow ODE solvers (:class:`scoreflow.ODESolver`) to ``registry``."""


@hookspec
def scoreflow_register_datasets(registry: Registry) -> None:
    """Add datasets: factories ``(split="train", *, data_dir=None, **options) -> TensorData``."""


@hookspec
def scoreflow_register_schedules(registry: Registry) -> None:
    """Add time schedules (:class:`scoreflow.Schedule`): ``(sde, num_steps, eps)`` -> decreasing times."""


@hookspec
def scoreflow_register_pretrained(registry: Registry) -> None:
    """Add pretrained models: factories returning :class:`scoreflow.pretrained.PretrainedModel`, or model sources
    (:class:`scoreflow.pretrained.ModelSource`) that load models trained elsewhere, addressed as ``NAME:LOCATION``."""


@hookspec
def scoreflow_register_conditions(registry: Registry) -> None:
    """Add conditions (:class:`scoreflow.Condition`) that steer sampling: inpainting, guidance, ..."""


@hookspec
def scoreflow_register_classifiers(registry: Registry) -> None:
    """Add noise-conditional classifiers: factories returning :class:`scoreflow.NoiseConditionalClassifier`."""


@hookspec
def scoreflow_register_weightings(registry: Registry) -> None:
    """Add training loss weightings: factories returning :class:`scoreflow.training.weighting.LossWeighting`
    (where training draws its times and each draw's weight); a config selects one with ``weighting`` and
    ``weighting_options``."""


@hookspec
def scoreflow_register_feature_extractors(registry: Registry) -> None:
    """Add feature extractors for sample quality (Frechet distance, KID): factories returning
    :class:`scoreflow.models.features.FeatureExtractor` (images in ``[0, 1]`` -> feature vectors)."""


#: Registry kind -> the hook that fills it.  One row per extension kind.
HOOKS_BY_KIND: dict[str, str] = {
    "sde": "scoreflow_register_sdes",
    "score_net": "scoreflow_register_score_nets",
    "predictor": "scoreflow_register_predictors",
    "trajectory_solver": "scoreflow_register_trajectory_solvers",
    "corrector": "scoreflow_register_correctors",
    "ode_solver": "scoreflow_register_ode_solvers",
    "dataset": "scoreflow_register_datasets",
    "schedule": "scoreflow_register_schedules",
    "pretrained": "scoreflow_register_pretrained",
    "condition": "scoreflow_register_conditions",
    "classifier": "scoreflow_register_classifiers",
    "weighting": "scoreflow_register_weightings",
    "feature_extractor": "scoreflow_register_feature_extractors",
}

#: Hook name -> the kind it fills.
KIND_BY_HOOK: dict[str, str] = {hook: kind for kind, hook in HOOKS_BY_KIND.items()}

#: The interface a component of each kind implements, as ``"module:Class"`` (imported when first needed, so
#: the plugin layer does not import the component layers it serves). ``Registry.resolve`` passes instances
#: of these through and refuses anything else.
BASES_BY_KIND: dict[str, tuple[str, ...]] = {
    "sde": ("scoreflow.sde.base:SDE",),
    "score_net": ("scoreflow.models.base:ScoreNet",),
    "predictor": ("scoreflow.sampling.base:Predictor",),
    "trajectory_solver": ("scoreflow.sampling.base:TrajectorySolver",),
    "corrector": ("scoreflow.sampling.base:Corrector",),
    "ode_solver": ("scoreflow.flow.solvers:ODESolver",),
    "dataset": ("scoreflow.data.base:TensorData", "scoreflow.data.streamed:ImageFiles"),
    "schedule": ("scoreflow.sampling.schedules:Schedule",),
    "pretrained": ("scoreflow.pretrained:PretrainedModel", "scoreflow.pretrained:ModelSource"),
    "condition": ("scoreflow.sampling.conditioning:Condition",),
    "classifier": ("scoreflow.models.classifier:NoiseConditionalClassifier",),
    "weighting": ("scoreflow.training.weighting:LossWeighting",),
    "feature_extractor": ("scoreflow.models.features:FeatureExtractor",),
}

#: The built-in components' plugin module, registered by name like any other plugin.
BUILTIN_MODULE = "scoreflow.builtin"
