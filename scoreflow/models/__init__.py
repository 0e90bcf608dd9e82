"""Score networks, what they predict (``parametrization``) and EDM preconditioning."""

from scoreflow.models.base import ScoreModel, ScoreNet, make_denoiser_fn, make_score_fn
from scoreflow.models.denoiser_convention import from_denoiser, to_denoiser
from scoreflow.models.mlp import MLP
from scoreflow.models.preconditioning import EDMPreconditioner
from scoreflow.models.resunet import ResUNet
from scoreflow.models.unet import UNet

__all__ = ["EDMPreconditioner", "MLP", "ResUNet", "ScoreModel", "ScoreNet", "UNet", "from_denoiser",
           "make_denoiser_fn", "make_score_fn", "to_denoiser"]
