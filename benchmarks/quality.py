"""Suite 1: sample quality against network evaluations (NFE) on exact oracles.

Every registered predictor x corrector pair, every torchsde method, every registered ODE solver
and installed plugin samplers are run at each NFE budget; steps per budget come
from probing each sampler's NFE per step, so plugins need no special casing. An ODE
solver whose NFE does not follow ``num_steps`` (an adaptive one) runs once at its
defaults. Registered SDEs are picked up through :func:`benchmarks.oracles.under_registered_sdes`.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import torch

import scoreflow as sf
from benchmarks.oracles import Oracle
from scoreflow.errors import UnknownOptionError
from scoreflow.oracles import mixture_report

TORCHSDE_METHODS = ("euler", "milstein", "srk", "heun", "midpoint", "euler_heun")
ADAPTIVE_ODE_TOLS = (1e-2, 1e-3, 1e-4, 1e-5)
#: Tuned grids are a few-step tool: ``name@tuned`` variants run at budgets up to this many evaluations.
TUNED_MAX_BUDGET = 20
#: Warm-up draws the benchmark tunes each grid on (a few seconds on the 2-D oracles). With 256, `edm_heun@tuned`
#: at NFE 20 fits the teacher's few end points too closely and lands over-concentrated (gap excess -0.020 to
#: -0.035 on six prior draws); with 1024 its excess is -0.006 to +0.014 (docs/benchmarks.md).
TUNING_TRAJECTORIES = 1024


@attrs.frozen
class Variant:
    """A named way of sampling: ``run(num_steps, shape, generator) -> SampleResult``."""

    name: str
    family: str
    run: Any
    #: ``(slope, intercept)`` of NFE against num_steps when already probed (else :func:`run_suite` probes)
    nfe_line: tuple[float, float] | None = None


def variants(host: sf.PluginHost, oracle: Oracle, tuning: dict[str, int] | None = None) -> list[Variant]:
    """Every sampler the host offers that is compatible with the oracle's SDE (tuned grids fitted with the
    ``tuning`` options of :func:`_tuned_runner`: ``trajectories``, ``fine_steps``, ``sweeps``)."""
    sde, score = oracle.sde, oracle.mixture.score_model(oracle.sde)
    out: list[Variant] = []
    for p in host.available("predictor"):
        proto = host.create("predictor", p)
        if not proto.requires <= sde.capabilities:
            continue
        for c in [None, *[c for c in host.available("corrector") if c != "none"]]:
            if p == "none" and c is None:
                continue
            if c is not None and not host.create("corrector", c).requires <= sde.capabilities:
                continue
            name = p if c is None else f"{p}+{c}"
            out.append(Variant(name, "plugin" if host.predictors.get(p).provider != "scoreflow" else "pc",
                               _pc_runner(host, p, c, score, sde, oracle.eps)))
        if getattr(proto, "preferred_schedule", None) and _deterministic(host, p, score, sde, oracle.eps,
                                                                         oracle.mixture.dim):
            # a step-wise ODE solver: also on a grid tuned to it (tune-schedule matches ODE end points)
            base = next(v for v in out if v.name == p)  # the same steps cost the same NFE on any grid
            out.append(Variant(f"{p}@tuned", "tuned", _tuned_runner(host, p, score, sde, oracle.eps, **(tuning or {})),
                               nfe_line=nfe_per_step(base, oracle.mixture.dim)))
    for p in host.available("trajectory_solver"):  # whole-trajectory solvers: no corrector; torchsde by method below
        if p != "torchsde" and host.create("trajectory_solver", p).requires <= sde.capabilities:
            out.append(Variant(p, "plugin", _pc_runner(host, p, None, score, sde, oracle.eps)))
    for m in TORCHSDE_METHODS:
        out.append(Variant(f"torchsde:{m}", "torchsde",
                           _pc_runner(host, "torchsde", None, score, sde, oracle.eps, method=m)))
    for m in host.available("ode_solver"):
        if m != "dopri5":  # dopri5 is the floor: measured at every tolerance of ADAPTIVE_ODE_TOLS in run_suite
            out.append(_ode_variant(host, m, score, sde, oracle.eps, oracle.mixture.dim))
    return out


def _ode_variant(host, method, score, sde, eps, dim: int) -> Variant:
    """``ode:<method>`` at each budget, or once at its defaults where its NFE does not follow ``num_steps``
    (an adaptive solver) or it takes no ``num_steps`` at all. A probe that fails otherwise is left to
    :func:`run_suite`, which reports it as the variant's row."""
    fixed = Variant(f"ode:{method}", "ode", _ode_runner(host, method, score, sde, eps))
    try:
        line = nfe_per_step(fixed, dim)
    except UnknownOptionError:
        line = (0.0, 0.0)
    except (ValueError, RuntimeError):
        return fixed
    if line[0] > 0:
        return attrs.evolve(fixed, nfe_line=line)
    return Variant(f"ode:{method}", "ode-adaptive", _ode_runner(host, method, score, sde, eps, fixed=False))


