"""Train a small diffusers ``UNet2DModel`` on MNIST the way diffusers' unconditional training example does.

The model the diffusers peer comparison (``benchmarks/diffusers_mnist.py``) runs on: a peer-format model that
scoreflow did not train, read back through ``diffusers:DIR``. Recipe (diffusers' ``train_unconditional.py``, sized
to about an hour on one CPU core):

- MNIST padded to 32x32 (background 0), scaled to [-1, 1]; no dequantization, no flip.
- ``UNet2DModel`` with 16-32-64 channels at 32-16-8 pixels, one ResNet block per level, attention at 8x8
  (0.69 M parameters, 2.7 MB).
- ``DDPMScheduler``: 1000 timesteps, linear betas 1e-4..0.02, epsilon prediction, MSE loss, uniform timesteps.
- AdamW (betas 0.95/0.999, weight decay 1e-6), cosine learning rate with 500 warm-up steps, gradient clipping at
  1, diffusers' ``EMAModel`` (warm-up power 3/4, max decay 0.9999); the EMA weights are the ones saved.
- Differences from the example, for the CPU budget: learning rate 5e-4 instead of 1e-4 (8,000 steps instead of
  about 375,000), batch 32.

Resumable: ``--out DIR`` holds ``state.pt`` (every ``--save-every`` steps; tensors only, read with
``weights_only=True``) and, when finished, the pipeline folder written by ``DDPMPipeline.save_pretrained``.
Run::

    OMP_NUM_THREADS=1 nice python -m benchmarks.diffusers_mnist_train --data-dir MNIST_DIR --out runs/ddpm-mnist
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import scoreflow as sf

#: The network, as ``UNet2DModel`` keyword arguments.
UNET_CONFIG = {
    "sample_size": 32, "in_channels": 1, "out_channels": 1, "layers_per_block": 1,
    "block_out_channels": (16, 32, 64), "norm_num_groups": 8,
    "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
}


def padded_mnist(split: str, data_dir: str | None) -> torch.Tensor:
    """MNIST ``split`` as ``(N, 1, 32, 32)`` in [-1, 1] (zero background padded by 2 pixels)."""
    images = sf.create("dataset", "mnist", split=split, data_dir=data_dir).x
    return torch.nn.functional.pad(images, (2, 2, 2, 2)) * 2.0 - 1.0


def build(lr: float, steps: int, warmup: int):
    import diffusers
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    unet = diffusers.UNet2DModel(**UNET_CONFIG)
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon")
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8)
    lr_schedule = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=steps)
    ema = EMAModel(unet.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75)
    return unet, scheduler, optimizer, lr_schedule, ema


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", required=True, help="run folder (state.pt, log, and the finished pipeline)")
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--save-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import diffusers

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    unet, scheduler, optimizer, lr_schedule, ema = build(args.lr, args.steps, args.warmup)
    data = padded_mnist("train", args.data_dir)
    generator = torch.Generator().manual_seed(args.seed)
    step = 0
    state_path = out / "state.pt"
    if state_path.is_file():
        state = torch.load(state_path, weights_only=True)
        unet.load_state_dict(state["unet"])
        optimizer.load_state_dict(state["optimizer"])
        lr_schedule.load_state_dict(state["lr_schedule"])
        ema.load_state_dict(state["ema"])
        generator.set_state(state["generator"])
        step = int(state["step"])
        print(f"resumed at step {step}", flush=True)
    alphas_cumprod = scheduler.alphas_cumprod
    unet.train()
    start, losses = time.perf_counter(), []
    while step < args.steps:
        idx = torch.randint(0, data.shape[0], (args.batch_size,), generator=generator)
        x0 = data[idx]
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (args.batch_size,), generator=generator)
        abar = alphas_cumprod[t].view(-1, 1, 1, 1)
        noisy = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        loss = torch.nn.functional.mse_loss(unet(noisy, t).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        lr_schedule.step()
        ema.step(unet.parameters())
        step += 1
        losses.append(loss.item())
        if step % 50 == 0:
            rate = len(losses) / (time.perf_counter() - start)
            print(f"step {step} loss {sum(losses[-50:]) / 50:.4f} lr {lr_schedule.get_last_lr()[0]:.2e} "
                  f"{rate:.2f} it/s", flush=True)
        if step % args.save_every == 0 or step == args.steps:
            tmp = out / "state.pt.tmp"
            torch.save({"unet": unet.state_dict(), "optimizer": optimizer.state_dict(),
                        "lr_schedule": lr_schedule.state_dict(), "ema": ema.state_dict(),
                        "generator": generator.get_state(), "step": torch.tensor(step)}, tmp)
            tmp.replace(state_path)
    ema.copy_to(unet.parameters())
    unet.eval()
    diffusers.DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(out / "pipeline", safe_serialization=True)
    final = [v for v in losses[-200:]] or [math.nan]
    print(f"saved {out / 'pipeline'} after {step} steps (last-200 mean loss {sum(final) / len(final):.4f})", flush=True)


if __name__ == "__main__":
    main()
