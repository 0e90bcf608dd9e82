"""Denoiser calibration: does the network remove all of the noise, pixel by pixel?

At noise level ``s`` draw ``x_t = alpha (x_0 + s z)`` from test images, read the network's noise estimate
``z_hat = -score(x_t, t) std(t)`` and regress it on the true ``z`` per pixel across the images. A well-trained
network has slope near 1 at every pixel and level (the optimum is ``1 - E[Var(x_0 | x_t)] / s^2``, close to 1
wherever the image is nearly determined by its noisy version). A pixel with slope ``b < 1`` keeps ``(1 - b)`` of
its noise at every step; under the probability-flow ODE the leftover shrinks only like ``s^b``, so such pixels
end far outside the data's range (the tutorial U-Net's corners: slopes 0.2-0.4).

Even a perfect denoiser has slopes below 1 where a noisy image leaves the pixel uncertain (interior pixels at
small noise), but never below ``floor = 1 - Var(x_0[i]) / s^2``, since the posterior variance is at most the data's
(law of total variance). A pixel is *flagged* when its slope falls more than ``margin`` below that floor: where the
data's variance is small against ``s^2`` (MNIST's border, every pixel at large noise) that means below
``1 - margin``. The report gives both the flagged pixels and the raw share of slopes below ``1 - margin``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import torch

from scoreflow.models.base import make_score_fn
from scoreflow.models.parametrization import scale_and_std

if TYPE_CHECKING:
    from scoreflow.models.base import ScoreModel
    from scoreflow.sde.base import SDE

#: Noise levels (of ``x / alpha``) the diagnostic uses unless told otherwise; those above the SDE's are dropped.
DEFAULT_NOISE_LEVELS: tuple[float, ...] = (0.05, 0.2, 1.0, 5.0, 20.0)

#: A pixel is flagged when its slope is more than this below the floor a perfect denoiser guarantees.
SLOPE_MARGIN = 0.1


@attrs.frozen
class CalibrationReport:
    """Per-pixel slopes of the noise estimate against the true noise.

    Attributes:
        noise_levels: The noise levels ``s``, one per row of ``slopes``.
        slopes: ``(L, *image_shape)`` regression slopes.
        floors: ``(L, *image_shape)`` the least slope a perfect denoiser can have, ``max(0, 1 - Var(x_0) / s^2)``.
        margin: How far below its floor a slope may fall before the pixel is flagged.
        num_images: Images the regression used.
    """

    noise_levels: tuple[float, ...]
    slopes: torch.Tensor
    floors: torch.Tensor
    margin: float
    num_images: int

    @property
    def shortfall(self) -> torch.Tensor:
        """``floor - slope`` per level and pixel (positive: the network leaves noise a perfect one removes)."""
        return self.floors - self.slopes

    @property
    def worst(self) -> tuple[float, tuple[int, ...], float]:
        """``(noise level, pixel index, slope)`` of the pixel furthest below its floor."""
        flat = int(self.shortfall.argmax())
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), self.slopes.shape))
        return self.noise_levels[index[0]], index[1:], float(self.slopes.reshape(-1)[flat])

    def share_below(self) -> list[float]:
        """Per noise level, the share of pixels whose raw slope is below ``1 - margin``."""
        return [float((row < 1 - self.margin).float().mean()) for row in self.slopes]

    def flagged(self) -> list[tuple[float, tuple[int, ...], float]]:
        """Every ``(noise level, pixel index, slope)`` more than ``margin`` below its floor, worst first."""
        found = [(self.noise_levels[int(i[0])], tuple(int(v) for v in i[1:]), float(self.slopes[tuple(i)]))
                 for i in torch.nonzero(self.shortfall > self.margin)]
        return sorted(found, key=lambda item: item[2])

    def summary(self) -> dict:
        """Plain-data summary: the worst pixel, the flagged ones and the slope range per level."""
        level, index, slope = self.worst
        flagged = self.flagged()
        return {
            "num_images": self.num_images, "margin": self.margin, "flagged_count": len(flagged),
            "flagged": [{"noise_level": s, "pixel": list(i), "slope": b} for s, i, b in flagged[:20]],
            "worst": {"noise_level": level, "pixel": list(index), "slope": slope},
            "levels": [{"noise_level": s, "min_slope": float(row.min()), "median_slope": float(row.median()),
                        f"share_below_{1 - self.margin:g}": share,
                        "flagged": int((short > self.margin).sum())}
                       for s, row, short, share in zip(self.noise_levels, self.slopes, self.shortfall,
                                                       self.share_below(), strict=True)],
        }

    def save_heatmap(self, path: str | Path, title: str = "") -> Path:
        """A heat map of the slopes, one panel per noise level and channel (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        slopes = self.slopes.reshape(len(self.noise_levels), -1, *self.slopes.shape[-2:]) \
            if self.slopes.dim() >= 3 else self.slopes.reshape(len(self.noise_levels), 1, 1, -1)
        levels, channels = slopes.shape[:2]
        fig, axes = plt.subplots(channels, levels, figsize=(2.2 * levels + 0.8, 2.3 * channels), squeeze=False)
        image = None
        for j in range(levels):
            for c in range(channels):
                ax = axes[c][j]
                image = ax.imshow(slopes[j, c].numpy(), vmin=0.0, vmax=1.2, cmap="viridis")
                ax.set_title(f"s = {self.noise_levels[j]:g}, min {float(slopes[j, c].min()):.2f}", fontsize=8)
                ax.set_xticks([])
                ax.set_yticks([])
        fig.colorbar(image, ax=axes, shrink=0.8, label="slope")
        if title:
            fig.suptitle(title, fontsize=9)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        return path


def _check_levels(noise_levels: Sequence[float], sde: SDE) -> tuple[float, ...]:
    top = float(sde.noise_level(torch.tensor([sde.T], dtype=torch.float64))[0])
    levels = []
    for s in noise_levels:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not (math.isfinite(s) and s > 0):
            raise ValueError(f"noise levels must be finite positive numbers, got {s!r}")
        if s <= top:
            levels.append(float(s))
    if not levels:
        raise ValueError(f"no noise level in {list(noise_levels)} lies within the SDE's range (0, {top:.4g}]")
    return tuple(levels)


def denoiser_calibration(
    model: ScoreModel,
    sde: SDE,
    images: torch.Tensor,
    *,
    noise_levels: Sequence[float] = DEFAULT_NOISE_LEVELS,
    margin: float = SLOPE_MARGIN,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
) -> CalibrationReport:
    """Regress the model's noise estimate on the true noise, pixel by pixel, at each noise level.

    Args:
        model: Score network (any parameterisation) or callable ``score(x, t)``.
        sde: Its SDE; levels above its largest noise level are skipped.
        images: ``(N, ...)`` clean data (N >= 2), e.g. test images in the model's data range.
        noise_levels: Noise levels ``s`` of ``x / alpha``.
        margin: A pixel is flagged when its slope is more than this below its floor.
        batch_size: Images per network call.
        generator: Random generator of the noise.
    """
    if images.dim() < 2 or images.shape[0] < 2:
        raise ValueError(f"images must be a batch of at least 2 samples, got shape {tuple(images.shape)}")
    levels = _check_levels(noise_levels, sde)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        raise ValueError(f"margin must lie in [0, 1), got {margin!r}")
    score = make_score_fn(model, sde)
    dtype = images.dtype if images.is_floating_point() else torch.float32
    images = images.to(dtype)
    slopes, floors = [], []
    variance = images.var(0)
    with torch.no_grad():
        for s in levels:
            t_one = sde.time_at_noise_level(torch.tensor([s], dtype=torch.float64)).to(dtype)
            zs, estimates = [], []
            for start in range(0, images.shape[0], batch_size):
                x0 = images[start:start + batch_size]
                t = t_one.expand(x0.shape[0]).to(x0.device)
                z = torch.randn(x0.shape, generator=generator, dtype=dtype).to(x0.device)
                alpha, std = scale_and_std(sde, x0, t)
                xt = alpha * x0 + std * z
                estimates.append((-score(xt, t) * std).cpu())
                zs.append(z.cpu())
            z, z_hat = torch.cat(zs), torch.cat(estimates)
            zc, ec = z - z.mean(0), z_hat - z_hat.mean(0)
            slopes.append((zc * ec).sum(0) / (zc * zc).sum(0))
            floors.append((1 - variance.cpu() / s**2).clamp_min(0))
    return CalibrationReport(levels, torch.stack(slopes), torch.stack(floors), float(margin), int(images.shape[0]))
