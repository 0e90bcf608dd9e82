"""scoreflow: score-based generative modeling through SDEs, open to plugins."""

from __future__ import annotations

from scoreflow.errors import (
    AmbiguousComponentError,
    CheckpointError,
    DroppedOptionsError,
    DuplicateComponentError,
    IncompatibleComponentsError,
    NonFiniteError,
    PluginError,
    PluginLoadError,
    RegistryError,
    ScoreflowError,
    SolverError,
    ScoreflowPluginWarning,
    UnknownComponentError,
    UnknownOptionError,
)
from scoreflow.flow import (
    DivergenceEstimator,
    EncodeResult,
    ExponentialLikelihood,
    LikelihoodResult,
    ODELikelihood,
    ODEResult,
    ODESolver,
    ProbabilityFlowODE,
    ProbabilityFlowSampler,
    TorchdiffeqSolver,
    decode,
    encode,
    interpolate,
    log_likelihood,
    ode_sample,
)
from scoreflow.hookspecs import hookimpl
from scoreflow.models import (MLP, EDMPreconditioner, ResUNet, ScoreNet, UNet, from_denoiser, make_denoiser_fn,
                              make_score_fn, to_denoiser)
from scoreflow.models.classifier import ConvClassifier, MLPClassifier, NoiseConditionalClassifier, classifier_fn
from scoreflow.oracles import GaussianMixture
from scoreflow.pretrained import ModelSource, PretrainedModel, SourceInfo, load_pretrained
from scoreflow.plugins import PluginHost, available, create, get_host, set_host
from scoreflow.registry import Entry, Registry
from scoreflow.sampling import (
    Corrector,
    EulerMaruyama,
    Langevin,
    NoneCorrector,
    NonePredictor,
    Predictor,
    ReverseDiffusion,
    Sampler,
    SampleResult,
    SamplingState,
    Schedule,
    Step,
    TorchsdeReverseSDE,
    TorchsdeSolver,
    TrajectorySolver,
)
from scoreflow.sampling.conditioning import ClassifierGuidance, Colorize, Condition, Inpaint, SMCInpaint, named_mask
from scoreflow.sampling.free_guidance import ClassifierFreeGuidance, GuidanceInterval
from scoreflow.sampling.tuning import TunedSchedule, tune_schedule
from scoreflow.training.classifier import load_classifier, save_classifier, train_noise_classifier
from scoreflow.sde import SDE, VESDE, ReverseSDE

__version__ = "0.1.0"
"""The installed version of scoreflow (also ``importlib.metadata.version("scoreflow")``)."""

__all__ = [  # sorted case-insensitively
    "AmbiguousComponentError", "available", "CheckpointError", "classifier_fn", "ClassifierFreeGuidance", "ClassifierGuidance", "Colorize",
    "Condition", "ConvClassifier", "Corrector", "create", "decode", "DivergenceEstimator", "DroppedOptionsError",
    "DuplicateComponentError", "EDMPreconditioner", "encode", "EncodeResult", "Entry", "EulerMaruyama", "ExponentialLikelihood", "from_denoiser", "GaussianMixture", "get_host", "GuidanceInterval", "hookimpl",
    "IncompatibleComponentsError", "Inpaint", "interpolate", "Langevin", "LikelihoodResult", "load_classifier", "load_pretrained",
    "log_likelihood", "make_denoiser_fn", "make_score_fn", "MLP", "MLPClassifier", "ModelSource", "named_mask",
    "NoiseConditionalClassifier", "NoneCorrector", "NonePredictor", "NonFiniteError", "ode_sample", "ODELikelihood", "ODEResult",
    "ODESolver", "PluginError", "PluginHost", "PluginLoadError", "Predictor", "PretrainedModel",
    "ProbabilityFlowODE", "ProbabilityFlowSampler", "Registry", "RegistryError", "ResUNet", "ReverseDiffusion",
    "ReverseSDE", "Sampler", "SampleResult", "SamplingState", "save_classifier", "Schedule", "ScoreflowError",
    "ScoreflowPluginWarning", "ScoreNet", "SDE", "set_host", "SMCInpaint", "SolverError", "SourceInfo", "Step",
    "to_denoiser", "TorchdiffeqSolver", "TorchsdeReverseSDE", "TorchsdeSolver", "train_noise_classifier",
    "TrajectorySolver", "tune_schedule", "TunedSchedule", "UNet", "UnknownComponentError", "UnknownOptionError",
    "VESDE", "__version__",
]
