"""The time-conditioned U-Net of the classic score-based MNIST tutorial."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from scoreflow.tensor import batch_broadcast
from scoreflow.models.base import ScoreNet
from scoreflow.models.embedding import ClassEmbedding, GaussianFourierProjection, class_term

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE


def _down(size: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - 3) // stride + 1


def _groups(channels: int, preferred: int) -> int:
    return math.gcd(preferred, channels)


def _plan_sizes(image_size: int, padding: int) -> list[int] | None:
    sizes = [_down(image_size, 1, padding)]
    for _ in range(3):
        sizes.append(_down(sizes[-1], 2, padding))
    return sizes if min(sizes) >= 1 else None


class UNet(ScoreNet):
    """4-level encoder/decoder with skip connections, GroupNorm and swish.

    Time enters through Gaussian random Fourier features (scale 30), optionally
    followed by one dense layer (Song's notebook has it, the seed tutorial's
    variant does not), and a dense layer per level; the output is divided by the SDE's marginal std, so the
    network learns a score whose magnitude matches ``1/std``.

    Args:
        sde: The SDE whose ``marginal_prob`` std scales the output.
        channels: Channels of the four levels (tutorial: 32, 64, 128, 256).
        embed_dim: Size of the time embedding.
        in_channels: Image channels (1 for MNIST/digits, 3 for RGB).
        image_size: Height = width of the images (28, 8, 32, ...).
        padding: ``"valid"`` is the tutorial's layout (unpadded convolutions,
            used for 28x28); ``"same"`` pads by one and suits small images such as
            8x8; ``"auto"`` picks ``"valid"`` where its sizes work.
        fourier_scale: Standard deviation of the random Fourier frequencies.
        embed_dense: Apply a dense layer to the Fourier features before the
            per-level layers (``embed.1``); the seed tutorial's network feeds the
            features straight to them (``False``).
        num_classes: Make the network class-conditional: a learned class embedding (plus a "no class" row) is
            added to the time embedding, and ``forward(x, t, class_labels)`` takes int labels.
    """

    def __init__(
        self,
        sde: SDE,
        *,
        channels: Sequence[int] = (32, 64, 128, 256),
        embed_dim: int = 256,
        in_channels: int = 1,
        image_size: int = 28,
        padding: Literal["auto", "valid", "same"] = "auto",
        fourier_scale: float = 30.0,
        embed_dense: bool = True,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) != 4 or min(channels) <= 0:
            raise ValueError(f"channels must be 4 positive integers, got {channels}")
        if padding not in ("auto", "valid", "same"):
            raise ValueError(f"padding must be 'auto', 'valid' or 'same', got {padding!r}")
        pad = {"valid": 0, "same": 1}.get(padding)
        if pad is None:
            pad = 0 if _plan_sizes(image_size, 0) else 1
        sizes = _plan_sizes(image_size, pad)
        if sizes is None:
            raise ValueError(f"image_size {image_size} is too small for padding={padding!r}")
        self.sde = sde
        self.in_channels = in_channels
        self.image_size = image_size
        c0, c1, c2, c3 = channels
        if not isinstance(embed_dense, bool):
            raise ValueError(f"embed_dense must be true or false, got {embed_dense!r}")
        layers: list[nn.Module] = [GaussianFourierProjection(embed_dim, fourier_scale)]
        if embed_dense:
            layers.append(nn.Linear(embed_dim, embed_dim))
        self.embed = nn.Sequential(*layers)
        self.num_classes = num_classes
        self.class_embed = None if num_classes is None else ClassEmbedding(num_classes, embed_dim)
        conv = dict(kernel_size=3, padding=pad, bias=False)
        self.conv1 = nn.Conv2d(in_channels, c0, stride=1, **conv)
        self.conv2 = nn.Conv2d(c0, c1, stride=2, **conv)
        self.conv3 = nn.Conv2d(c1, c2, stride=2, **conv)
        self.conv4 = nn.Conv2d(c2, c3, stride=2, **conv)
        self.dense = nn.ModuleList(nn.Linear(embed_dim, c) for c in (c0, c1, c2, c3, c2, c1, c0))
        self.gnorm = nn.ModuleList(
            nn.GroupNorm(g, c)
            for g, c in ((_groups(c0, 4), c0), (_groups(c1, 32), c1), (_groups(c2, 32), c2), (_groups(c3, 32), c3),
                         (_groups(c2, 32), c2), (_groups(c1, 32), c1), (_groups(c0, 32), c0))
        )

        def up(cin: int, cout: int, src: int, dst: int, stride: int, bias: bool = False) -> nn.ConvTranspose2d:
            out_pad = dst - ((src - 1) * stride - 2 * pad + 3)
            return nn.ConvTranspose2d(cin, cout, 3, stride=stride, padding=pad, output_padding=out_pad, bias=bias)

        self.tconv4 = up(c3, c2, sizes[3], sizes[2], 2)
        self.tconv3 = up(c2 + c2, c1, sizes[2], sizes[1], 2)
        self.tconv2 = up(c1 + c1, c0, sizes[1], sizes[0], 2)
        self.tconv1 = up(c0 + c0, in_channels, sizes[0], image_size, 1, bias=True)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (self.in_channels, self.image_size, self.image_size):
            raise ValueError(
                f"UNet expects (B, {self.in_channels}, {self.image_size}, {self.image_size}), got {tuple(x.shape)}"
            )
        emb = self.act(self.embed(t) + class_term(self.class_embed, class_labels, x.shape[0], x.device))
        d, g, act = self.dense, self.gnorm, self.act

        def cond(h: torch.Tensor, i: int) -> torch.Tensor:
            return act(g[i](h + d[i](emb)[:, :, None, None]))

        h1 = cond(self.conv1(x), 0)
        h2 = cond(self.conv2(h1), 1)
        h3 = cond(self.conv3(h2), 2)
        h4 = cond(self.conv4(h3), 3)
        h = cond(self.tconv4(h4), 4)
        h = cond(self.tconv3(torch.cat([h, h3], dim=1)), 5)
        h = cond(self.tconv2(torch.cat([h, h2], dim=1)), 6)
        h = self.tconv1(torch.cat([h, h1], dim=1))
        _, std = self.sde.marginal_prob(x, t)
        return h / batch_broadcast(std, h)
