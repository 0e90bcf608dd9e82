"""A time-conditioned MLP score network for vector data (2-D toy sets and the like)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from scoreflow.tensor import batch_broadcast
from scoreflow.models.base import ScoreNet
from scoreflow.models.embedding import ClassEmbedding, GaussianFourierProjection, class_term

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE


class MLP(ScoreNet):
    """``(B, dim)`` data, Fourier time features added to every hidden layer, output / std.

    Args:
        sde: The SDE whose marginal std scales the output.
        dim: Data dimension.
        hidden: Width of the hidden layers.
        depth: Number of hidden layers.
        embed_dim: Size of the time embedding.
        fourier_scale: Standard deviation of the random Fourier frequencies.
        num_classes: Make the network class-conditional: a learned class embedding (plus a "no class" row) is
            added to the time embedding, and ``forward(x, t, class_labels)`` takes int labels.
    """

    def __init__(
        self,
        sde: SDE,
        *,
        dim: int = 2,
        hidden: int = 128,
        depth: int = 3,
        embed_dim: int = 64,
        fourier_scale: float = 16.0,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        if dim <= 0 or hidden <= 0 or depth <= 0:
            raise ValueError(f"dim, hidden and depth must be positive, got {dim}, {hidden}, {depth}")
        self.sde = sde
        self.dim = dim
        self.embed = nn.Sequential(GaussianFourierProjection(embed_dim, fourier_scale), nn.Linear(embed_dim, hidden))
        self.inp = nn.Linear(dim, hidden)
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, dim)
        self.act = nn.SiLU()
        self.num_classes = num_classes
        self.class_embed = None if num_classes is None else ClassEmbedding(num_classes, hidden)

    def forward(self, x: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"MLP expects (B, {self.dim}), got {tuple(x.shape)}")
        emb = self.act(self.embed(t) + class_term(self.class_embed, class_labels, x.shape[0], x.device))
        h = self.act(self.inp(x) + emb)
        for layer in self.hidden:
            h = self.act(layer(h) + emb)
        _, std = self.sde.marginal_prob(x, t)
        return self.out(h) / batch_broadcast(std, x)
