"""Transcriptions of the two score-based MNIST notebooks' models, losses and training loop.

``ScoreNet``/``loss_fn`` are Song's original Colab (``dx = 25^t dw``, Fourier scale 30 and a dense layer
on the time features, t ~ U(1e-5, 1)): the reference of the ``mnist-sigma25`` preset. ``SeedScoreNet``/
``loss_func`` are the seed tutorial's variant (the deeplearning.ai optional notebook whose log prints
479, 191, 144, ...: VE SDE with sigma(t) = 0.01 (22/0.01)^t and kernel variance sigma(t)^2 - 0.01^2,
Fourier scale 8 fed straight to the per-level dense layers, t ~ U(1e-3, 1)): the reference of the
``mnist-tutorial`` preset. Attribute names are the notebooks', so a ``state_dict`` is what a
notebook's ``ckpt.pth`` holds; the epoch loop is the notebooks' shared one, written without scoreflow.

``python -m benchmarks.tutorial_notebook --data-dir DIR --epochs 1`` trains the seed tutorial's variant on
MNIST and prints the notebook's per-epoch line (``--variant colab``: Song's); ``--out FILE`` writes each
variant's epoch losses as JSON for the MNIST reproduction report.
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


def noise_scale(t: torch.Tensor, sigma_min: float = 0.01, sigma_max: float = 22.0) -> torch.Tensor:
    """The seed tutorial's kernel std ``sqrt(sigma(t)^2 - sigma_min^2)``, ``sigma(t) = sigma_min (sigma_max/sigma_min)^t``."""
    noise = sigma_min * (sigma_max / sigma_min) ** t
    return torch.sqrt(noise**2 - sigma_min**2)


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


class SeedScoreNet(ScoreNet):
    """The seed tutorial's network: the same U-Net, time features of scale 8 with no dense layer after them."""

    def __init__(self, noise_scale=noise_scale, channels=(32, 64, 128, 256), embed_dim: int = 256):
        super().__init__(noise_scale, channels, embed_dim)
        self.embed = GaussianFourierProjection(embed_dim=embed_dim, scale=8.0)


def loss_func(model, x: torch.Tensor, noise_scale=noise_scale, eps: float = 1e-3) -> torch.Tensor:
    """The seed tutorial's loss: ``||s std + z||^2`` summed over pixels, ``t ~ U(1e-3, 1)``."""
    random_t = torch.rand(x.shape[0], device=x.device) * (1.0 - eps) + eps
    std = noise_scale(random_t)
    z = torch.randn_like(x)
    score = model(x + z * std[:, None, None, None], random_t)
    return torch.sum((score * std[:, None, None, None] + z).reshape(x.shape[0], -1) ** 2, dim=-1).mean()


def loss_fn(model, x: torch.Tensor, marginal_prob_std=marginal_prob_std, eps: float = 1e-5) -> torch.Tensor:
    random_t = torch.rand(x.shape[0], device=x.device) * (1.0 - eps) + eps
    z = torch.randn_like(x)
    std = marginal_prob_std(random_t)
    score = model(x + z * std[:, None, None, None], random_t)
    return torch.mean(torch.sum((score * std[:, None, None, None] + z) ** 2, dim=(1, 2, 3)))


def train(images: torch.Tensor, *, n_epochs: int = 1, batch_size: int = 32, lr: float = 1e-4, seed: int = 0,
          max_steps: int | None = None, variant: str = "colab") -> list[float]:
    """The notebooks' loop (shuffled batches, Adam), returning each epoch's average loss.

    ``variant``: ``"colab"`` (Song's, ``ScoreNet`` + ``loss_fn``) or ``"seed"`` (``SeedScoreNet`` + ``loss_func``).
    """
    if variant not in ("colab", "seed"):
        raise ValueError(f"variant must be 'colab' or 'seed', got {variant!r}")
    torch.manual_seed(seed)
    model = SeedScoreNet() if variant == "seed" else ScoreNet()
    objective = loss_func if variant == "seed" else loss_fn
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=batch_size,
                                         shuffle=True)
    averages, steps = [], 0
    for epoch in range(n_epochs):
        avg_loss, num_items = 0.0, 0
        for (x,) in loader:
            loss = objective(model, x)
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


def main() -> None:
    import json

    import scoreflow as sf

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with the MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", nargs="+", choices=("seed", "colab"), default=["seed"],
                        help="seed: the seed tutorial's notebook; colab: Song's original Colab")
    parser.add_argument("--out", default=None, help="write {variant: {epoch_losses, seconds}} as JSON here")
    args = parser.parse_args()
    data = sf.create("dataset", "mnist", split="train", data_dir=args.data_dir)
    results = {}
    for variant in args.variant:
        start = time.perf_counter()
        losses = train(data.x, n_epochs=args.epochs, seed=args.seed, variant=variant)
        results[variant] = {"epoch_losses": losses, "seconds": time.perf_counter() - start}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
