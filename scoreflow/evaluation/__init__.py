"""Evaluation, the application layer over the components: sample-quality metrics (``metrics``) and sampling or
likelihood over many samples in seeded, rank-sharded blocks (``runs``)."""

from scoreflow.evaluation.calibration import CalibrationReport, denoiser_calibration
from scoreflow.evaluation.metrics import (
    CONFIDENT,
    DigitClassifier,
    cached_classifier,
    classifier_epochs,
    classifier_file_name,
    frechet_distance,
    image_quality,
    quality_references,
    shipped_classifier_folder,
    sliced_wasserstein,
    train_classifier,
    vector_quality,
)
from scoreflow.evaluation.runs import block_seed, likelihood_many, mean_and_standard_error, sample_many

__all__ = [
    "CONFIDENT", "CalibrationReport", "DigitClassifier", "denoiser_calibration", "block_seed", "cached_classifier", "classifier_epochs", "classifier_file_name",
    "frechet_distance", "image_quality", "likelihood_many", "mean_and_standard_error", "quality_references",
    "sample_many", "shipped_classifier_folder", "sliced_wasserstein", "train_classifier", "vector_quality",
]