def _pc_runner(host, predictor, corrector, score, sde, eps, **options):
    def run(num_steps, shape, generator):
        # snr 0.16: the setting of the recorded report (the library default became the tutorial's 0.15 later)
        sampler = sf.Sampler(predictor=predictor, corrector=corrector, num_steps=num_steps, eps=eps, snr=0.16,
                             predictor_options=options, host=host)
        return sampler.sample(score, sde, shape, generator=generator)

    return run


def _deterministic(host, predictor, score, sde, eps, dim: int) -> bool:
    """Whether ``predictor`` draws no noise: two generators give the same samples from the same start."""
    sampler = sf.Sampler(predictor=predictor, num_steps=3, eps=eps, host=host)
    x = sde.prior_sampling((2, dim), generator=torch.Generator().manual_seed(0))
    a, b = (sampler.sample(score, sde, x.shape, init=x, generator=torch.Generator().manual_seed(seed)).samples
            for seed in (1, 2))
    return torch.equal(a, b)


def _tuned_runner(host, predictor, score, sde, eps, trajectories: int = TUNING_TRAJECTORIES, fine_steps: int = 128,
                  sweeps: int = 8):
    """Tune a grid for ``predictor`` with ``num_steps`` on ``trajectories`` warm-up draws (seed 5; the measured
    samples use other seeds; ``fine_steps`` and ``sweeps`` as :func:`scoreflow.tune_schedule`'s), then sample
    on it."""
    import tempfile

    folder = tempfile.mkdtemp(prefix="scoreflow-bench-tuned-")

    def run(num_steps, shape, generator):
        result = sf.tune_schedule(score, sde, (trajectories, *shape[1:]), num_steps, predictor=predictor,
                                  search=sf.GridSearch(eps=eps, fine_steps=fine_steps, sweeps=sweeps),
                                  generator=torch.Generator().manual_seed(5))
        result.save(folder)
        sampler = sf.Sampler(predictor=predictor, num_steps=num_steps, eps=eps, schedule="tuned",
                             schedule_options={"path": folder, "predictor": predictor}, host=host)
        return sampler.sample(score, sde, shape, generator=generator)

    return run


def _ode_runner(host, method, score, sde, eps, *, fixed: bool = True):
    """Sample with ODE solver ``method``: ``num_steps`` steps, or (``fixed=False``) its default settings."""
    def run(num_steps, shape, generator):
        solver = host.create("ode_solver", method, **({"num_steps": num_steps} if fixed else {}))
        return sf.ode_sample(score, sde, shape, sampler=sf.ProbabilityFlowSampler(solver=solver, eps=eps),
                             generator=generator)

    return run


def nfe_per_step(variant: Variant, dim: int) -> tuple[float, float]:
    """``(slope, intercept)`` of NFE against num_steps, from two tiny probe runs."""
    a = variant.run(4, (2, dim), torch.Generator().manual_seed(0)).nfe
    b = variant.run(8, (2, dim), torch.Generator().manual_seed(0)).nfe
    slope = (b - a) / 4
    return slope, a - 4 * slope


