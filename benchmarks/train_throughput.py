"""Training throughput: scoreflow's Trainer against a plain hand-written loop, same model and loss.

The tutorial U-Net on 28x28 images (MNIST from --data-dir when given, else random
images of that shape), at each batch size: both variants warm up, then alternate
blocks of steps; medians of images/s and their ratio are reported with the load average.
Then the hand-written step at the largest batch with the fused Adam step, under channels_last, bf16 autocast and
torch.compile, each as a ratio to plain fp32 (failures reported with their error).

    python -m benchmarks.train_throughput --batch-sizes 32 128 --blocks 5 --steps-per-block 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

import scoreflow as sf
from scoreflow.data.base import TensorData
from scoreflow.training import TrainConfig, Trainer


VARIANTS = ("fp32", "fused_adam", "channels_last", "bf16", "compile")


class SyntheticImages:
    """A plugin adding a 'synthetic28' dataset: random 28x28 images (for machines without MNIST)."""

    @sf.hookimpl
    def scoreflow_register_datasets(self, registry):
        def synthetic28(split: str = "train", *, data_dir=None) -> TensorData:
            g = torch.Generator().manual_seed(0 if split == "train" else 1)
            return TensorData(torch.rand(2048, 1, 28, 28, generator=g), None, "image", "synthetic28")

        registry.add("synthetic28", synthetic28)


def handwritten_step(model, sde, x, optimizer, eps=1e-5, *, bf16: bool = False) -> float:
    """The tutorial's loss_fn and an Adam step, written out (``bf16``: under bfloat16 autocast)."""
    t = torch.rand(x.shape[0]) * (1.0 - eps) + eps
    z = torch.randn_like(x)
    std = sde.marginal_std(t)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        score = model(x + z * std[:, None, None, None], t)
    loss = torch.mean(torch.sum((score.float() * std[:, None, None, None] + z) ** 2, dim=(1, 2, 3)))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def run(batch_sizes, blocks: int, steps_per_block: int, data_dir: str | None,
        variants: tuple[str, ...] = VARIANTS) -> dict:
    loadavg_before = os.getloadavg()
    host = sf.PluginHost(autoload=False)
    host.register(SyntheticImages(), name="bench")
    dataset = "mnist" if data_dir else "synthetic28"
    results = {}
    for batch in batch_sizes:
        cfg = TrainConfig(dataset=dataset, data_dir=data_dir, batch_size=batch, steps=10**9, lr=1e-4)
        trainer = Trainer(cfg, Path("/tmp/scoreflow-bench-unused"), host=host, progress=False)
        torch.manual_seed(0)
        plain = sf.UNet(trainer.sde)
        opt = torch.optim.Adam(plain.parameters(), lr=1e-4)
        data = trainer.data.x

        def ours():
            for _ in range(steps_per_block):
                trainer.train_step()

        def theirs():
            for _ in range(steps_per_block):
                idx = torch.randint(0, len(data), (batch,))
                handwritten_step(plain, trainer.sde, data[idx], opt)

        loops = {"scoreflow": ours, "hand-written": theirs}
        for fn in loops.values():
            fn()  # warm-up
        rates: dict[str, list[float]] = {k: [] for k in loops}
        for _ in range(blocks):
            for name, fn in loops.items():
                start = time.perf_counter()
                fn()
                rates[name].append(steps_per_block * batch / (time.perf_counter() - start))
        med = {k: statistics.median(v) for k, v in rates.items()}
        # each block of one variant ran beside a block of the other: their ratios show the spread under load
        paired = sorted(a / b for a, b in zip(rates["scoreflow"], rates["hand-written"], strict=True))
        results[str(batch)] = {"images_per_s": med, "ratio_scoreflow_over_handwritten": med["scoreflow"] / med["hand-written"],
                               "paired_block_ratios": {"median": statistics.median(paired), "min": paired[0],
                                                       "max": paired[-1]}}
    effects = variant_effects(batch_sizes[-1], blocks, steps_per_block, trainer.data.x, trainer.sde, variants)
    return {"variant_effects": effects, "benchmark": "training throughput, tutorial U-Net 28x28", "dataset": dataset, "blocks": blocks,
            "steps_per_block": steps_per_block, "threads": torch.get_num_threads(),
            "loadavg_before": loadavg_before, "loadavg_after": os.getloadavg(), "results": results,
            "note": "scoreflow's step includes EMA update and gradient clipping; the hand-written loop (the "
                    "tutorial's) has neither and uses torch's default per-tensor Adam, scoreflow the fused one"}


def variant_effects(batch: int, blocks: int, steps_per_block: int, data: torch.Tensor, sde,
                    variants: tuple[str, ...] = VARIANTS) -> dict:
    """images/s of the hand-written step under each speed-up, interleaved, as ratios to plain fp32.

    ``fused_adam``: torch's fused Adam step (scoreflow's Trainer uses it) instead of the per-tensor default;
    ``channels_last``: model and batches in NHWC memory format; ``bf16``: bfloat16 autocast of the
    forward pass; ``compile``: ``torch.compile`` of the model (inductor). A variant that fails (no
    compiler, an unsupported op) is reported with its error instead of a number.
    """
    runs, errors = {}, {}
    for name in variants:
        torch.manual_seed(0)
        model = sf.UNet(sde)
        fmt = torch.channels_last if name == "channels_last" else torch.contiguous_format
        model = model.to(memory_format=fmt)
        net = torch.compile(model) if name == "compile" else model
        opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=(name == "fused_adam") or None)

        def block(net=net, opt=opt, fmt=fmt, bf16=(name == "bf16")):
            for _ in range(steps_per_block):
                x = data[torch.randint(0, len(data), (batch,))].contiguous(memory_format=fmt)
                handwritten_step(net, sde, x, opt, bf16=bf16)

        try:
            start = time.perf_counter()
            block()  # warm-up (compiles)
            warmup = time.perf_counter() - start
        except Exception as exc:  # report, do not hide: the point is to learn where a speed-up works
            errors[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            continue
        runs[name] = (block, warmup)
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(blocks):
        for name, (block, _) in runs.items():
            start = time.perf_counter()
            block()
            rates[name].append(steps_per_block * batch / (time.perf_counter() - start))
    med = {k: statistics.median(v) for k, v in rates.items()}
    base = med.get("fp32")
    rows = {k: {"images_per_s": v, "ratio_to_fp32": (v / base) if base else None,
                "warmup_seconds": round(runs[k][1], 1)} for k, v in med.items()}
    rows.update({k: {"error": e} for k, e in errors.items()})
    return {"batch": batch, "variants": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--steps-per-block", type=int, default=5)
    parser.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    record = run(args.batch_sizes, args.blocks, args.steps_per_block, args.data_dir, tuple(args.variants))
    text = json.dumps(record, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
