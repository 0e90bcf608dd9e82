"""Sample quality without labels: Frechet distance and KID in a feature space, each beside the figures of real
held-out images and of noise, and a memorisation check against the training images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from scoreflow.data.base import TensorData
from scoreflow.models.features import FeatureExtractor
from scoreflow.evaluation.metrics import frechet_distance


def kernel_distance(a: torch.Tensor, b: torch.Tensor, *, max_rows: int = 2000, seed: int = 0) -> float:
    """KID (Binkowski et al. 2018): the unbiased squared MMD between feature sets ``a`` and ``b`` with the kernel
    ``k(x, y) = (x . y / F + 1)^3``, on at most ``max_rows`` random rows of each (seeded). Its expectation is 0 for
    two samples of one distribution, so small negative values are sampling noise."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"KID needs at least 2 feature rows on each side, got {len(a)} and {len(b)}")
    g = torch.Generator().manual_seed(seed)
    x = a[torch.randperm(len(a), generator=g)[:max_rows]]
    y = b[torch.randperm(len(b), generator=g)[:max_rows]]
    dim = a.shape[1]

    def within(z: torch.Tensor) -> torch.Tensor:
        k = (z @ z.T / dim + 1) ** 3
        return (k.sum() - k.diagonal().sum()) / (len(z) * (len(z) - 1))

    return float(within(x) + within(y) - 2 * ((x @ y.T / dim + 1) ** 3).mean())


def nearest_distances(x: torch.Tensor, reference: torch.Tensor, *, chunk: int = 256) -> torch.Tensor:
    """Root-mean-square pixel distance from each row of ``x`` to its nearest row of ``reference``."""
    flat_ref = reference.flatten(1).double()
    out = []
    for block in x.flatten(1).double().split(chunk):
        out.append(torch.cdist(block, flat_ref).min(dim=1).values)
    return torch.cat(out) / flat_ref.shape[1] ** 0.5


def memorisation(samples: torch.Tensor, train: TensorData, held_out: torch.Tensor, *,
                 quantile: float = 0.05) -> dict[str, float]:
    """How close samples come to training images, against how close unseen (held-out) real images come.

    A model that copies its training set puts many samples nearer a training image than almost any held-out image
    is: ``share_closer_than_held_out`` is the share of samples nearer than the ``quantile`` of held-out images'
    nearest distances, about ``quantile`` for a model that does not copy and near 1 for one that does.
    """
    d_samples = nearest_distances(samples.clamp(0, 1), train.x)
    d_held = nearest_distances(held_out, train.x)
    threshold = float(torch.quantile(d_held, quantile))
    return {"median_nearest_train_distance": float(d_samples.median()),
            "held_out_median_nearest_train_distance": float(d_held.median()),
            "share_closer_than_held_out": float((d_samples < threshold).double().mean()),
            "expected_share": quantile, "held_out_quantile_distance": threshold}


def _scores(features: torch.Tensor, test_features: torch.Tensor, seed: int) -> dict[str, float]:
    return {"frechet_distance": frechet_distance(np.asarray(features, dtype=np.float64),
                                                 np.asarray(test_features, dtype=np.float64)),
            "kid": kernel_distance(features, test_features, seed=seed)}


def sample_quality(samples: torch.Tensor, train: TensorData, test: TensorData, extractor: FeatureExtractor,
                   cache_dir: Path, *, seed: int = 0) -> dict[str, Any]:
    """Frechet distance and KID of ``samples`` (in ``[0, 1]``) to the test split in ``extractor``'s features, the
    same for as many real training images (the floor at this sample count) and uniform noise images (the ceiling),
    and :func:`memorisation` with the test images as the held-out set."""
    extractor.check(test)
    if tuple(samples.shape[1:]) != tuple(test.sample_shape):
        raise ValueError(f"samples have shape {tuple(samples.shape[1:])}, the dataset's images "
                         f"{tuple(test.sample_shape)}")
    if len(samples) < 2:
        raise ValueError(f"sample quality needs at least 2 samples, got {len(samples)}")
    extractor.prepare(train, cache_dir)
    g = torch.Generator().manual_seed(seed)
    n = len(samples)
    real = train.x[torch.randperm(len(train), generator=g)[:n]]
    noise = torch.rand((n, *test.sample_shape), generator=g)
    test_features = extractor.features(test.x)
    held_out = test.x[torch.randperm(len(test), generator=g)[:n]]
    return {"n_samples": n, "n_test": len(test),
            **_scores(extractor.features(samples), test_features, seed),
            "references": {"real_images": _scores(extractor.features(real), test_features, seed),
                           "uniform_noise": _scores(extractor.features(noise), test_features, seed)},
            "memorisation": memorisation(samples, train, held_out)}
