"""Noise-conditional classifiers ``p_t(y | x_t)`` for classifier guidance (Song et al. 2021, section 5)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from scoreflow.models.embedding import GaussianFourierProjection
from scoreflow.tensor import batch_broadcast

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE


class NoiseConditionalClassifier(nn.Module):
    """The interface: ``forward(x, noise_level) -> logits (B, n_classes)``.

    ``x`` is data plus Gaussian noise of standard deviation ``noise_level`` (shape ``(B,)``, in data units);
    :func:`classifier_fn` adapts it to any SDE's ``(x_t, t)``.
    """

    n_classes: int


class ConvClassifier(NoiseConditionalClassifier):
    """A small CNN for images: three convolutions (the last two stride 2), each with a dense embedding of the
    log noise level added, GroupNorm and SiLU; average pooling to a ``pool x pool`` grid (kept: at high noise
    the class is in where the strokes are, which global pooling would discard) and a two-layer head.

    The input is scaled by ``1 / sqrt(data_std^2 + noise_level^2)`` so every noise level reaches the network
    at unit scale (Karras et al. 2022's ``c_in``); the embedding sees ``log(max(noise_level, 1e-3))`` (clean
    inputs count as the smallest trained level).

    Args:
        in_channels: Image channels.
        n_classes: Number of classes.
        channels: Channels of the three convolutions.
        embed_dim: Size of the noise-level embedding.
        data_std: Standard deviation of the clean data (0.5 suits images in [0, 1]).
        pool: Side of the pooled grid the head sees.
    """

    def __init__(self, *, in_channels: int = 1, n_classes: int = 10, channels: Sequence[int] = (32, 64, 128),
                 embed_dim: int = 128, data_std: float = 0.5, pool: int = 4) -> None:
        super().__init__()
        if len(channels) != 3 or min(channels) <= 0:
            raise ValueError(f"channels must be three positive numbers, got {list(channels)!r}")
        if n_classes < 2 or in_channels < 1 or not data_std > 0 or pool < 1:
            raise ValueError(f"need n_classes >= 2, in_channels >= 1, data_std > 0 and pool >= 1, got {n_classes}, "
                             f"{in_channels}, {data_std}, {pool}")
        self.n_classes, self.data_std = int(n_classes), float(data_std)
        self.embed = nn.Sequential(GaussianFourierProjection(embed_dim, scale=1.0), nn.Linear(embed_dim, embed_dim),
                                   nn.SiLU())
        c1, c2, c3 = channels
        self.convs = nn.ModuleList([nn.Conv2d(in_channels, c1, 3, padding=1), nn.Conv2d(c1, c2, 3, stride=2, padding=1),
                                    nn.Conv2d(c2, c3, 3, stride=2, padding=1)])
        self.dense = nn.ModuleList([nn.Linear(embed_dim, c) for c in channels])
        self.norms = nn.ModuleList([nn.GroupNorm(min(8, c), c) for c in channels])
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c3 * pool * pool, 256), nn.SiLU(), nn.Linear(256, n_classes))
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"ConvClassifier takes images (B, C, H, W), got shape {tuple(x.shape)}")
        noise_level = noise_level.to(x.dtype).expand(x.shape[0])
        h = x / batch_broadcast(torch.sqrt(self.data_std**2 + noise_level**2), x)
        emb = self.embed(torch.log(noise_level.clamp_min(1e-3)))
        for conv, dense, norm in zip(self.convs, self.dense, self.norms):
            h = self.act(norm(conv(h) + dense(emb)[:, :, None, None]))
        return self.head(self.pool(h))


class MLPClassifier(NoiseConditionalClassifier):
    """An MLP for flat data ``(B, D)`` (2-D toys, tabular data), conditioned like :class:`ConvClassifier`."""

    def __init__(self, *, dim: int = 2, n_classes: int = 2, hidden: int = 128, embed_dim: int = 64,
                 data_std: float = 1.0) -> None:
        super().__init__()
        if dim < 1 or n_classes < 2 or hidden < 1 or not data_std > 0:
            raise ValueError(f"need dim >= 1, n_classes >= 2, hidden >= 1, data_std > 0; got {dim}, {n_classes}, "
                             f"{hidden}, {data_std}")
        self.n_classes, self.data_std = int(n_classes), float(data_std)
        self.embed = nn.Sequential(GaussianFourierProjection(embed_dim, scale=1.0), nn.Linear(embed_dim, hidden))
        self.inp = nn.Linear(dim, hidden)
        self.body = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        noise_level = noise_level.to(x.dtype).expand(x.shape[0])
        h = x.reshape(x.shape[0], -1) / torch.sqrt(self.data_std**2 + noise_level**2)[:, None]
        return self.body(self.inp(h) + self.embed(torch.log(noise_level.clamp_min(1e-3))))


def classifier_fn(model: NoiseConditionalClassifier, sde: SDE) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(x_t, t) -> logits`` for sampling under ``sde``: ``x_t / alpha(t)`` at noise level ``sde.noise_level(t)``."""

    def classify(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha = sde.marginal_scale(t).to(x.dtype)
        return model(x / batch_broadcast(alpha, x), sde.noise_level(t).to(x.dtype))

    return classify
