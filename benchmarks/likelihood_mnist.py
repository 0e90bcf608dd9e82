"""Bits/dim on the shipped MNIST U-Net: time against error for the tutorial's path and scoreflow's settings.

Every variant integrates the same dequantized test images with the same Gaussian probe; the error of each
is its per-image bits/dim minus a tight reference solve (dopri5 in ``t``, tolerance 1e-7, float32 network
as everywhere). The tutorial's path is the notebook's ``ode_likelihood`` (scipy RK45, float64 state, score
and divergence as two network calls), transcribed in :mod:`benchmarks.likelihood`. Variants run
interleaved, ``--repeats`` times; times are medians.

    python -m benchmarks.likelihood_mnist --data-dir MNIST_DIR --images 32 --batch 16
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import scoreflow as sf
from benchmarks.likelihood import tutorial_log_likelihood
from scoreflow.flow import likelihood as lik

VARIANTS: dict[str, dict[str, Any]] = {
    "tutorial RK45 tol 1e-2": {"tutorial": 1e-2},
    "tutorial RK45 tol 1e-3": {"tutorial": 1e-3},
    "tutorial RK45 tol 5e-4": {"tutorial": 5e-4},
    "tutorial RK45 tol 2e-4": {"tutorial": 2e-4},
    "tutorial RK45 tol 1e-4": {"tutorial": 1e-4},
    "tutorial RK45 tol 1e-5": {"tutorial": 1e-5},
    "scoreflow dopri5 in t, tol 1e-5 (old default)": {"rtol": 1e-5, "atol": 1e-5},
    "scoreflow rk4 in log sigma, 10 steps": {"solver": "rk4", "num_steps": 10, "time_variable": "log_sigma"},
    "scoreflow rk4 in log sigma, 15 steps": {"solver": "rk4", "num_steps": 15, "time_variable": "log_sigma"},
    "scoreflow rk4 in log sigma, 20 steps": {"solver": "rk4", "num_steps": 20, "time_variable": "log_sigma"},
    "scoreflow rk4 in log sigma, 30 steps": {"solver": "rk4", "num_steps": 30, "time_variable": "log_sigma"},
    "scoreflow rk4 in log sigma, 40 steps": {"solver": "rk4", "num_steps": 40, "time_variable": "log_sigma"},
    "scoreflow dopri5 in log sigma, x tol 1e-2, logp atol 1e-2": {
        "rtol": 1e-2, "atol": 1e-2, "logp_atol": 1e-2, "time_variable": "log_sigma"},
    **{f"scoreflow exponential in log sigma, {n} steps": {"method": "exponential", "num_steps": n}
       for n in (13, 16, 18, 20, 24)},
}
REFERENCE = {"rtol": 1e-7, "atol": 1e-7}


def _method(spec: dict[str, Any], eps: float) -> sf.ODELikelihood | sf.ExponentialLikelihood:
    """The likelihood method a variant's options describe (``"method": "exponential"`` or the ODE's options)."""
    options = {k: v for k, v in spec.items() if k != "method"}
    if spec.get("method") == "exponential":
        return sf.ExponentialLikelihood(eps=eps, **options)
    return sf.ODELikelihood(eps=eps, **options)


def _run(net, sde, x: torch.Tensor, probe: torch.Tensor, spec: dict[str, Any], eps: float
         ) -> tuple[torch.Tensor, int, float]:
    """Per-image bits/dim, network evaluations and seconds of one variant on one batch."""
    dim = x[0].numel()
    start = time.perf_counter()
    if "tutorial" in spec:
        score = sf.make_score_fn(net, sde)
        with torch.no_grad():
            logp, calls = tutorial_log_likelihood(lambda s, t: score(s.float(), t.float()).double(), sde, x.double(),
                                                  tol=spec["tutorial"], probe=probe[0], eps=eps)
        nfe = 2 * calls  # the notebook evaluates the score and the divergence separately
    else:
        original = lik.make_probes
        lik.make_probes = lambda *args: probe.clone()
        try:
            res = sf.log_likelihood(net, sde, x, method=_method(spec, eps))
        finally:
            lik.make_probes = original
        logp, nfe = res.logp.double(), res.nfe
    seconds = time.perf_counter() - start
    return -logp / (dim * math.log(2)) + 8, nfe, seconds


def run(data_dir: str | None, images: int, batch: int, repeats: int, ema: bool, pretrained: str = "mnist-sigma25",
        eps: float | None = None, variants: list[str] | None = None) -> dict[str, Any]:
    from scoreflow.data.sources import mnist

    unknown = sorted(set(variants or ()) - set(VARIANTS))
    if unknown:
        raise ValueError(f"Unknown variants {unknown}. Available: {', '.join(VARIANTS)}")
    chosen = {name: spec for name, spec in VARIANTS.items() if variants is None or name in variants}

    net, sde, config = sf.load_pretrained(pretrained, ema=ema)
    eps = config.eps if eps is None else eps  # the notebooks integrate from their training eps
    test = mnist("test", data_dir=data_dir)
    order = torch.randperm(len(test.x), generator=torch.Generator().manual_seed(0))[:images]
    x_all = lik.dequantize_uniform(test.x[order].float(), torch.Generator().manual_seed(1))
    probes = torch.randn((1, *x_all.shape), generator=torch.Generator().manual_seed(2))
    batches = [(x_all[i:i + batch], probes[:, i:i + batch]) for i in range(0, images, batch)]
    _run(net, sde, batches[0][0][:2], batches[0][1][:, :2], {"solver": "rk4", "num_steps": 2}, eps)  # warm up
    reference = torch.cat([_run(net, sde, x, p, REFERENCE, eps)[0] for x, p in batches])
    rows: dict[str, dict[str, Any]] = {name: {"seconds": [], "nfe": 0} for name in chosen}
    values: dict[str, torch.Tensor] = {}
    load = []
    for _ in range(repeats):
        for name, spec in chosen.items():  # interleaved: a busy spell hits every variant alike
            load.append(os.getloadavg()[0])
            out = [_run(net, sde, x, p, spec, eps) for x, p in batches]
            values[name] = torch.cat([o[0] for o in out])
            rows[name]["seconds"].append(sum(o[2] for o in out))
            rows[name]["nfe"] = sum(o[1] for o in out)
    baseline = "tutorial RK45 tol 1e-5"
    tutorial = statistics.median(rows[baseline]["seconds"]) if baseline in rows else None
    table = []
    for name in chosen:
        err = values[name] - reference
        seconds = statistics.median(rows[name]["seconds"])
        table.append({"variant": name, "nfe": rows[name]["nfe"], "seconds": round(seconds, 3),
                      "speedup_vs_tutorial_1e-5": round(tutorial / seconds, 2) if tutorial else None,
                      "mean_abs_error_bpd": float(err.abs().mean()), "max_abs_error_bpd": float(err.abs().max()),
                      "mean_error_bpd": float(err.mean())})
    within = [r for r in table if r["max_abs_error_bpd"] <= 0.01]
    fastest = {side: min((r for r in within if r["variant"].startswith(side)), key=lambda r: r["seconds"], default=None)
               for side in ("tutorial", "scoreflow")}
    summary = None
    if all(fastest.values()):
        summary = {"bound_bpd": 0.01, "tutorial": fastest["tutorial"]["variant"],
                   "scoreflow": fastest["scoreflow"]["variant"],
                   "speedup": round(fastest["tutorial"]["seconds"] / fastest["scoreflow"]["seconds"], 2)}
    return {"pretrained": pretrained, "eps": eps, "images": images, "batch": batch, "repeats": repeats,
            "weights": "ema" if ema else "raw",
            "fastest_within_0.01_bpd": summary,
            "reference": f"dopri5 in t, rtol=atol={REFERENCE['rtol']:g}", "reference_mean_bpd": float(reference.mean()),
            "load_average": {"min": min(load), "max": max(load)}, "threads": torch.get_num_threads(),
            "rows": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--raw-weights", action="store_true")
    parser.add_argument("--pretrained", default="mnist-sigma25", help="shipped model to measure")
    parser.add_argument("--eps", type=float, default=None, help="lower time limit (default: the run's training eps)")
    parser.add_argument("--variants", nargs="+", default=None, metavar="NAME",
                        help="run only these variants (names as in the table; default: all)")
    parser.add_argument("--out", default="benchmarks/results/likelihood-mnist.json")
    args = parser.parse_args()
    result = run(args.data_dir, args.images, args.batch, args.repeats, ema=not args.raw_weights,
                 pretrained=args.pretrained, eps=args.eps, variants=args.variants)
    Path(args.out).write_text(json.dumps(result, indent=1))
    for row in result["rows"]:
        print(f"{row['variant']:<62} NFE {row['nfe']:>5}  {row['seconds']:>7.2f} s  x{str(row['speedup_vs_tutorial_1e-5']):<5}"
              f"  mean |err| {row['mean_abs_error_bpd']:.5f}  max {row['max_abs_error_bpd']:.5f} bits/dim")
    print(f"load average {result['load_average']}, reference mean {result['reference_mean_bpd']:.5f} bits/dim")
    print("fastest of each within 0.01 bits/dim of the reference (every image):", result["fastest_within_0.01_bpd"])


if __name__ == "__main__":
    main()
