"""Time embeddings shared by the built-in networks."""

from __future__ import annotations

import math

import torch
from torch import nn


class GaussianFourierProjection(nn.Module):
    """Fixed random features ``[sin(2 pi w t), cos(2 pi w t)]`` with ``w ~ N(0, scale^2)``.

    ``w`` is a buffer: saved with the weights, never trained (as in the tutorial).
    """

    def __init__(self, embed_dim: int, scale: float = 30.0) -> None:
        super().__init__()
        if embed_dim % 2 or embed_dim <= 0:
            raise ValueError(f"embed_dim must be a positive even number, got {embed_dim}")
        self.register_buffer("W", torch.randn(embed_dim // 2) * scale)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        proj = t[:, None] * self.W[None, :] * (2 * math.pi)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)
