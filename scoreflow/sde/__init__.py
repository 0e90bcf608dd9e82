"""Forward SDEs and their reverse-time counterparts."""

from scoreflow.sde.base import SDE, ScoreFn
from scoreflow.sde.reverse import ReverseSDE
from scoreflow.sde.ve import VESDE

__all__ = ["SDE", "ReverseSDE", "ScoreFn", "VESDE"]
