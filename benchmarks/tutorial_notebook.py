"""A transcription of the classic tutorial notebook's model, loss and training loop.

It is the reference scoreflow's ``mnist-tutorial`` preset is checked against: the same
``ScoreNet`` (attribute names as in the notebook, so its ``state_dict`` is what the
notebook's ``ckpt.pth`` holds), the same ``loss_fn`` and the same epoch loop, written
without scoreflow. ``python -m benchmarks.tutorial_notebook --data-dir DIR --epochs 1``
trains it on MNIST and prints the notebook's per-epoch line; ``--modes fp32 bf16 --out FILE`` runs it
once in float32 and once under bfloat16 autocast (reduced-precision convolutions, as TF32 GPUs run them)
and writes each mode's epoch losses as JSON for the MNIST reproduction report.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from torch import nn


def marginal_prob_std(t: torch.Tensor, sigma: float = 25.0) -> torch.Tensor:
    return torch.sqrt((sigma ** (2 * t) - 1.0) / 2.0 / np.log(sigma))


class GaussianFourierProjection(nn.Module):
    def __init__(self, embed_dim: int, scale: float = 30.0) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(embed_dim // 2) * scale, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_proj = x[:, None] * self.W[None, :] * 2 * math.pi
        return torch.cat([torch.sin(x_proj), torch.cos(x_proj)], dim=-1)


class Dense(nn.Module):
    def __init__(self, input_dim: int, output_dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(input_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)[..., None, None]


class ScoreNet(nn.Module):
    """The notebook's time-dependent U-Net (unpadded convolutions, 28x28 inputs)."""

    def __init__(self, marginal_prob_std=marginal_prob_std, channels=(32, 64, 128, 256), embed_dim: int = 256):
        super().__init__()
        self.embed = nn.Sequential(GaussianFourierProjection(embed_dim=embed_dim), nn.Linear(embed_dim, embed_dim))
        self.conv1 = nn.Conv2d(1, channels[0], 3, stride=1, bias=False)
        self.dense1 = Dense(embed_dim, channels[0])
        self.gnorm1 = nn.GroupNorm(4, num_channels=channels[0])
        self.conv2 = nn.Conv2d(channels[0], channels[1], 3, stride=2, bias=False)
        self.dense2 = Dense(embed_dim, channels[1])
        self.gnorm2 = nn.GroupNorm(32, num_channels=channels[1])
        self.conv3 = nn.Conv2d(channels[1], channels[2], 3, stride=2, bias=False)
        self.dense3 = Dense(embed_dim, channels[2])
        self.gnorm3 = nn.GroupNorm(32, num_channels=channels[2])
        self.conv4 = nn.Conv2d(channels[2], channels[3], 3, stride=2, bias=False)
        self.dense4 = Dense(embed_dim, channels[3])
        self.gnorm4 = nn.GroupNorm(32, num_channels=channels[3])
        self.tconv4 = nn.ConvTranspose2d(channels[3], channels[2], 3, stride=2, bias=False)
        self.dense5 = Dense(embed_dim, channels[2])
        self.tgnorm4 = nn.GroupNorm(32, num_channels=channels[2])
        self.tconv3 = nn.ConvTranspose2d(channels[2] + channels[2], channels[1], 3, stride=2, bias=False,
                                         output_padding=1)
        self.dense6 = Dense(embed_dim, channels[1])
        self.tgnorm3 = nn.GroupNorm(32, num_channels=channels[1])
        self.tconv2 = nn.ConvTranspose2d(channels[1] + channels[1], channels[0], 3, stride=2, bias=False,
                                         output_padding=1)
        self.dense7 = Dense(embed_dim, channels[0])
        self.tgnorm2 = nn.GroupNorm(32, num_channels=channels[0])
        self.tconv1 = nn.ConvTranspose2d(channels[0] + channels[0], 1, 3, stride=1)
        self.act = lambda x: x * torch.sigmoid(x)
        self.marginal_prob_std = marginal_prob_std

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        embed = self.act(self.embed(t))
        h1 = self.act(self.gnorm1(self.conv1(x) + self.dense1(embed)))
        h2 = self.act(self.gnorm2(self.conv2(h1) + self.dense2(embed)))
        h3 = self.act(self.gnorm3(self.conv3(h2) + self.dense3(embed)))
        h4 = self.act(self.gnorm4(self.conv4(h3) + self.dense4(embed)))
        h = self.act(self.tgnorm4(self.tconv4(h4) + self.dense5(embed)))
        h = self.act(self.tgnorm3(self.tconv3(torch.cat([h, h3], dim=1)) + self.dense6(embed)))
        h = self.act(self.tgnorm2(self.tconv2(torch.cat([h, h2], dim=1)) + self.dense7(embed)))
        h = self.tconv1(torch.cat([h, h1], dim=1))
        return h / self.marginal_prob_std(t)[:, None, None, None]


def loss_fn(model, x: torch.Tensor, marginal_prob_std=marginal_prob_std, eps: float = 1e-5) -> torch.Tensor:
    random_t = torch.rand(x.shape[0], device=x.device) * (1.0 - eps) + eps
    z = torch.randn_like(x)
    std = marginal_prob_std(random_t)
    score = model(x + z * std[:, None, None, None], random_t)
    return torch.mean(torch.sum((score * std[:, None, None, None] + z) ** 2, dim=(1, 2, 3)))


def train(images: torch.Tensor, *, n_epochs: int = 1, batch_size: int = 32, lr: float = 1e-4, seed: int = 0,
          max_steps: int | None = None) -> list[float]:
    """The notebook's loop (shuffled batches, Adam), returning each epoch's average loss."""
    torch.manual_seed(seed)
    model = ScoreNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=batch_size,
                                         shuffle=True)
    averages, steps = [], 0
    for epoch in range(n_epochs):
        avg_loss, num_items = 0.0, 0
        for (x,) in loader:
            loss = loss_fn(model, x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            avg_loss += loss.item() * x.shape[0]
            num_items += x.shape[0]
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        averages.append(avg_loss / num_items)
        print(f"epoch: {epoch}, average loss: {avg_loss / num_items}", flush=True)
    return averages


def _bf16_loss_fn(model, x, marginal_prob_std=marginal_prob_std, eps: float = 1e-5) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return _fp32_loss_fn(model, x, marginal_prob_std, eps).float()


_fp32_loss_fn = loss_fn


def main() -> None:
    import contextlib
    import io
    import json

    import scoreflow as sf

    global loss_fn
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with the MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", nargs="+", choices=("fp32", "bf16"), default=["fp32"])
    parser.add_argument("--out", default=None, help="write {mode: {epoch_losses, seconds}} as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = sf.create("dataset", "mnist", split="train", data_dir=args.data_dir)
    results = {}
    for mode in args.modes:
        loss_fn = _bf16_loss_fn if mode == "bf16" else _fp32_loss_fn
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            losses = train(data.x, n_epochs=args.epochs, seed=args.seed)
        loss_fn = _fp32_loss_fn
        results[mode] = {"epoch_losses": losses, "seconds": time.perf_counter() - start}
        print(mode, results[mode], flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
