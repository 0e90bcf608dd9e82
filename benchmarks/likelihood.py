"""Suite 2: log_likelihood against the exact log-density, per estimator and probe count, and
side by side with the tutorial's approach (scipy ``solve_ivp`` RK45, numpy round trip per step).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

import scoreflow as sf
from benchmarks.oracles import Oracle


def tutorial_log_likelihood(score, sde: sf.VESDE, x: torch.Tensor, *, tol: float, eps: float = 1e-5,
                            generator: torch.Generator | None = None,
                            probe: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """The notebook's ode_likelihood: one Gaussian probe, score and divergence evaluated separately
    (two network calls per step), the state flattened to numpy for scipy's RK45."""
    from scipy import integrate

    shape = x.shape
    probe = torch.randn(shape, generator=generator, dtype=torch.float64) if probe is None else probe.double()
    calls = [0]

    def ode_func(t, state):
        calls[0] += 1
        sample = torch.tensor(state[:-shape[0]], dtype=torch.float64).reshape(shape)
        tt = torch.full((shape[0],), t, dtype=torch.float64)
        _, g = sde.sde(sample, tt)
        sample_grad = -0.5 * g.reshape(-1, *[1] * (sample.dim() - 1)) ** 2 * score(sample, tt)  # any data shape
        with torch.enable_grad():
            s = sample.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad((score(s, tt) * probe).sum(), s)
        div = (grad * probe).reshape(shape[0], -1).sum(1)
        logp_grad = -0.5 * g**2 * div
        return np.concatenate([sample_grad.detach().reshape(-1).numpy(), logp_grad.detach().numpy()])

    init = np.concatenate([x.double().reshape(-1).numpy(), np.zeros(shape[0])])
    res = integrate.solve_ivp(ode_func, (eps, sde.T), init, rtol=tol, atol=tol, method="RK45")
    zp = torch.tensor(res.y[:, -1])
    z, delta = zp[:-shape[0]].reshape(shape), zp[-shape[0]:]
    # the notebook integrates d(delta)/dt = -0.5 g^2 div(score) from eps to 1 and adds it to the prior
    return sde.prior_logp(z) + delta, calls[0]


def run_suite(oracle: Oracle, n: int, probes: tuple[int, ...], tol: float, host: sf.PluginHost) -> dict[str, Any]:
    """Estimator table and the scoreflow-vs-tutorial comparison at one tolerance."""
    gm, sde = oracle.mixture, oracle.sde
    score = gm.score_model(sde)
    x, _ = gm.sample(n, generator=torch.Generator().manual_seed(3))
    exact = gm.log_prob(x)
    rows = []
    for estimator in ("exact", "gaussian", "rademacher"):
        for p in ((1,) if estimator == "exact" else probes):
            start = time.perf_counter()
            res = sf.log_likelihood(score, sde, x, estimator=sf.DivergenceEstimator(estimator, n_probes=p),
                                    method=sf.ODELikelihood(rtol=tol, atol=tol, host=host),
                                    generator=torch.Generator().manual_seed(0))
            seconds = time.perf_counter() - start
            err = res.logp.double() - exact
            rows.append({"estimator": estimator, "n_probes": p, "mean_error": float(err.mean()),
                         "error_std": float(err.std()), "mean_abs_error": float(err.abs().mean()),
                         "seconds": round(seconds, 4), "nfe": res.nfe})
    methods = []  # fixed-cost settings with the exact trace: only the integration error is left
    for label, method in (("rk4 in log sigma, 30 steps",
                            sf.ODELikelihood(solver="rk4", num_steps=30, time_variable="log_sigma", host=host)),
                           *((f"exponential, {n} steps", sf.ExponentialLikelihood(num_steps=n)) for n in (10, 20, 40))):
        start = time.perf_counter()
        res = sf.log_likelihood(score, sde, x, estimator="exact", method=method)
        err = res.logp.double() - exact
        methods.append({"method": label, "nfe": res.nfe, "seconds": round(time.perf_counter() - start, 4),
                        "mean_error": float(err.mean()), "mean_abs_error": float(err.abs().mean())})
    start = time.perf_counter()
    ours = sf.log_likelihood(score, sde, x, estimator="gaussian", method=sf.ODELikelihood(rtol=tol, atol=tol, host=host),
                             generator=torch.Generator().manual_seed(0))
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    theirs, calls = tutorial_log_likelihood(score, sde, x, tol=tol, generator=torch.Generator().manual_seed(0))
    theirs_s = time.perf_counter() - start
    comparison = {
        "tolerance": tol, "n": n,
        "scoreflow": {"seconds": round(ours_s, 4), "nfe": ours.nfe,
                      "mean_error": float((ours.logp.double() - exact).mean()),
                      "mean_abs_error": float((ours.logp.double() - exact).abs().mean())},
        "tutorial_scipy_rk45": {"seconds": round(theirs_s, 4), "function_calls": calls, "network_calls": 2 * calls,
                                "mean_error": float((theirs - exact).mean()),
                                "mean_abs_error": float((theirs - exact).abs().mean())},
    }
    comparison["time_ratio_tutorial_over_scoreflow"] = theirs_s / ours_s if ours_s > 0 else None
    return {"oracle": oracle.name, "estimators": rows, "methods": methods, "vs_tutorial": comparison}


#: Steps of the fixed-step solvers in the solver sweep (integrated in the log noise level, where they do well).
SWEEP_FIXED_STEPS = 30


def solver_sweep(oracles: list[Oracle], n: int, tol: float, host: sf.PluginHost) -> list[dict[str, Any]]:
    """The exact-trace log-likelihood error under every oracle's SDE with every registered ODE solver (plugins'
    included) and the exponential method: adaptive solvers at tolerance ``tol``, fixed-step ones at
    :data:`SWEEP_FIXED_STEPS` steps in the log noise level (each reads the options it has)."""
    from scoreflow.errors import UnknownOptionError

    rows = []
    for oracle in oracles:
        gm, sde = oracle.mixture, oracle.sde
        score = gm.score_model(sde)
        x, _ = gm.sample(n, generator=torch.Generator().manual_seed(3))
        exact = gm.log_prob(x)
        settings: list[tuple[str, dict[str, Any] | None]] = [
            (name, {"solver": name, "rtol": tol, "atol": tol, "num_steps": SWEEP_FIXED_STEPS,
                    "time_variable": "log_sigma", "host": host}) for name in host.available("ode_solver")]
        settings.append(("exponential (20 steps)", None))
        for label, options in settings:
            start = time.perf_counter()
            try:
                if options is None:
                    method = sf.ExponentialLikelihood(num_steps=20)
                else:
                    try:
                        method = sf.ODELikelihood(**options)
                    except UnknownOptionError:  # a plugin solver without num_steps: its defaults and tolerances
                        method = sf.ODELikelihood(**{k: v for k, v in options.items() if k != "num_steps"})
                res = sf.log_likelihood(score, sde, x, estimator="exact", method=method)
            except (ValueError, RuntimeError) as exc:
                rows.append({"oracle": oracle.name, "solver": label, "error": f"{type(exc).__name__}: {exc}"[:200]})
                continue
            err = res.logp.double() - exact
            rows.append({"oracle": oracle.name, "solver": label, "nfe": res.nfe,
                         "seconds": round(time.perf_counter() - start, 4), "mean_error": float(err.mean()),
                         "mean_abs_error": float(err.abs().mean())})
    return rows
