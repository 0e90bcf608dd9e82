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
    GridPosition,
    Langevin,
    NoneCorrector,
    NonePredictor,
    Predictor,
    PredictorCorrectorSampler,
    ReverseDiffusion,
    Sampler,
    SampleResult,
    SamplerProtocol,
    Schedule,
    Step,
    TorchsdeReverseSDE,
    TorchsdeSolver,
    TrajectorySolver,
    TrajectorySolverSampler,
)
from scoreflow.sampling.conditioning import (ClassifierGuidance, Colorize, Condition, Hook, Inpaint, SMCInpaint,
                                             named_mask)
from scoreflow.sampling.free_guidance import ClassifierFreeGuidance, GuidanceInterval
from scoreflow.sampling.sdedit import SDEditResult, sdedit
from scoreflow.sampling.tuning import GridSearch, TunedSchedule, tune_schedule
from scoreflow.training.classifier import load_classifier, save_classifier, train_noise_classifier
from scoreflow.sde import SDE, VESDE, ReverseSDE

__version__ = "0.2.0"
"""The installed version of scoreflow (also ``importlib.metadata.version("scoreflow")``)."""

#: The public names, in groups; each group sorted case-insensitively.
__all__ = [
    # plugin system and registries
    "available", "create", "Entry", "get_host", "hookimpl", "PluginHost", "Registry", "set_host",
    # SDEs
    "ReverseSDE", "SDE", "VESDE",
    # score networks and classifiers
    "classifier_fn", "ConvClassifier", "EDMPreconditioner", "from_denoiser", "load_classifier", "make_denoiser_fn",
    "make_score_fn", "MLP", "MLPClassifier", "NoiseConditionalClassifier", "ResUNet", "save_classifier", "ScoreNet",
    "to_denoiser", "train_noise_classifier", "UNet",
    # sampling
    "Corrector", "EulerMaruyama", "GridPosition", "GridSearch", "Langevin", "NoneCorrector", "NonePredictor",
    "Predictor", "PredictorCorrectorSampler", "ReverseDiffusion", "Sampler", "SampleResult", "SamplerProtocol",
    "Schedule", "Step", "TorchsdeReverseSDE", "TorchsdeSolver", "TrajectorySolver", "TrajectorySolverSampler",
    "tune_schedule", "TunedSchedule",
    # conditions (guidance, inpainting)
    "ClassifierFreeGuidance", "ClassifierGuidance", "Colorize", "Condition", "GuidanceInterval", "Hook", "Inpaint",
    "named_mask", "sdedit", "SDEditResult", "SMCInpaint",
    # probability flow: ODE sampling, encoding, likelihood
    "decode", "DivergenceEstimator", "encode", "EncodeResult", "ExponentialLikelihood", "interpolate",
    "LikelihoodResult", "log_likelihood", "ode_sample", "ODELikelihood", "ODEResult", "ODESolver",
    "ProbabilityFlowODE", "ProbabilityFlowSampler", "TorchdiffeqSolver",
    # pretrained models and exact oracles
    "GaussianMixture", "load_pretrained", "ModelSource", "PretrainedModel", "SourceInfo",
    # errors and warnings
    "AmbiguousComponentError", "CheckpointError", "DroppedOptionsError", "DuplicateComponentError",
    "IncompatibleComponentsError", "NonFiniteError", "PluginError", "PluginLoadError", "RegistryError",
    "ScoreflowError", "ScoreflowPluginWarning", "SolverError", "UnknownComponentError", "UnknownOptionError",
    # version
    "__version__",
]
