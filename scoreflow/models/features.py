"""Feature extractors: the spaces in which sample quality (Frechet distance, KID) is measured.

A :class:`FeatureExtractor` maps images in ``[0, 1]`` of one dataset's shape to feature vectors. It is a registered
kind (``scoreflow_register_feature_extractors``), so a plugin can add Inception features where torchvision and its
weights are available. Built-ins:

- ``classifier``: the penultimate layer of a small CNN trained on the dataset's labels (shipped for MNIST, trained
  once per dataset content and cached otherwise). It sees what separates the classes, so it is the sharper measure
  for labelled digit-like data, and it needs labels.
- ``autoencoder``: the pooled bottleneck of a small convolutional autoencoder trained once on the dataset's own
  training images (a few hundred steps, seeded, cached by content). It works on any image folder, labelled or not,
  and any size or channel count; it knows only the data it was trained on, so its figures compare samplers and
  models of one dataset, never across datasets or with published FIDs.
"""

from __future__ import annotations

import abc
from pathlib import Path

import torch
from torch import nn

from scoreflow.data.base import TensorData
from scoreflow.models.digit_classifier import cached_classifier, content_digest


class FeatureExtractor(abc.ABC):
    """Images in ``[0, 1]`` of one dataset's shape -> ``(N, F)`` features. :meth:`prepare` is called once with the
    training split (train or load what the features need) before :meth:`features`."""

    #: What the features are and where they stop being meaningful (shown by ``scoreflow list``).
    description: str = ""

    def check(self, data: TensorData) -> None:
        """Raise ``ValueError`` naming why these features cannot serve ``data`` (default: image data only)."""
        if data.kind != "image":
            raise ValueError(f"feature extractor {type(self).__name__} works on images; dataset {data.name!r} holds "
                             f"{data.kind} data")

    @abc.abstractmethod
    def prepare(self, train: TensorData, cache_dir: Path) -> None:
        """Make the extractor ready for ``train``'s images (train once and cache under ``cache_dir``)."""

    @abc.abstractmethod
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, F)`` float features of ``images`` (``(N, C, H, W)`` in ``[0, 1]``)."""


def _batched(fn, x: torch.Tensor, size: int = 1000) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(x[i:i + size]) for i in range(0, len(x), size)])


class ClassifierFeatures(FeatureExtractor):
    """The penultimate layer of the dataset's digit classifier (see :func:`scoreflow.models.digit_classifier.cached_classifier`)."""

    description = ("penultimate layer of a small CNN trained on the dataset's labels (shipped for MNIST); needs "
                   "labelled images")

    def __init__(self) -> None:
        self.classifier = None

    def check(self, data: TensorData) -> None:
        super().check(data)
        if data.labels is None:
            raise ValueError(f"the 'classifier' features need a labelled dataset and {data.name!r} has no labels; use "
                             "--features autoencoder (trained on the images alone)")

    def prepare(self, train: TensorData, cache_dir: Path) -> None:
        self.check(train)
        self.classifier = cached_classifier(train, cache_dir)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if self.classifier is None:
            raise RuntimeError("ClassifierFeatures.prepare(train, cache_dir) must run before features()")
        return _batched(self.classifier.features, images.clamp(0, 1))


class _Autoencoder(nn.Module):
    def __init__(self, channels: int, width: int, code: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * width, code, 3, stride=2, padding=1), nn.GELU())
        self.decoder = nn.Sequential(
            nn.Conv2d(code, 2 * width, 3, padding=1), nn.GELU(), nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * width, width, 3, padding=1), nn.GELU(), nn.Upsample(scale_factor=2),
            nn.Conv2d(width, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        return nn.functional.interpolate(self.decoder(h), size=x.shape[-2:], mode="bilinear", align_corners=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(self.encoder(x), 2).flatten(1)


class AutoencoderFeatures(FeatureExtractor):
    """The 2x2-pooled bottleneck (``4 code`` features) of a convolutional autoencoder trained on the training
    images for ``steps`` Adam steps of ``batch_size`` (seeded; cached by the data's content and these options)."""

    description = ("pooled bottleneck of a small convolutional autoencoder trained once on the dataset's images; any "
                   "image data, labelled or not; figures compare models of one dataset only")

    def __init__(self, *, steps: int = 400, batch_size: int = 64, width: int = 16, code: int = 32,
                 lr: float = 2e-3, seed: int = 0) -> None:
        for name, value in (("steps", steps), ("batch_size", batch_size), ("width", width), ("code", code)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"autoencoder features: {name} must be a positive integer, got {value!r}")
        if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0):
            raise ValueError(f"autoencoder features: lr must be a positive number, got {lr!r}")
        self.steps, self.batch_size, self.width, self.code, self.lr, self.seed = steps, batch_size, width, code, lr, seed
        self.network: _Autoencoder | None = None

    def file_name(self, train: TensorData) -> str:
        return (f"autoencoder-{train.name}-{content_digest(train)}-s{self.steps}b{self.batch_size}w{self.width}"
                f"c{self.code}r{self.seed}.safetensors")

    def prepare(self, train: TensorData, cache_dir: Path) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file, save_file

        self.check(train)
        with torch.random.fork_rng(devices=[]):  # seeded initial weights, the caller's random state untouched
            torch.manual_seed(self.seed)
            network = _Autoencoder(train.x.shape[1], self.width, self.code)
        path = Path(cache_dir) / self.file_name(train)
        if path.is_file():
            try:
                network.load_state_dict(load_file(str(path)))
                self.network = network.eval()
                return
            except (SafetensorError, OSError, RuntimeError, ValueError):
                pass  # a corrupt cache file: train again and replace it
        self.network = train_autoencoder(network, train.x, steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                                         seed=self.seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in self.network.state_dict().items()}, str(tmp))
        tmp.replace(path)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if self.network is None:
            raise RuntimeError("AutoencoderFeatures.prepare(train, cache_dir) must run before features()")
        return _batched(self.network.features, images.clamp(0, 1))


def train_autoencoder(network: _Autoencoder, x: torch.Tensor, *, steps: int, batch_size: int, lr: float,
                      seed: int) -> _Autoencoder:
    """Mean-squared reconstruction training on random batches of ``x`` drawn with ``seed`` (with seeded initial
    weights, the features are reproducible)."""
    network = network.train()
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(network.parameters(), lr=lr)
    for _ in range(steps):
        batch = x[torch.randint(0, len(x), (min(batch_size, len(x)),), generator=g)]
        loss = nn.functional.mse_loss(network(batch), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return network.eval()


def default_feature_extractor(data: TensorData) -> str:
    """``classifier`` for labelled images, ``autoencoder`` otherwise."""
    return "classifier" if data.labels is not None else "autoencoder"
