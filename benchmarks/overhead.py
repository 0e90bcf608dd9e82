"""Sampler overhead: ``scoreflow.Sampler`` against a minimal hand-written loop.

Both do the same Euler-Maruyama updates with the same score function, so the
ratio of their wall times is scoreflow's per-step overhead. Runs are interleaved
after a warm-up and reported as medians; the machine's load average is recorded.

    python -m benchmarks.overhead --repeats 7 --steps 200 --out overhead.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Callable

import torch

import scoreflow as sf


def handwritten_em(score: Callable, sde: sf.VESDE, shape: tuple[int, ...], steps: int, eps: float,
                   generator: torch.Generator) -> torch.Tensor:
    """The tutorial's Euler-Maruyama loop, written out (same grid as Sampler)."""
    x = torch.randn(shape, generator=generator) * sde.prior_std
    times = torch.linspace(sde.T, eps, steps + 1)
    c = math.sqrt(2 * sde.log_ratio)
    with torch.no_grad():
        for i in range(steps):
            t = times[i].expand(shape[0])
            dt = float(times[i + 1] - times[i])
            g = sde.sigma_min * torch.exp(t * sde.log_ratio) * c
            x_mean = x - (g**2)[:, None] * score(x, t) * dt
            x = x_mean + g[:, None] * math.sqrt(-dt) * torch.randn(shape, generator=generator)
    return x_mean


def tiny_mlp_score(sde: sf.VESDE) -> Callable:
    torch.manual_seed(0)
    net = sf.MLP(sde, dim=2, hidden=32, depth=2, embed_dim=16).eval()
    return net


def measure(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(repeats: int, steps: int, batch: int) -> dict:
    sde = sf.VESDE()
    cases = {
        "tiny MLP": tiny_mlp_score(sde),
        "exact mixture score": sf.GaussianMixture.ring().score_model(sde),
    }
    results = {}
    for label, score in cases.items():
        sampler = sf.Sampler(predictor="euler", num_steps=steps)
        variants = {
            "scoreflow": lambda: sampler.sample(score, sde, (batch, 2), generator=torch.Generator().manual_seed(0)),
            "hand-written": lambda: handwritten_em(score, sde, (batch, 2), steps, 1e-3, torch.Generator().manual_seed(0)),
        }
        for fn in variants.values():  # warm-up
            fn()
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(repeats):  # interleaved
            for name, fn in variants.items():
                times[name].append(measure(fn))
        med = {k: statistics.median(v) for k, v in times.items()}
        results[label] = {"median_s": med, "ratio_scoreflow_over_handwritten": med["scoreflow"] / med["hand-written"]}
    return {
        "benchmark": "sampler overhead", "repeats": repeats, "steps": steps, "batch": batch,
        "threads": torch.get_num_threads(), "loadavg_before": os.getloadavg(), "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", default=None, help="write the JSON record here")
    args = parser.parse_args()
    record = run(args.repeats, args.steps, args.batch)
    record["loadavg_after"] = os.getloadavg()
    text = json.dumps(record, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
