"""k-diffusion's samplers on an exact oracle, through its denoiser convention.

k-diffusion's package imports torchvision, which does not load beside the local CPU torch wheel. Where the
whole package does not import, :func:`load_kdiffusion` loads its ``sampling.py`` (the samplers, unchanged)
on its own from an installation made with ``pip install --no-deps k-diffusion`` (its sampling needs only
torch, scipy, torchdiffeq, torchsde and tqdm, which scoreflow already has), giving it the one helper it takes
from ``utils.py``, ``append_dims``. Otherwise this module runs in a second environment (torch 2.14.1 +
torchvision 0.29.1 + k-diffusion, with scoreflow installed there too) and reports JSON on stdout;
``benchmarks.peers`` starts it with that environment's Python (``--kdiffusion-python`` or
``SCOREFLOW_KDIFFUSION_PYTHON``):

    /path/to/kd-env/bin/python -m benchmarks.kdiffusion_peer --n 5000 --budgets 10 20 50

``--pretrained NAME --data-dir DIR`` runs them on a shipped MNIST model instead, judged by the MNIST
classifier metric (rows as :mod:`benchmarks.mnist_samplers` writes them).

``--samplers`` also runs k-diffusion's stochastic samplers (SDE variants, ancestral, Heun with churn),
which the report leaves out; ``--seed`` sets both the prior draw and their noise.

The denoiser is ``sf.to_denoiser`` of the oracle's exact score, ``D(x, sigma) = x + sigma^2 score(x, t(sigma))``; the
noise levels are k-diffusion's Karras schedule (rho = 7) from the oracle's sigma_max down to its
sigma_min, then 0, as k-diffusion's own scripts use them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import attrs
import torch

#: name -> (k-diffusion ``sample_*`` function, its options, network evaluations for ``n`` noise levels
#: plus the final 0)
SAMPLERS = {
    "euler": ("euler", {}, lambda n: n),
    "heun": ("heun", {}, lambda n: 2 * n - 1),
    "dpm_2": ("dpm_2", {}, lambda n: 2 * n - 1),
    "lms": ("lms", {}, lambda n: n),
    "dpmpp_2m": ("dpmpp_2m", {}, lambda n: n),
    # stochastic, run only when named (``--samplers``)
    "dpmpp_2m_sde": ("dpmpp_2m_sde", {}, lambda n: n),
    "dpmpp_3m_sde": ("dpmpp_3m_sde", {}, lambda n: n),
    # the same with three times the reverse SDE's noise (eta = 3), the setting scoreflow's suite also runs
    "dpmpp_2m_sde_eta3": ("dpmpp_2m_sde", {"eta": 3.0}, lambda n: n),
    "dpmpp_3m_sde_eta3": ("dpmpp_3m_sde", {"eta": 3.0}, lambda n: n),
    "euler_ancestral": ("euler_ancestral", {}, lambda n: n),
    "heun_churn10": ("heun", {"s_churn": 10.0}, lambda n: 2 * n - 1),
    "heun_churn40": ("heun", {"s_churn": 40.0}, lambda n: 2 * n - 1),
}
#: the deterministic samplers the report compares
DEFAULT = ("euler", "heun", "dpm_2", "lms", "dpmpp_2m")
#: k-diffusion's noise-level schedules for a VE model (``get_sigmas_*``; ``vp`` needs a VP model): name -> options
SCHEDULES = {"karras": {"rho": 7.0}, "exponential": {}, "polyexponential": {"rho": 2.0}}


def load_kdiffusion():
    """k-diffusion as ``K`` with ``K.sampling``: the whole package where it imports, else its ``sampling.py``
    loaded on its own (see the module docstring). Raises ImportError when k-diffusion is not installed."""
    import importlib.util
    import types

    try:
        import k_diffusion as K

        return K
    except ImportError:
        spec = importlib.util.find_spec("k_diffusion")
        if spec is None or not spec.submodule_search_locations:
            raise
    folder = spec.submodule_search_locations[0]
    package = types.ModuleType("k_diffusion")
    package.__path__ = [folder]
    utils = types.ModuleType("k_diffusion.utils")

    def append_dims(x, target_dims):  # k_diffusion.utils.append_dims
        dims_to_append = target_dims - x.ndim
        if dims_to_append < 0:
            raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
        return x[(...,) + (None,) * dims_to_append]

    utils.append_dims = append_dims
    package.utils = utils
    sys.modules.setdefault("k_diffusion", package)
    sys.modules.setdefault("k_diffusion.utils", utils)
    sampling_spec = importlib.util.spec_from_file_location("k_diffusion.sampling", f"{folder}/sampling.py")
    sampling = importlib.util.module_from_spec(sampling_spec)
    sys.modules["k_diffusion.sampling"] = sampling
    sampling_spec.loader.exec_module(sampling)
    package.sampling = sampling
    return package


def sigmas_for(K, schedule: str, levels: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """``levels`` decreasing noise levels from ``sigma_max`` to ``sigma_min``, then 0 (k-diffusion's convention)."""
    return getattr(K.sampling, f"get_sigmas_{schedule}")(levels, sigma_min, sigma_max, **SCHEDULES[schedule])


def levels_for_budget(sampler: str, budget: int) -> int:
    """The most noise levels whose NFE fits in ``budget``."""
    n = 1
    while SAMPLERS[sampler][2](n + 1) <= budget:
        n += 1
    return n


def run(oracle_name: str, n: int, budgets: list[int], seed: int = 1,
        samplers: list[str] | None = None, schedules: list[str] | None = None) -> list[dict[str, Any]]:
    K = load_kdiffusion()

    import scoreflow as sf
    from benchmarks.oracles import digits64, ring

    oracle = ring() if oracle_name == "ring-2d" else digits64()
    sde, gm = oracle.sde, oracle.mixture

    calls = {"n": 0}
    exact = sf.to_denoiser(gm.score_model(sde), sde)  # k-diffusion's D(x, sigma) from the exact score

    def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return exact(x.double(), sigma.double()).to(x.dtype)  # in float64, as the oracle's score

    rows = []
    for budget in budgets:
        for name in samplers or DEFAULT:
            for schedule in schedules or ("karras",):
                rows.append(_one(K, gm, sde, oracle, denoiser, calls, name, schedule, budget, n, seed))
    return rows


def _draw(K, denoiser, calls, name: str, schedule: str, budget: int, x: torch.Tensor, sigma_min: float,
          sigma_max: float, seed: int) -> tuple[torch.Tensor, float] | str:
    """One k-diffusion sampler from the prior draw ``x`` (already scaled by ``sigma_max``): its samples and
    seconds, or why it failed (a peer's failure is reported, not hidden)."""
    function, options, _ = SAMPLERS[name]
    sigmas = sigmas_for(K, schedule, levels_for_budget(name, budget), sigma_min, sigma_max)
    calls["n"] = 0
    torch.manual_seed(seed)  # k-diffusion's stochastic samplers draw from the global generator
    start = time.perf_counter()
    try:
        out = getattr(K.sampling, f"sample_{function}")(denoiser, x, sigmas, disable=True, **options)
    except Exception as exc:  # noqa: BLE001
        return repr(exc)[:300]
    if not torch.isfinite(out).all():
        return "non-finite samples"
    return out, time.perf_counter() - start


def _label(name: str, schedule: str) -> str:
    return f"k-diffusion {name}" + ("" if schedule == "karras" else f"@{schedule}")


def _one(K, gm, sde, oracle, denoiser, calls, name: str, schedule: str, budget: int, n: int, seed: int
         ) -> dict[str, Any]:
    from scoreflow.oracles import mixture_report

    label = _label(name, schedule)
    x = torch.randn(n, gm.dim, generator=torch.Generator().manual_seed(seed)) * sde.sigma_max
    drawn = _draw(K, denoiser, calls, name, schedule, budget, x, sde.sigma_min, sde.sigma_max, seed)
    if isinstance(drawn, str):
        return {"peer": label, "budget": budget, "nfe": calls["n"], "error": drawn}
    out, seconds = drawn
    rep = mixture_report(gm, out.float(), oracle.reference_logp)
    return {"oracle": oracle.name, "peer": label, "schedule": schedule, "budget": budget, "nfe": calls["n"],
            "seconds": round(seconds, 4), **attrs.asdict(rep)}


def run_pretrained(name: str, n: int, budgets: list[int], data_dir: str | None, seed: int = 1000,
                   samplers: list[str] | None = None, schedules: list[str] | None = None,
                   eps: float = 1e-3) -> list[dict[str, Any]]:
    """k-diffusion's samplers on a shipped pretrained image model, from its prior std down to the noise
    level at ``eps`` (scoreflow's samplers stop there too), then 0; quality by the MNIST classifier metric."""
    K = load_kdiffusion()

    import scoreflow as sf
    from scoreflow.data.sources import DEFAULT_DATA_DIR
    from scoreflow.evaluation import image_quality
    model, sde, _ = sf.load_pretrained(name, ema=True)
    train = sf.create("dataset", "mnist", split="train", data_dir=data_dir)
    test = sf.create("dataset", "mnist", split="test", data_dir=data_dir)
    ends = sde.noise_level(torch.tensor([eps, sde.T], dtype=torch.float64))
    sigma_min, sigma_max = float(ends[0]), float(ends[1])
    calls = {"n": 0}
    model_denoiser = sf.to_denoiser(model, sde, eps=eps)  # k-diffusion's D(x, sigma) convention

    @torch.no_grad()
    def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return model_denoiser(x, sigma)

    rows = []
    for budget in budgets:
        for sampler in samplers or DEFAULT:
            for schedule in schedules or ("karras",):
                label = _label(sampler, schedule)
                x = torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * sigma_max
                drawn = _draw(K, denoiser, calls, sampler, schedule, budget, x, sigma_min, sigma_max, seed)
                if isinstance(drawn, str):
                    rows.append({"sampler": label, "budget": budget, "nfe": calls["n"], "error": drawn})
                    continue
                out, seconds = drawn
                rows.append({"sampler": label, "budget": budget, "nfe": calls["n"], "seconds": round(seconds, 2),
                             "schedule": schedule, "peer": "k-diffusion",
                             **image_quality(out, train, test, DEFAULT_DATA_DIR / "classifiers")})
                print(f"{label:<40} budget {budget:>4} NFE {calls['n']:>4} FD {rows[-1]['frechet_distance']:7.2f}",
                      file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oracle", default="ring-2d", choices=["ring-2d", "digits-64d"])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--samplers", nargs="+", choices=list(SAMPLERS), default=None,
                        help="default: the deterministic ones the report compares (%(choices)s are allowed)")
    parser.add_argument("--schedules", nargs="+", choices=list(SCHEDULES), default=None,
                        help="k-diffusion noise-level schedules (default: karras only)")
    parser.add_argument("--seed", type=int, default=None,
                        help="prior draw and noise seed (default: 1 on an oracle, 1000 on --pretrained)")
    parser.add_argument("--pretrained", default=None, help="a shipped image model (e.g. mnist-tutorial) instead of "
                                                            "an oracle")
    parser.add_argument("--data-dir", default=None, help="MNIST IDX files, for --pretrained")
    args = parser.parse_args(argv)
    from importlib.metadata import version

    seed = {} if args.seed is None else {"seed": args.seed}  # else each runner's own default
    if args.pretrained:
        rows = run_pretrained(args.pretrained, args.n, args.budgets, args.data_dir, samplers=args.samplers,
                              schedules=args.schedules, **seed)
    else:
        rows = run(args.oracle, args.n, args.budgets, samplers=args.samplers, schedules=args.schedules, **seed)
    json.dump({"k_diffusion": version("k-diffusion"), "torch": torch.__version__,
               "rows": rows}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
