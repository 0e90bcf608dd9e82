"""Probability-flow ODE sampling and likelihood."""

from scoreflow.flow.encoding import EncodeResult, decode, encode, interpolate, slerp
from scoreflow.flow.likelihood import LikelihoodResult, log_likelihood
from scoreflow.flow.likelihood_methods import DivergenceEstimator, ExponentialLikelihood, ODELikelihood
from scoreflow.flow.probability_flow import ProbabilityFlowODE, ProbabilityFlowSampler, ode_sample
from scoreflow.flow.solvers import ODEResult, ODESolver, TorchdiffeqSolver

__all__ = ["decode", "DivergenceEstimator", "encode", "EncodeResult", "ExponentialLikelihood", "interpolate", "LikelihoodResult", "ODELikelihood", "ODEResult", "ODESolver", "ProbabilityFlowODE", "ProbabilityFlowSampler",
           "TorchdiffeqSolver",
           "log_likelihood", "ode_sample", "slerp"]
