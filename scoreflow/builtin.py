"""The built-in components, registered through the same hooks as any plugin."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from scoreflow.data import sources
from scoreflow.flow.solvers import ADAPTIVE_METHODS, FIXED_METHODS, TorchdiffeqSolver
from scoreflow.hookspecs import hookimpl
from scoreflow.models.classifier import ConvClassifier, MLPClassifier
from scoreflow.models.features import AutoencoderFeatures, ClassifierFeatures
from scoreflow.models.mlp import MLP
from scoreflow.models.resunet import ResUNet
from scoreflow.models.unet import UNet
from scoreflow.pretrained import SHIPPED_SHA256, SHIPPED_SUMMARIES, PretrainedModel
from scoreflow.sampling.conditioning import ClassifierGuidance, Colorize, Inpaint, SMCInpaint
from scoreflow.sampling.free_guidance import ClassifierFreeGuidance
from scoreflow.sampling.correctors import Langevin, NoneCorrector
from scoreflow.sampling.predictors import EulerMaruyama, NonePredictor, ReverseDiffusion
from scoreflow.sampling.schedules import Karras, LogSigma, UniformSigma, UniformT
from scoreflow.sampling.tuning import TunedSchedule
from scoreflow.sampling.torchsde_solver import TorchsdeSolver
from scoreflow.sde.ve import VESDE
from scoreflow.training.weighting import EDMWeighting, LikelihoodWeighting, Sigma2Weighting

if TYPE_CHECKING:
    from scoreflow.registry import Registry


@hookimpl
def scoreflow_register_sdes(registry: Registry) -> None:
    registry.add("ve", VESDE, aliases=("vesde",))
    registry.add("ve_tutorial", VESDE.tutorial, summary="The classic notebook's dx = sigma^t dw (sigma = 25).")


@hookimpl
def scoreflow_register_score_nets(registry: Registry) -> None:
    registry.add("unet", UNet)
    registry.add("mlp", MLP)
    registry.add("resunet", ResUNet, summary="DDPM++-style U-Net: padded convolutions, residual blocks, attention; "
                 "raw output (use with preconditioning = 'edm').")


@hookimpl
def scoreflow_register_predictors(registry: Registry) -> None:
    registry.add("euler", EulerMaruyama, aliases=("euler_maruyama", "em"))
    registry.add("reverse_diffusion", ReverseDiffusion)
    registry.add("none", NonePredictor)


@hookimpl
def scoreflow_register_trajectory_solvers(registry: Registry) -> None:
    registry.add("torchsde", TorchsdeSolver, summary="Reverse SDE solved by torchsde.sdeint (method=...).")


@hookimpl
def scoreflow_register_correctors(registry: Registry) -> None:
    registry.add("langevin", Langevin)
    registry.add("none", NoneCorrector)


@hookimpl
def scoreflow_register_ode_solvers(registry: Registry) -> None:
    for method in ADAPTIVE_METHODS:
        registry.add(method, functools.partial(TorchdiffeqSolver, method=method),
                     summary=f"torchdiffeq's adaptive {method!r} (rtol, atol).")
    for method in FIXED_METHODS:
        registry.add(method, functools.partial(TorchdiffeqSolver, method=method),
                     summary=f"torchdiffeq's fixed-grid {method!r} (num_steps).")


@hookimpl
def scoreflow_register_datasets(registry: Registry) -> None:
    registry.add("digits", sources.digits)
    registry.add("mnist", sources.mnist)
    registry.add("fashion_mnist", sources.fashion_mnist)
    registry.add("folder", sources.folder)
    for name in sources.TOY_SAMPLERS:
        registry.add(name, sources._toy_factory(name))


@hookimpl
def scoreflow_register_schedules(registry: Registry) -> None:
    registry.add("uniform_t", UniformT, summary="Uniform in t (the tutorial's grid; the built-in SDEs' default).")
    registry.add("log_sigma", LogSigma, aliases=("log_snr", "polyexponential"),
                 summary="Uniform in the log of the noise level (option rho: k-diffusion's polyexponential ramp).")
    registry.add("karras", Karras, aliases=("edm",), summary="Karras et al.'s rho ramp in the noise level (rho=7).")
    registry.add("uniform_sigma", UniformSigma, summary="Uniform in the noise level.")
    registry.add("tuned", TunedSchedule,
                 summary="Grids tuned to one model by `scoreflow tune-schedule` (option path: the run or JSON file).")


@hookimpl
def scoreflow_register_pretrained(registry: Registry) -> None:
    for name, sha256 in SHIPPED_SHA256.items():
        registry.add(name, functools.partial(PretrainedModel.shipped, "scoreflow.pretrained", name, sha256),
                     summary=SHIPPED_SUMMARIES.get(name, ""))


@hookimpl
def scoreflow_register_conditions(registry: Registry) -> None:
    registry.add("inpaint", Inpaint, aliases=("impute",),
                 summary="Fill in entries where mask is False (known, mask); Song et al. 2021, app. I.")
    registry.add("inpaint_smc", SMCInpaint, aliases=("smcdiff",),
                 summary="Inpainting by sequential Monte Carlo over the batch's particles: exact as they grow.")
    registry.add("colorize", Colorize, summary="Colour grey images (option grey): inpainting in a decorrelated RGB basis.")
    registry.add("classifier_guidance", ClassifierGuidance, aliases=("guidance",),
                 summary="Add scale * grad log p_t(y | x) of a noise-conditional classifier (classifier, labels).")
    registry.add("classifier_free_guidance", ClassifierFreeGuidance, aliases=("cfg",),
                 summary="(1 + w) s(x, t, c) - w s(x, t) of a class-conditional network (labels, scale); Ho & Salimans 2022.")


@hookimpl
def scoreflow_register_classifiers(registry: Registry) -> None:
    registry.add("conv", ConvClassifier, summary="Small noise-conditional CNN for images (classifier guidance).")
    registry.add("mlp", MLPClassifier, summary="Noise-conditional MLP for flat data (dim, n_classes).")


@hookimpl
def scoreflow_register_weightings(registry: Registry) -> None:
    registry.add("sigma2", Sigma2Weighting, summary="The tutorial's lambda = std^2, t ~ U(eps, T).")
    registry.add("likelihood", LikelihoodWeighting,
                 summary="lambda = g^2 (Song et al. 2021), t importance-sampled by g^2/std^2 by default.")
    registry.add("edm", EDMWeighting, summary="Karras et al. 2022: log-normal noise levels, lambda = (s^2 + sd^2)/(s sd)^2.")


@hookimpl
def scoreflow_register_feature_extractors(registry: Registry) -> None:
    registry.add("classifier", ClassifierFeatures, summary=ClassifierFeatures.description)
    registry.add("autoencoder", AutoencoderFeatures, summary=AutoencoderFeatures.description)
