"""Sample quality: classifier-feature Frechet distance for digit images, distances for 2-D data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from scoreflow.data.base import TensorData
from scoreflow.models.digit_classifier import (  # noqa: F401  (re-exported: scoreflow.evaluation's public names)
    DigitClassifier,
    cached_classifier,
    classifier_epochs,
    classifier_file_name,
    content_digest,
    shipped_classifier_folder,
    train_classifier,
)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets ``a`` and ``b`` (rows = samples)."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    # a small ridge keeps sqrtm defined when features are constant (ReLU units that never fire)
    ridge = 1e-6 * np.eye(a.shape[1])
    s1, s2 = np.cov(a, rowvar=False) + ridge, np.cov(b, rowvar=False) + ridge
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.asarray(covmean).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, *, projections: int = 256, seed: int = 0) -> float:
    """Sliced 1-Wasserstein distance between two point clouds (equal sizes are resampled)."""
    g = torch.Generator().manual_seed(seed)
    n = min(len(a), len(b))
    a = a[torch.randperm(len(a), generator=g)[:n]].double()
    b = b[torch.randperm(len(b), generator=g)[:n]].double()
    dirs = torch.randn(a.shape[1], projections, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa, _ = torch.sort(a @ dirs, dim=0)
    pb, _ = torch.sort(b @ dirs, dim=0)
    return float((pa - pb).abs().mean())


#: A sample counts as confidently classified when the classifier's top probability reaches this.
CONFIDENT = 0.9


def _batched(fn, x: torch.Tensor, size: int = 1000) -> torch.Tensor:
    return torch.cat([fn(x[i:i + size]) for i in range(0, len(x), size)])


#: Test-set features and classifier accuracy per (classifier file, test content): a benchmark measures many
#: sample sets against one test split, and the 10,000 test images cost more than a few hundred samples.
_TEST_FEATURES: dict[tuple[str, str], tuple[np.ndarray, float]] = {}


def _test_features(clf: DigitClassifier, classifier_name: str, test: TensorData) -> tuple[np.ndarray, float]:
    x = test.x.contiguous()
    key = (classifier_name, hashlib.sha256(x.numpy().tobytes() + test.labels.numpy().tobytes()).hexdigest())
    if key not in _TEST_FEATURES:
        with torch.no_grad():
            features = _batched(clf.features, x)
            accuracy = float((clf.head(features).argmax(1) == test.labels).float().mean())  # the head on them
            features = features.numpy()
        if len(_TEST_FEATURES) > 8:
            _TEST_FEATURES.clear()
        _TEST_FEATURES[key] = (features, accuracy)
    return _TEST_FEATURES[key]


def image_quality(samples: torch.Tensor, train: TensorData, test: TensorData, cache_dir: Path) -> dict:
    """Classifier-feature Frechet distance to the test split, the class histogram of samples, and the
    fraction classified with probability at least :data:`CONFIDENT`."""
    clf = cached_classifier(train, cache_dir)
    f_test, accuracy = _test_features(clf, classifier_file_name(train), test)
    with torch.no_grad():
        f_samples = _batched(clf.features, samples.clamp(0, 1)).numpy()
        probs = torch.softmax(clf.head(torch.from_numpy(f_samples)), 1)
        classes = probs.argmax(1)
    hist = torch.bincount(classes, minlength=int(train.labels.max()) + 1).tolist()
    return {"frechet_distance": frechet_distance(f_samples, f_test), "class_histogram": hist,
            "confident_fraction": float((probs.max(1).values >= CONFIDENT).float().mean()),
            "classifier_test_accuracy": accuracy, "n_samples": int(len(samples))}


def quality_references(n: int, train: TensorData, test: TensorData, cache_dir: Path, *, seed: int = 0) -> dict:
    """What :func:`image_quality` gives ``n`` real training images (the floor a perfect sampler reaches at
    this ``n``) and ``n`` uniform-noise images (the ceiling)."""
    g = torch.Generator().manual_seed(seed)
    real = train.x[torch.randperm(len(train), generator=g)[:n]]
    noise = torch.rand((n, *train.sample_shape), generator=g)
    return {"real_images": image_quality(real, train, test, cache_dir),
            "uniform_noise": image_quality(noise, train, test, cache_dir)}


def vector_quality(samples: torch.Tensor, test: TensorData) -> dict:
    """Sliced Wasserstein distance to the test split, and mean/covariance errors."""
    return {
        "sliced_wasserstein": sliced_wasserstein(samples, test.x),
        "mean_error": float((samples.double().mean(0) - test.x.double().mean(0)).norm()),
        "cov_error": float((torch.cov(samples.double().T) - torch.cov(test.x.double().T)).norm()),
        "n_samples": int(len(samples)),
    }
