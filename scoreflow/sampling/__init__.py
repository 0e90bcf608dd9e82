"""Predictors, correctors and the predictor-corrector sampler."""

from scoreflow.sampling.base import Corrector, Predictor, Step, TrajectorySolver
from scoreflow.sampling.correctors import Langevin, NoneCorrector
from scoreflow.sampling.predictors import EulerMaruyama, NonePredictor, ReverseDiffusion
from scoreflow.sampling.sampler import Sampler, SampleResult
from scoreflow.sampling.torchsde_solver import TorchsdeReverseSDE, TorchsdeSolver

__all__ = [
    "Corrector", "EulerMaruyama", "Langevin", "NoneCorrector", "NonePredictor", "Predictor",
    "ReverseDiffusion", "SampleResult", "Sampler", "Step", "TorchsdeReverseSDE", "TorchsdeSolver",
    "TrajectorySolver",
]
