"""Training: losses, configuration, checkpoints and the trainer."""

from scoreflow.training.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from scoreflow.training.config import TrainConfig
from scoreflow.training.losses import ImportanceTimeSampler, dsm_loss
from scoreflow.training.trainer import LoadedModel, Trainer, TrainResult, load_trained

__all__ = ["Checkpoint", "CheckpointError", "ImportanceTimeSampler", "LoadedModel", "TrainConfig", "TrainResult", "Trainer",
           "dsm_loss", "load_checkpoint", "load_trained", "save_checkpoint"]