def run_suite(oracle: Oracle, budgets: tuple[int, ...], n: int, host: sf.PluginHost,
              only: set[str] | None = None, tuning: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Rows of quality figures per (sampler, NFE budget), plus adaptive ODE and adaptive SDE points."""
    dim = oracle.mixture.dim
    rows = []
    for variant in variants(host, oracle, tuning):
        if only and variant.name not in only:
            continue
        if variant.family == "ode-adaptive":  # its NFE follows its tolerances: one row at its defaults
            rows.append(_measure(oracle, f"{variant.name}(default tol)", variant.family,
                                 lambda g, v=variant: v.run(0, (n, dim), g), None))
            continue
        try:
            slope, intercept = variant.nfe_line or nfe_per_step(variant, dim)
        except (ValueError, RuntimeError) as exc:  # e.g. a plugin that fails its two tiny probe runs: a row, not a crash
            rows.append({"oracle": oracle.name, "sampler": variant.name, "family": variant.family, "budget": None,
                         "nfe": None, "error": f"probe: {type(exc).__name__}: {exc}"[:200]})
            continue
        for budget in budgets:
            if variant.family == "tuned" and budget > TUNED_MAX_BUDGET:
                continue
            steps = int((budget - intercept) // slope) if slope > 0 else 0
            if steps < 1:
                continue
            rows.append(_measure(oracle, variant.name, variant.family, lambda g, s=steps: variant.run(s, (n, dim), g),
                                 budget))
    score = oracle.mixture.score_model(oracle.sde)
    for tol in ADAPTIVE_ODE_TOLS:
        rows.append(_measure(oracle, f"ode:dopri5(tol={tol:g})", "ode-adaptive",
                             lambda g, tol=tol: sf.ode_sample(score, oracle.sde, (n, dim), generator=g, sampler=(
                                 sf.ProbabilityFlowSampler(rtol=tol, atol=tol, eps=oracle.eps, host=host))), None))
    if "gotta_go_fast" in host.available("trajectory_solver") and (not only or "gotta_go_fast" in only):
        rows.append(_measure(oracle, "gotta_go_fast(default tol)", "plugin-adaptive",
                             lambda g: sf.Sampler(predictor="gotta_go_fast", eps=oracle.eps, host=host).sample(
                                 score, oracle.sde, (n, dim), generator=g), None))
    return rows


def _measure(oracle: Oracle, name: str, family: str, fn, budget: int | None) -> dict[str, Any]:
    g = torch.Generator().manual_seed(1)
    start = time.perf_counter()
    try:
        res = fn(g)
    except (ValueError, RuntimeError) as exc:  # e.g. a diverging sampler at tiny NFE
        return {"oracle": oracle.name, "sampler": name, "family": family, "budget": budget, "nfe": None,
                "error": f"{type(exc).__name__}: {exc}"[:200]}
    seconds = time.perf_counter() - start
    rep = mixture_report(oracle.mixture, res.samples, oracle.reference_logp)
    return {"oracle": oracle.name, "sampler": name, "family": family, "budget": budget, "nfe": res.nfe,
            "seconds": round(seconds, 4), **attrs.asdict(rep)}


def plot(rows: list[dict[str, Any]], path) -> None:
    """|mean log-density gap| against NFE, one line per sampler, one panel per oracle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    oracles = sorted({r["oracle"] for r in rows})
    cols = min(3, len(oracles))
    nrows = -(-len(oracles) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(7 * cols, 5 * nrows), squeeze=False)
    for ax in axes.flat[len(oracles):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, oracles):
        by_sampler: dict[str, list] = {}
        for r in rows:
            if r["oracle"] == name and r.get("nfe") and r.get("logp_gap") is not None:
                by_sampler.setdefault(r["sampler"], []).append((r["nfe"], abs(r["logp_gap"]) + 1e-4))
        for sampler, pts in sorted(by_sampler.items()):
            pts.sort()
            ax.plot(*zip(*pts), marker="o", ms=3, lw=1, label=sampler)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("NFE")
        ax.set_ylabel("|mean exact log-density gap| (nats)")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
