"""scoreflow-vp: VP and sub-VP SDEs and DDPM ancestral sampling as a scoreflow plugin (hookimpls only)."""

from __future__ import annotations

import scoreflow

from scoreflow_vp.ancestral import AncestralSampling
from scoreflow_vp.sde import SubVPSDE, VPSDE

__all__ = ["AncestralSampling", "SubVPSDE", "VPSDE"]


@scoreflow.hookimpl
def scoreflow_register_sdes(registry) -> None:
    registry.add("vp", VPSDE, aliases=("vpsde",))
    registry.add("subvp", SubVPSDE, aliases=("sub_vp", "subvpsde"))


@scoreflow.hookimpl
def scoreflow_register_predictors(registry) -> None:
    registry.add("ancestral", AncestralSampling, aliases=("ddpm",))
