"""scoreflow-diffusers: diffusers models in scoreflow (hookimpls only).

``bridge(unet, scheduler) -> (model, sde)`` for objects in memory; ``load_diffusers(DIR)`` and the model source
``diffusers:DIR`` (``sf.load_pretrained("diffusers:DIR")``, ``scoreflow sample --checkpoint diffusers:DIR``) for a
folder written by ``save_pretrained``.
"""

from __future__ import annotations

import scoreflow
from scoreflow_diffusers.bridge import DiffusersScoreNet, DiffusersVEScoreNet, bridge
from scoreflow_diffusers.loading import DiffusersSource, load_diffusers
from scoreflow_diffusers.sde import AlphasCumprodSDE

__all__ = ["AlphasCumprodSDE", "DiffusersScoreNet", "DiffusersSource", "DiffusersVEScoreNet", "bridge",
           "load_diffusers"]


@scoreflow.hookimpl
def scoreflow_register_pretrained(registry) -> None:
    registry.add("diffusers", DiffusersSource)
