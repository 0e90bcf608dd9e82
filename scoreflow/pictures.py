"""Every picture scoreflow draws, written as PNG: image grids, labelled rows, panels side by side, 2-D scatter
plots and loss curves (matplotlib with the Agg backend, imported only when drawing)."""

from __future__ import annotations

import math
from pathlib import Path

import torch


def image_grid(x: torch.Tensor) -> torch.Tensor:
    """Tile ``(N, C, H, W)`` images (clamped to ``[0, 1]``) into one ``(C, H', W')`` canvas with 1-px gaps."""
    n, c, h, w = x.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = torch.ones(c, rows * (h + 1) + 1, cols * (w + 1) + 1)
    for i, img in enumerate(x.detach().float().cpu().clamp(0, 1)):
        r, k = divmod(i, cols)
        canvas[:, 1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + k * (w + 1): 1 + k * (w + 1) + w] = img
    return canvas


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    fig.tight_layout()
    fig.savefig(Path(path), dpi=110)
    _pyplot().close(fig)
    return Path(path)


def save_samples_png(x: torch.Tensor, path: str | Path, *, title: str | None = None) -> Path:
    """Images ``(N, C, H, W)`` in ``[0, 1]`` as a grid, or ``(N, 2)`` points as a scatter plot."""
    plt = _pyplot()
    x = x.detach().float().cpu()
    path = Path(path)
    if x.dim() == 2:
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.5)
        ax.set_aspect("equal")
    elif x.dim() == 4:
        canvas = image_grid(x)
        c, (h, w) = x.shape[1], x.shape[2:]
        rows, cols = (canvas.shape[1] - 1) // (h + 1), (canvas.shape[2] - 1) // (w + 1)
        fig, ax = plt.subplots(figsize=(min(8, 0.35 * cols * max(1, w / 8)), min(8, 0.35 * rows * max(1, h / 8))))
        ax.imshow((canvas[0] if c == 1 else canvas.permute(1, 2, 0)).numpy(), cmap="gray" if c == 1 else None,
                  vmin=0, vmax=1, interpolation="nearest")
        ax.axis("off")
    else:
        raise ValueError(f"cannot draw samples of shape {tuple(x.shape)}: expected (N, 2) or (N, C, H, W)")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def save_rows_png(rows: list[tuple[str, torch.Tensor]], path: str | Path, *, title: str | None = None) -> Path:
    """Labelled rows of images ``(N, C, H, W)`` in ``[0, 1]`` side by side (e.g. inputs, masks, results)."""
    plt = _pyplot()
    n = max(len(x) for _, x in rows)
    fig, axes = plt.subplots(len(rows), 1, figsize=(min(12, 0.45 * n + 1.2), 0.55 * len(rows) * 1.6 + 0.4),
                             squeeze=False)
    for ax, (label, x) in zip(axes[:, 0], rows):
        x = x.detach().float().cpu().clamp(0, 1)
        c, h, w = x.shape[1:]
        canvas = torch.ones(c, h + 2, n * (w + 1) + 1)
        for i, img in enumerate(x):
            canvas[:, 1:1 + h, 1 + i * (w + 1): 1 + i * (w + 1) + w] = img
        ax.imshow((canvas[0] if c == 1 else canvas.permute(1, 2, 0)).numpy(), cmap="gray" if c == 1 else None,
                  vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def save_panels_png(panels: dict[str, torch.Tensor], path: str | Path) -> Path:
    """One titled grid per entry of ``panels`` (``title -> (N, 1, H, W)`` images in ``[0, 1]``), side by side."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.4), squeeze=False)
    for ax, (title, x) in zip(axes[0], panels.items()):
        ax.imshow(image_grid(x)[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    return _save(fig, path)


def save_scatter_panels_png(panels: dict[str, torch.Tensor], path: str | Path, *, limit: float = 6.0,
                            cols: int = 3) -> Path:
    """One titled scatter plot per entry of ``panels`` (``title -> (N, 2)`` points) on a grid of ``cols``
    columns, each showing ``[-limit, limit]^2``."""
    plt = _pyplot()
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.1 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (title, x) in zip(axes.flat, panels.items()):
        x = x.detach().float().cpu().numpy()
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.5)
        ax.set_title(title, fontsize=8)
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path)


def save_loss_png(losses: list[tuple[int, float]], path: str | Path) -> Path:
    """The training loss curve ``[(step, loss), ...]`` on a log scale."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    if losses:
        steps, values = zip(*losses)
        ax.plot(steps, values, lw=1)
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("denoising score-matching loss")
    ax.grid(alpha=0.3)
    return _save(fig, path)
