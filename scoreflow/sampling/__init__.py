"""Predictors, correctors and the predictor-corrector sampler."""

from scoreflow.sampling.base import Corrector, GridPosition, Predictor, Step, TrajectorySolver
from scoreflow.sampling.correctors import Langevin, NoneCorrector
from scoreflow.sampling.predictor_corrector import PredictorCorrectorSampler
from scoreflow.sampling.predictors import EulerMaruyama, NonePredictor, ReverseDiffusion
from scoreflow.sampling.protocol import SampleResult, SamplerProtocol
from scoreflow.sampling.sampler import Sampler
from scoreflow.sampling.schedules import Karras, LogSigma, Schedule, UniformSigma, UniformT
from scoreflow.sampling.torchsde_solver import TorchsdeReverseSDE, TorchsdeSolver
from scoreflow.sampling.trajectory import TrajectorySolverSampler

__all__ = [
    "Corrector", "EulerMaruyama", "GridPosition", "Karras", "Langevin", "LogSigma", "NoneCorrector", "NonePredictor",
    "Predictor", "PredictorCorrectorSampler", "ReverseDiffusion", "SampleResult", "Sampler", "SamplerProtocol",
    "Schedule", "Step", "TorchsdeReverseSDE", "TorchsdeSolver", "TrajectorySolver", "TrajectorySolverSampler",
    "UniformSigma", "UniformT",
]
