"""In-memory datasets: images in ``[0, 1]`` or vectors, with optional labels."""

from __future__ import annotations

from typing import Literal

import attrs
import torch

from scoreflow.tensor import check_finite

SPLITS = ("train", "test")


def check_split(split: str) -> str:
    """Validate a split name."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}. Available: {', '.join(SPLITS)}.")
    return split


@attrs.frozen
class TensorData:
    """A dataset held in memory.

    ``x`` is ``(N, C, H, W)`` float32 in ``[0, 1]`` for images (``kind="image"``) or
    ``(N, D)`` for vectors; ``labels`` is ``(N,)`` int64 or ``None``.
    """

    x: torch.Tensor
    labels: torch.Tensor | None = None
    kind: Literal["image", "vector"] = "image"
    name: str = ""

    def __attrs_post_init__(self) -> None:
        if self.kind == "image" and self.x.dim() != 4:
            raise ValueError(f"image data must be (N, C, H, W), got {tuple(self.x.shape)}")
        if self.kind == "vector" and self.x.dim() != 2:
            raise ValueError(f"vector data must be (N, D), got {tuple(self.x.shape)}")
        if self.labels is not None and self.labels.shape != (self.x.shape[0],):
            raise ValueError(f"labels must be ({self.x.shape[0]},), got {tuple(self.labels.shape)}")
        if not self.x.is_floating_point():
            raise TypeError(f"data {self.name!r} must be a floating-point tensor, got {self.x.dtype}")
        check_finite(f"data {self.name!r}", self.x)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample."""
        return tuple(self.x.shape[1:])


def dequantize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantization of 8-bit images in ``[0, 1]``: ``(255 x + u) / 256``."""
    where = generator.device if generator is not None else x.device  # as the likelihood's probes
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=where).to(x.device)
    return (x * 255 + u) / 256
