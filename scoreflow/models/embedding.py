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


#: The label that means "no class" (the unconditional score of a class-conditional network): networks map it to
#: their reserved last embedding row. Classifier-free guidance evaluates the network with it.
NO_CLASS = -1


class ClassEmbedding(nn.Module):
    """A learned embedding of ``num_classes`` classes plus a reserved "no class" row (index ``num_classes``),
    added to a network's time embedding (Ho & Salimans 2022; diffusers' ``class_embed_type=None`` layout).

    ``forward(labels)`` takes int labels in ``0..num_classes-1`` or :data:`NO_CLASS`. With ``init="zeros"`` every
    row starts at zero (each learns from its first step: the rows receive the time embedding's gradient), so a
    conditional network built from an unconditional one's weights starts as exactly that network (fine-tuning with
    ``init_from``); ``"normal"`` draws them from N(0, 1), for a network that feeds them only through
    zero-initialised layers (``ResUNet(adaptive_norm=True)``).
    """

    def __init__(self, num_classes: int, embed_dim: int, init: str = "zeros") -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or not 1 <= num_classes <= 100_000:
            raise ValueError(f"num_classes must be an integer in [1, 100000], got {num_classes!r}")
        self.num_classes = num_classes
        if init not in ("zeros", "normal"):
            raise ValueError(f"init must be 'zeros' or 'normal', got {init!r}")
        self.table = nn.Embedding(num_classes + 1, embed_dim)
        if init == "zeros":
            nn.init.zeros_(self.table.weight)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.table(class_indices(labels, self.num_classes))


def class_indices(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``labels`` as embedding rows: :data:`NO_CLASS` becomes ``num_classes``; anything else outside
    ``0..num_classes-1`` is refused, naming the allowed labels."""
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.is_complex() \
            or labels.dtype == torch.bool or labels.dim() != 1:
        raise ValueError(f"class labels must be a 1-D integer tensor, got {labels!r}")
    bad = (labels != NO_CLASS) & ((labels < 0) | (labels >= num_classes))
    if bad.any():
        raise ValueError(f"class {int(labels[bad][0])} is not a class of this network (allowed: 0..{num_classes - 1}, "
                         f"or {NO_CLASS} for no class)")
    return torch.where(labels == NO_CLASS, torch.full_like(labels, num_classes), labels).long()


def class_term(embedding: ClassEmbedding | None, labels: torch.Tensor | None, batch: int,
               device: torch.device) -> torch.Tensor | float:
    """What a network adds to its time embedding for ``labels`` (``None``: no class; an unconditional network
    adds nothing and refuses labels)."""
    if embedding is None:
        if labels is not None:
            raise ValueError("this network is unconditional (built without num_classes, trained without labels): "
                             "it takes no class labels; train one with --class-dropout for classifier-free guidance")
        return 0.0
    if labels is None:
        labels = torch.full((batch,), NO_CLASS, dtype=torch.long, device=device)
    elif labels.dim() == 0:
        labels = labels.expand(batch)
    if labels.shape != (batch,):
        raise ValueError(f"{tuple(labels.shape)} class labels for a batch of {batch}")
    return embedding(labels.to(device))
