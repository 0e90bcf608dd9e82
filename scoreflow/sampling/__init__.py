"""Predictors, correctors and the predictor-corrector sampler."""

from scoreflow.sampling.base import Corrector, Predictor, SamplingState, Step, TrajectorySolver
from scoreflow.sampling.correctors import Langevin, NoneCorrector
from scoreflow.sampling.predictors import EulerMaruyama, NonePredictor, ReverseDiffusion
from scoreflow.sampling.sampler import Sampler, SampleResult
from scoreflow.sampling.schedules import Karras, LogSigma, Schedule, UniformSigma, UniformT
from scoreflow.sampling.torchsde_solver import TorchsdeReverseSDE, TorchsdeSolver

__all__ = [
    "Corrector", "EulerMaruyama", "Karras", "Langevin", "LogSigma", "NoneCorrector", "NonePredictor", "Predictor",
    "ReverseDiffusion", "SampleResult", "Sampler", "Schedule", "Step", "TorchsdeReverseSDE", "TorchsdeSolver",
    "SamplingState", "TrajectorySolver", "UniformSigma", "UniformT",
]
