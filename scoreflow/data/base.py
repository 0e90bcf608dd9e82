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


def check_test_fraction(value: object) -> float:
    """``value`` if it is a share of a dataset held out for testing, a number in ``[0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"test_fraction must be a number in [0, 1), got {value!r}")
    return float(value)


@attrs.frozen
class TensorData:
    """A dataset held in memory.

    ``x`` is ``(N, C, H, W)`` float32 in ``[0, 1]`` for images (``kind="image"``) or
    ``(N, D)`` for vectors; ``labels`` is ``(N,)`` int64 or ``None``. ``levels`` is the number of values
    each entry can take, evenly spaced over ``[0, 1]`` (256 for 8-bit images, 17 for scikit-learn's digits),
    or ``None`` for continuous data: dequantization and the bits/dim offset follow it.
    """

    x: torch.Tensor
    labels: torch.Tensor | None = None
    kind: Literal["image", "vector"] = "image"
    name: str = ""
    levels: int | None = None
    #: Training flips each drawn image left-right with probability 1/2 (an augmentation the data asks for).
    hflip: bool = False

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
        if self.levels is not None:
            check_levels(self.levels)
        if self.hflip and self.kind != "image":
            raise ValueError(f"hflip applies to images; data {self.name!r} is {self.kind} data")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample."""
        return tuple(self.x.shape[1:])


#: Quantization levels of 8-bit data, the default of :func:`dequantize`.
EIGHT_BIT_LEVELS = 256


def check_levels(levels: object) -> int:
    """``levels`` if it is a number of quantization levels (an integer of at least 2), else a ``ValueError``."""
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise ValueError(f"quantization levels must be an integer of at least 2 (256 for 8-bit data), got {levels!r}")
    return levels


def dequantize(x: torch.Tensor, generator: torch.Generator | None = None, levels: int = EIGHT_BIT_LEVELS, *,
               u: torch.Tensor | None = None) -> torch.Tensor:
    """Uniform dequantization of data with ``levels`` values ``k / (levels - 1)`` in ``[0, 1]``:
    ``((levels - 1) x + u) / levels`` with ``u ~ U[0, 1)`` (drawn from ``generator`` unless given), the 8-bit
    images' ``(255 x + u) / 256`` by default. Each value's bin has width ``1 / levels``, so bits/dim of the
    discrete data add ``log2(levels)``."""
    check_levels(levels)
    if u is None:
        where = generator.device if generator is not None else x.device  # as the likelihood's probes
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=where).to(x.device)
    return (x * (levels - 1) + u) / levels
