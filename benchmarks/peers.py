"""Suite 5: peer libraries driven with the same exact score on the same oracle at equal NFE.

Peers come from the ``bench`` extra. Where one cannot be imported, the result says why.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import attrs
import torch

from benchmarks.oracles import Oracle
from scoreflow.oracles import mixture_report

KDIFFUSION_NOTE = ("k-diffusion imports torchvision, and PyPI's torchvision does not load beside the local CPU "
                   "torch 2.13.0 wheel; it needs a separate environment (torch 2.14.1 + torchvision 0.29.1, "
                   "setuptools<81 for CLIP's pkg_resources)")


def _sigma_score(oracle: Oracle):
    """Exact score as a function of the VE noise level sigma (the peers' convention)."""
    sde, gm = oracle.sde, oracle.mixture

    def score(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        t = sde.time_at_noise_level(sigma.double().reshape(-1).expand(x.shape[0]).clamp_min(1e-12))
        return gm.score(x, t, sde)

    return score


def diffusers_pc(oracle: Oracle, n: int, nfe: int, snr: float = 0.16) -> dict[str, Any]:
    """diffusers' ScoreSdeVeScheduler predictor-corrector loop (one corrector step per level)."""
    from diffusers import ScoreSdeVeScheduler

    sde = oracle.sde
    sched = ScoreSdeVeScheduler(num_train_timesteps=nfe // 2, snr=snr, sigma_min=sde.sigma_min,
                                sigma_max=sde.sigma_max, sampling_eps=1e-3)
    sched.set_timesteps(nfe // 2)
    sched.set_sigmas(nfe // 2, sigma_min=sde.sigma_min, sigma_max=sde.sigma_max)
    score = _sigma_score(oracle)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, oracle.mixture.dim, generator=g) * sched.init_noise_sigma
    calls = 0
    start = time.perf_counter()
    for i, t in enumerate(sched.timesteps):
        sigma = sched.sigmas[i]
        x = sched.step_correct(score(x, sigma), x, generator=g).prev_sample
        out = sched.step_pred(score(x, sigma), t, x, generator=g)
        x = out.prev_sample
        calls += 2
    x = out.prev_sample_mean
    seconds = time.perf_counter() - start
    return {"peer": "diffusers ScoreSdeVeScheduler (PC)", "nfe": calls, "seconds": round(seconds, 4),
            **attrs.asdict(mixture_report(oracle.mixture, x.float(), oracle.reference_logp))}


def kdiffusion_rows(oracle: Oracle, n: int, budgets: tuple[int, ...],
                    python: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """k-diffusion at its best: every sampler it has (deterministic and stochastic) with every noise-level
    schedule it offers for a VE model, in this process when it imports, else in the environment of ``python``.

    ``python`` defaults to ``$SCOREFLOW_KDIFFUSION_PYTHON``. Returns ``(rows, reason it is unavailable)``.
    """
    from benchmarks import kdiffusion_peer

    try:
        import k_diffusion  # noqa: F401
    except Exception as exc:
        python = python or os.environ.get("SCOREFLOW_KDIFFUSION_PYTHON")
        if not python:
            return [], (f"{KDIFFUSION_NOTE}; import failed here ({type(exc).__name__}); point "
                        "--kdiffusion-python (or SCOREFLOW_KDIFFUSION_PYTHON) at that environment's python")
        root = Path(__file__).resolve().parents[1]
        cmd = [python, "-m", "benchmarks.kdiffusion_peer", "--oracle", oracle.name, "--n", str(n),
               "--budgets", *map(str, budgets), "--samplers", *kdiffusion_peer.SAMPLERS,
               "--schedules", *kdiffusion_peer.SCHEDULES]
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
        if proc.returncode != 0:
            return [], f"{python} -m benchmarks.kdiffusion_peer failed: {proc.stderr.strip().splitlines()[-1:]}"
        record = json.loads(proc.stdout)
        env = f"k-diffusion {record['k_diffusion']}, torch {record['torch']}, via {python}"
        return [{**row, "environment": env} for row in record["rows"]], None
    return kdiffusion_peer.run(oracle.name, n, list(budgets), samplers=list(kdiffusion_peer.SAMPLERS),
                               schedules=list(kdiffusion_peer.SCHEDULES)), None


def run_suite(oracle: Oracle, n: int, budgets: tuple[int, ...], kdiffusion_python: str | None = None) -> dict[str, Any]:
    """Rows for every peer that imports; reasons for those that do not."""
    rows, missing = [], {}
    try:
        import diffusers  # noqa: F401
    except ImportError as exc:
        missing["diffusers"] = f"not installed ({exc}); install the bench extra: pip install -e '.[bench]'"
    else:
        for nfe in budgets:
            try:
                rows.append({"oracle": oracle.name, "budget": nfe, **diffusers_pc(oracle, n, nfe)})
            except Exception as exc:  # report a peer's failure instead of hiding it
                rows.append({"oracle": oracle.name, "budget": nfe, "peer": "diffusers", "error": repr(exc)[:300]})
    kd_rows, why = kdiffusion_rows(oracle, n, budgets, kdiffusion_python)
    rows += kd_rows
    if why:
        missing["k-diffusion"] = why
    return {"rows": rows, "unavailable": missing}
