"""A DDPM++/NCSN++-style U-Net: padded convolutions, residual blocks with GroupNorm, attention at the bottom."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from scoreflow.models.base import ScoreNet
from scoreflow.models.embedding import ClassEmbedding, GaussianFourierProjection, class_term
from scoreflow.models.parametrization import Parametrization, check_parametrization


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels) if channels >= 8 else 1, channels)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, the noise embedding added, GroupNorm-SiLU-dropout-conv, plus a (1x1) skip.

    With ``adaptive_norm`` the embedding also scales and shifts the second GroupNorm's output,
    ``h * (1 + scale) + shift`` (ADM's ``use_scale_shift_norm``). An embedding only *added* before a GroupNorm
    whose groups hold one channel is normalised away (a per-channel constant); the scale and shift act after it.
    Their projection starts at zero, so the block starts as the one without it."""

    def __init__(self, cin: int, cout: int, embed_dim: int, dropout: float, adaptive_norm: bool = False) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.embed = nn.Linear(embed_dim, cout)
        self.modulation = nn.Linear(embed_dim, 2 * cout) if adaptive_norm else None
        if self.modulation is not None:
            nn.init.zeros_(self.modulation.weight)
            nn.init.zeros_(self.modulation.bias)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as its skip (DDPM++'s init_scale=0)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, modulating: torch.Tensor | None = None) -> torch.Tensor:
        """``emb`` is added before the norm; ``modulating`` (default ``emb``) gives the scale and shift."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h + self.embed(emb)[:, :, None, None])
        if self.modulation is not None:
            scale, shift = self.modulation(emb if modulating is None else modulating)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, residual."""

    def __init__(self, channels: int, heads: int = 1) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention heads ({heads}) must divide the channels ({channels})")
        self.heads = heads
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


def _checked_options(*, channel_mult: Sequence[int], dropout: float, adaptive_norm: bool, **sizes: int
                     ) -> tuple[int, ...]:
    """Refuse :class:`ResUNet` options that cannot build a network (each named); the channel multipliers."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    mult = tuple(channel_mult)
    if not mult or any(isinstance(m, bool) or not isinstance(m, int) or m <= 0 for m in mult):
        raise ValueError(f"channel_mult must be a non-empty list of positive integers, got {channel_mult!r}")
    if not (isinstance(dropout, (int, float)) and not isinstance(dropout, bool) and 0 <= dropout < 1):
        raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
    if not isinstance(adaptive_norm, bool):
        raise ValueError(f"adaptive_norm must be true or false, got {adaptive_norm!r}")
    return mult


class ResUNet(ScoreNet):
    """A modern score network for images of any size and channel count.

    Levels of ``channels * mult`` channels, each with ``num_res_blocks`` residual blocks on the way down and one
    more on the way up (DDPM++'s layout); every block adds the noise embedding; downsampling by strided
    convolution, upsampling by nearest interpolation to the skip's size and a convolution (so odd sizes work);
    self-attention at the lowest resolution and in the middle. All convolutions are padded, so every output
    pixel sees a full neighbourhood (the tutorial U-Net gives corner pixels a single tap).

    The network is raw: ``forward(x, c)`` returns ``x``'s shape and means what ``parametrization`` says
    (default ``"noise"``); ``c`` is the conditioning scalar per sample, ``t`` when used directly or EDM's
    ``c_noise = ln(s) / 4`` under :class:`~scoreflow.models.preconditioning.EDMPreconditioner`.

    Args:
        in_channels: Image channels (1 grey, 3 RGB).
        image_size: Height = width (any size >= 1; recorded for the shape check).
        channels: Channels of the first level.
        channel_mult: One multiplier per level (its length is the number of levels).
        num_res_blocks: Residual blocks per level on the way down.
        attention: Self-attention at the lowest resolution and in the middle block.
        dropout: Dropout rate inside the residual blocks.
        embed_dim: Size of the noise embedding.
        fourier_scale: Standard deviation of the random Fourier frequencies of the noise embedding.
        parametrization: What the output predicts (``"noise"``, ``"data"``, ``"v"`` or ``"score"``).
        num_classes: Make the network class-conditional: a learned class embedding (plus a "no class" row), and
            ``forward(x, c, class_labels)`` takes int labels. Without ``adaptive_norm`` it is added to the noise
            embedding (rows starting at zero); with it, it enters the scale and shift only (rows drawn from
            N(0, 1), as DiT's adaLN-Zero: their zero-initialised projection keeps the start exact while the
            rows' size lets the class be learned quickly).
        adaptive_norm: The embedding also scales and shifts every residual block's normalised features (see
            :class:`ResBlock`): with few channels per GroupNorm group this is the path by which the noise level and
            the class reach the blocks.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        image_size: int = 28,
        channels: int = 32,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 1,
        attention: bool = True,
        dropout: float = 0.0,
        embed_dim: int = 128,
        fourier_scale: float = 16.0,
        parametrization: Parametrization = "noise",
        num_classes: int | None = None,
        adaptive_norm: bool = False,
        sde: object = None,  # accepted (build_components passes it) and unused: the network is raw
    ) -> None:
        super().__init__()
        mult = _checked_options(in_channels=in_channels, image_size=image_size, channels=channels,
                                num_res_blocks=num_res_blocks, embed_dim=embed_dim, channel_mult=channel_mult,
                                dropout=dropout, adaptive_norm=adaptive_norm)
        self.parametrization = check_parametrization(parametrization)
        self.in_channels, self.image_size = in_channels, image_size
        self.embed = nn.Sequential(GaussianFourierProjection(embed_dim, fourier_scale), nn.Linear(embed_dim, embed_dim),
                                   nn.SiLU(), nn.Linear(embed_dim, embed_dim))
        block = {"dropout": dropout, "adaptive_norm": adaptive_norm}
        self.num_classes = num_classes
        self.adaptive_norm = adaptive_norm
        self.class_embed = None if num_classes is None else ClassEmbedding(
            num_classes, embed_dim, init="normal" if adaptive_norm else "zeros")
        widths = [channels * m for m in mult]
        self.inp = nn.Conv2d(in_channels, channels, 3, padding=1)
        skips, cur = self._build_down(channels, widths, num_res_blocks, embed_dim, block)
        self.mid1 = ResBlock(cur, cur, embed_dim, **block)
        self.mid_attn = SelfAttention(cur) if attention else nn.Identity()
        self.mid2 = ResBlock(cur, cur, embed_dim, **block)
        self.bottom_attn = SelfAttention(cur) if attention else nn.Identity()
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(ResBlock(cur + skips.pop(), width, embed_dim, **block))
                cur = width
            self.up.append(blocks)
            if level > 0:
                self.upsample.append(nn.Conv2d(cur, cur, 3, padding=1))
        self.out_norm = _norm(cur)
        self.out = nn.Conv2d(cur, in_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _build_down(self, channels: int, widths: list[int], num_res_blocks: int, embed_dim: int,
                    block: dict[str, Any]) -> tuple[list[int], int]:
        """The encoder's residual blocks and downsampling convolutions; the widths its skips carry, and the last."""
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips, cur = [channels], channels
        for level, width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(cur, width, embed_dim, **block))
                cur = width
                skips.append(cur)
            self.down.append(blocks)
            if level < len(widths) - 1:
                self.downsample.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skips.append(cur)
        return skips, cur

    def forward(self, x: torch.Tensor, c: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (self.in_channels, self.image_size, self.image_size):
            raise ValueError(f"ResUNet expects (B, {self.in_channels}, {self.image_size}, {self.image_size}), "
                             f"got {tuple(x.shape)}")
        emb = self.embed(c.to(x.dtype))
        label_emb = class_term(self.class_embed, class_labels, x.shape[0], x.device)
        mod = emb + label_emb  # what scales and shifts (adaptive_norm); without it, also what is added
        if not self.adaptive_norm:
            emb = mod
        h = self.inp(x)
        skips = [h]
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb, mod)
                skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
                skips.append(h)
        h = self.bottom_attn(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb, mod)), emb, mod)
        for i, blocks in enumerate(self.up):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), emb, mod)
            if i < len(self.upsample):
                h = F.interpolate(h, size=skips[-1].shape[-2:], mode="nearest")
                h = self.upsample[i](h)
        return self.out(F.silu(self.out_norm(h)))
