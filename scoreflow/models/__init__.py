"""Score networks."""

from scoreflow.models.base import ScoreModel, ScoreNet, make_score_fn
from scoreflow.models.mlp import MLP
from scoreflow.models.unet import UNet

__all__ = ["MLP", "ScoreModel", "ScoreNet", "UNet", "make_score_fn"]
