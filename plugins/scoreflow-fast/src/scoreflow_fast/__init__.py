"""scoreflow-fast: few-step samplers as a scoreflow plugin (hookimpls only)."""

from __future__ import annotations

import scoreflow
from scoreflow_fast.adaptive import GottaGoFast
from scoreflow_fast.langevin import AnnealedLangevin
from scoreflow_fast.predictors import (DDIM, DEIS, IPNDM, DPMSolver2, DPMSolver3, DPMSolverPP2M, DPMSolverPP2MSDE,
                                        DPMSolverPP3M, EDMHeun, UniPC)

__all__ = ["DDIM", "DEIS", "IPNDM", "AnnealedLangevin", "DPMSolver2", "DPMSolver3", "DPMSolverPP2M", "DPMSolverPP2MSDE",
           "DPMSolverPP3M", "EDMHeun",
           "GottaGoFast", "UniPC"]


@scoreflow.hookimpl
def scoreflow_register_predictors(registry) -> None:
    registry.add("ddim", DDIM)
    registry.add("edm_heun", EDMHeun, aliases=("heun_karras",))
    registry.add("dpm_solver_2", DPMSolver2, aliases=("dpm2",))
    registry.add("dpm_solver_3", DPMSolver3, aliases=("dpm3",))
    registry.add("dpmpp_2m", DPMSolverPP2M, aliases=("dpm_solver_pp_2m",))
    registry.add("dpmpp_2m_sde", DPMSolverPP2MSDE, aliases=("dpm_solver_pp_2m_sde",))
    registry.add("dpmpp_3m", DPMSolverPP3M, aliases=("dpm_solver_pp_3m",))
    registry.add("ipndm", IPNDM, aliases=("improved_pndm",))
    registry.add("deis", DEIS, aliases=("deis_tab",))
    registry.add("unipc", UniPC, aliases=("uni_pc",))


@scoreflow.hookimpl
def scoreflow_register_trajectory_solvers(registry) -> None:
    registry.add("gotta_go_fast", GottaGoFast, aliases=("adaptive_sde", "ggf"))


@scoreflow.hookimpl
def scoreflow_register_correctors(registry) -> None:
    registry.add("ald", AnnealedLangevin, aliases=("annealed_langevin",))
