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
    LikelihoodResult,
    ODEResult,
    ODESolver,
    ProbabilityFlowODE,
    ProbabilityFlowSampler,
    TorchdiffeqSolver,
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
from scoreflow.sampling.tuning import TunedSchedule, tune_schedule
from scoreflow.training.classifier import load_classifier, save_classifier, train_noise_classifier
from scoreflow.sde import SDE, VESDE, ReverseSDE

__version__ = "0.1.0"
"""The installed version of scoreflow (also ``importlib.metadata.version("scoreflow")``)."""

__all__ = [
    "ClassifierGuidance", "Colorize", "Condition", "ConvClassifier", "Inpaint", "MLPClassifier", "NoiseConditionalClassifier",
    "SMCInpaint", "classifier_fn", "load_classifier", "named_mask", "save_classifier", "train_noise_classifier",
    "EDMPreconditioner", "MLP", "ResUNet", "SDE", "VESDE", "from_denoiser", "make_denoiser_fn", "to_denoiser", "AmbiguousComponentError", "CheckpointError", "Corrector", "DroppedOptionsError", "DuplicateComponentError", "Entry",
    "EulerMaruyama", "GaussianMixture", "IncompatibleComponentsError", "Langevin", "LikelihoodResult",
    "NoneCorrector", "NonFiniteError", "NonePredictor", "ODEResult", "ODESolver", "PluginError", "PluginHost",
    "PluginLoadError", "Predictor", "ModelSource", "PretrainedModel", "SourceInfo", "ProbabilityFlowODE", "ProbabilityFlowSampler", "Registry", "RegistryError", "ReverseDiffusion",
    "ReverseSDE", "SampleResult", "Sampler", "SamplingState", "Schedule", "ScoreNet", "ScoreflowError", "ScoreflowPluginWarning", "SolverError", "Step",
    "TorchdiffeqSolver", "TorchsdeReverseSDE", "TorchsdeSolver", "TrajectorySolver", "TunedSchedule", "UNet",
    "UnknownComponentError", "UnknownOptionError", "__version__", "available", "create", "get_host", "hookimpl",
    "load_pretrained", "log_likelihood", "make_score_fn", "ode_sample", "set_host", "tune_schedule",
]
