"""scoreflow-vp: the variance-preserving SDE as a scoreflow plugin (hookimpls only)."""

from __future__ import annotations

import scoreflow

from scoreflow_vp.sde import VPSDE

__all__ = ["VPSDE"]


@scoreflow.hookimpl
def scoreflow_register_sdes(registry) -> None:
    registry.add("vp", VPSDE, aliases=("vpsde",))
