"""Sample quality: classifier-feature Frechet distance for digit images, distances for 2-D data."""

from __future__ import annotations

import hashlib
import weakref
from pathlib import Path

import numpy as np
import torch
from torch import nn

from scoreflow.data.base import TensorData


class DigitClassifier(nn.Module):
    """A small CNN for 1-channel digit images of any size; ``features`` is its 128-D penultimate layer."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(),
        )
        self.head = nn.Linear(128, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def classifier_epochs(n: int) -> int:
    """Epochs for ``n`` training images: 15 for small sets (the 8x8 digits), 2 from 10,000 images on (MNIST)."""
    return 15 if n < 10_000 else 2


def train_classifier(data: TensorData, *, epochs: int | None = None, seed: int = 0) -> DigitClassifier:
    """Fit :class:`DigitClassifier` on labelled images (seeded, CPU-friendly)."""
    epochs = classifier_epochs(len(data)) if epochs is None else epochs
    if data.labels is None:
        raise ValueError(f"dataset {data.name!r} has no labels; a classifier needs them")
    torch.manual_seed(seed)
    n_classes = int(data.labels.max()) + 1
    model = DigitClassifier(data.x.shape[1], n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=g)
        for i in range(0, len(data), 128):
            idx = order[i:i + 128]
            loss = nn.functional.cross_entropy(model(data.x[idx]), data.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


#: ``id(data) -> (weak reference to data, tensor versions, file name)``: hashing MNIST's 60,000 training images
#: takes about 0.4 s, and a benchmark asks for the same dataset's classifier once per sample set.
_FILE_NAMES: dict[int, tuple[weakref.ref, tuple[int, int], str]] = {}


def classifier_file_name(data: TensorData) -> str:
    """The cache file name of the classifier of ``data``: its name and a digest of its content."""
    versions = (data.x._version, data.labels._version)  # an in-place change to the tensors invalidates the entry
    known = _FILE_NAMES.get(id(data))
    if known is not None and known[0]() is data and known[1] == versions:
        return known[2]
    digest = hashlib.sha256(data.x.numpy().tobytes() + data.labels.numpy().tobytes()).hexdigest()[:16]
    name = f"classifier-{data.name}-{digest}.safetensors"
    if len(_FILE_NAMES) > 64:
        _FILE_NAMES.clear()
    _FILE_NAMES[id(data)] = (weakref.ref(data), versions, name)
    return name


def shipped_classifier_folder() -> Path:
    """Classifiers shipped with the package (MNIST's), found before any cache."""
    from importlib import resources

    return Path(str(resources.files("scoreflow.pretrained") / "classifiers"))


def cached_classifier(data: TensorData, cache_dir: Path) -> DigitClassifier:
    """The shipped classifier of ``data`` if there is one, else train once per dataset content and keep the
    weights (safetensors) in ``cache_dir``. An unreadable cache file is retrained and replaced."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    name = classifier_file_name(data)
    path = Path(cache_dir) / name
    model = DigitClassifier(data.x.shape[1], int(data.labels.max()) + 1)
    for candidate in (shipped_classifier_folder() / name, path):
        if candidate.exists():
            try:
                model.load_state_dict(load_file(str(candidate)))
                return model.eval()
            except (SafetensorError, OSError, RuntimeError, ValueError):
                continue  # a corrupt cache: train again below
    model = train_classifier(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)
    return model


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
            features = _batched(clf.features, x).numpy()
            accuracy = float((_batched(clf, x).argmax(1) == test.labels).float().mean())
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
