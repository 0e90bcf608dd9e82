"""``python -m benchmarks``: run the suites, print tables, write JSON, a markdown report and plots.

    python -m benchmarks --quick --out bench-quick      # a small version, under 3 minutes on 2 cores
    python -m benchmarks --out bench-full               # the full run behind docs/benchmarks.md
    python -m benchmarks --render benchmarks/results/2026-11-30-quality.json   # a record's tables, as markdown
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

import scoreflow as sf

#: scoreflow's samplers shown beside the peers in the report's table
SIDE_BY_SIDE = ("dpmpp_2m", "dpm_solver_3", "edm_heun", "unipc", "euler", "euler+langevin")

SUITES = ("quality", "likelihood", "overhead", "training", "peers", "end_to_end")

# quick: tuned grids from 64 warm-up draws, a 32-step fine grid and 2 sweeps (the full run's 1024, 128 and 8 fit
# better; the quick run checks that they run)
QUICK = {"budgets": (20, 100), "sde_budgets": (100,), "solver_sweep_n": 0, "n_ring": 1000, "digits": False, "lik_n": 100, "probes": (1, 4),
         "tuning": dict(trajectories=64, fine_steps=32, sweeps=2),
         # quick: under the other SDEs, a few samplers of each kind (the full run measures every one)
         "sde_samplers": {"euler", "reverse_diffusion+langevin", "ode:rk4", "edm_heun", "dpmpp_2m", "ipndm", "unipc"},
         "overhead": dict(repeats=3, steps=50, batch=128), "training": dict(batch_sizes=[32], blocks=2,
                                                                             steps_per_block=2,
                                                                             variants=("fp32", "channels_last", "bf16")),
         "end_to_end": dict(steps=60, n_samples=200, n_bpd=32, scale=0.1)}
FULL = {"budgets": (5, 10, 20, 50, 100, 200, 500, 1000), "sde_budgets": (5, 10, 20, 50, 100), "solver_sweep_n": 100,
        "n_ring": 5000, "digits": True, "lik_n": 300, "tuning": dict(trajectories=1024, fine_steps=128, sweeps=8), "sde_samplers": None,
        "probes": (1, 4, 16), "overhead": dict(repeats=7, steps=200, batch=256),
        "training": dict(batch_sizes=[32, 128], blocks=40, steps_per_block=5),
        "end_to_end": dict(steps=1500, n_samples=359, n_bpd=128, scale=1.0)}


def run_all(out: Path, *, quick: bool, suites: tuple[str, ...] = SUITES, device: str = "cpu",
            data_dir: str | None = None, kdiffusion_python: str | None = None,
            budgets: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Run ``suites`` and write ``results.json``, ``report.md`` and ``quality.png`` into ``out``."""
    from benchmarks import end_to_end, likelihood, overhead, peers, quality, train_throughput
    from benchmarks.oracles import digits64, ring, under_registered_sdes

    cfg = dict(QUICK if quick else FULL)
    if budgets:
        cfg["budgets"] = tuple(budgets)
    out.mkdir(parents=True, exist_ok=True)
    host = sf.PluginHost(autoload=True)
    started = time.perf_counter()
    record: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks", *(["--quick"] if quick else []), f"--out {out}",
                             *([f"--suites {','.join(suites)}"] if tuple(suites) != SUITES else []),
                             *([f"--data-dir {data_dir}"] if data_dir else []),
                             *([f"--kdiffusion-python {kdiffusion_python}"] if kdiffusion_python else []),
                             *([f"--budgets {' '.join(map(str, budgets))}"] if budgets else [])]),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(), "device": device,
                    "loadavg_before": os.getloadavg()},
        "plugins": [r.name for r in host.plugins()],
    }
    ring_oracle = ring(50_000 if quick else 400_000)
    sde_oracles, skipped_sdes = under_registered_sdes(ring_oracle, host)
    if "quality" in suites:
        tuning = {"tuning": cfg["tuning"]}
        rows = quality.run_suite(ring_oracle, cfg["budgets"], cfg["n_ring"], host, **tuning)
        record["quality_sdes_skipped"] = skipped_sdes
        sde_budgets = tuple(b for b in cfg["budgets"] if b in cfg["sde_budgets"]) or cfg["sde_budgets"]
        for oracle in sde_oracles:  # the ring under every other registered SDE (plugins' included)
            rows += quality.run_suite(oracle, sde_budgets, cfg["n_ring"], host, only=cfg["sde_samplers"], **tuning)
        if cfg["digits"]:
            budgets = tuple(b for b in cfg["budgets"] if b in (20, 100, 500))  # its score costs 1797 components
            rows += quality.run_suite(digits64(), budgets, 500, host, **tuning)
        record["quality"] = rows
        quality.plot(rows, out / "quality.png")
    if "likelihood" in suites:
        record["likelihood"] = likelihood.run_suite(ring_oracle, cfg["lik_n"], cfg["probes"], 1e-5, host)
        if cfg["solver_sweep_n"]:  # every registered ODE solver under every registered SDE (minutes: full runs only)
            record["likelihood"]["solvers"] = likelihood.solver_sweep([ring_oracle, *sde_oracles],
                                                                      cfg["solver_sweep_n"], 1e-5, host)
            record["likelihood"]["solvers_fixed_steps"] = likelihood.SWEEP_FIXED_STEPS
    if "overhead" in suites:
        record["overhead"] = overhead.run(**cfg["overhead"])
    if "training" in suites:
        record["training"] = train_throughput.run(data_dir=data_dir, **cfg["training"])
    if "peers" in suites:
        record["peers"] = peers.run_suite(ring_oracle, cfg["n_ring"], cfg["budgets"], kdiffusion_python)
    if "end_to_end" in suites:
        record["end_to_end"] = end_to_end.run_suite(host=host, **cfg["end_to_end"])
    record["machine"]["loadavg_after"] = os.getloadavg()
    record["seconds"] = round(time.perf_counter() - started, 1)
    (out / "results.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    (out / "report.md").write_text(markdown(record))
    return record


def _f(v: Any, fmt: str = ".4f") -> str:
    return "—" if v is None else format(v, fmt) if isinstance(v, float) else str(v)


def _mixture_cells(row: dict[str, Any]) -> str:
    """The NFE and mixture-report columns of a sampler row, or its failure."""
    if "error" in row:
        return f"— | failed: {row['error']} | |"
    return f"{row['nfe']} | {row['weight_tv']:.4f} | {row['spread_ratio']:.3f} | {row['logp_gap']:.4f}"


def markdown(r: dict[str, Any]) -> str:
    """The report: one table per suite."""
    m = r["machine"]
    lines = ["# scoreflow benchmarks", "", f"Command: `{r['command']}`; {r['seconds']} s.", "",
             f"Machine: {m['platform']}, {m['cpus']} CPUs, torch {m['torch']} ({m['threads']} threads), "
             f"load average {m['loadavg_before'][0]:.2f} before, {m['loadavg_after'][0]:.2f} after. "
             f"Plugins: {', '.join(r['plugins'])}.", ""]
    if "quality" in r:
        lines += ["## 1. Sample quality against NFE (exact oracles)", "",
                  "weight TV: total variation of mode weights; spread: within-mode RMS distance over its exact "
                  "value; gap: mean exact log-density of true samples minus that of the samples (0 is exact).",
                  "", "![quality](quality.png)", "",
                  "| oracle | sampler | budget | NFE | weight TV | spread | gap | seconds |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for q in r["quality"]:
            lines.append(f"| {q['oracle']} | {q['sampler']} | {_f(q['budget'])} | {_mixture_cells(q)} | "
                         f"{q.get('seconds', '')} |")
        lines.append("")
        if r.get("quality_sdes_skipped"):
            lines += ["Registered SDEs left out (they could not be built with default options): " + "; ".join(
                f"`{k}`: {v}" for k, v in r["quality_sdes_skipped"].items()), ""]
    if "likelihood" in r:
        lk = r["likelihood"]
        lines += ["## 2. Likelihood against the exact log-density", "",
                  "| estimator | probes | mean error | error std | mean abs error | NFE | seconds |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for e in lk["estimators"]:
            lines.append(f"| {e['estimator']} | {e['n_probes']} | {e['mean_error']:.4f} | {e['error_std']:.4f} | "
                         f"{e['mean_abs_error']:.4f} | {e['nfe']} | {e['seconds']} |")
        if lk.get("methods"):
            lines += ["", "Fixed-cost settings (exact trace, so only the integration error is left):", "",
                      "| setting | NFE | mean error | mean abs error | seconds |", "| --- | ---: | ---: | ---: | ---: |"]
            lines += [f"| {m['method']} | {m['nfe']} | {m['mean_error']:.4f} | {m['mean_abs_error']:.4f} | "
                      f"{m['seconds']} |" for m in lk["methods"]]
        if lk.get("solvers"):
            lines += ["", f"Every registered ODE solver under every registered SDE (exact trace; adaptive solvers at "
                      f"tolerance 1e-5, fixed-step ones at {lk['solvers_fixed_steps']} steps in the log noise level; the "
                      "adaptive rows show each oracle's floor, which includes the mismatch of its prior and p_T):",
                      "", "| oracle | solver | NFE | mean error | mean abs error | seconds |",
                      "| --- | --- | ---: | ---: | ---: | ---: |"]
            for m in lk["solvers"]:
                if "error" in m:
                    lines.append(f"| {m['oracle']} | {m['solver']} | failed: {m['error']} | | | |")
                else:
                    lines.append(f"| {m['oracle']} | {m['solver']} | {m['nfe']} | {m['mean_error']:.4f} | "
                                 f"{m['mean_abs_error']:.4f} | {m['seconds']} |")
        c = lk["vs_tutorial"]
        lines += ["", f"Against the tutorial's approach (scipy RK45, numpy round trip, score and divergence as "
                  f"separate calls) at tolerance {c['tolerance']:g} on {c['n']} points: scoreflow "
                  f"{c['scoreflow']['seconds']} s ({c['scoreflow']['nfe']} evaluations, mean error "
                  f"{c['scoreflow']['mean_error']:.3f}), tutorial {c['tutorial_scipy_rk45']['seconds']} s "
                  f"({c['tutorial_scipy_rk45']['network_calls']} network calls, mean error "
                  f"{c['tutorial_scipy_rk45']['mean_error']:.3f}); time ratio tutorial/scoreflow "
                  f"{_f(c['time_ratio_tutorial_over_scoreflow'], '.2f')}.", ""]
    if "overhead" in r:
        lines += ["## 3. Sampler overhead", "", "| score | scoreflow / hand-written |", "| --- | ---: |"]
        for k, v in r["overhead"]["results"].items():
            lines.append(f"| {k} | {v['ratio_scoreflow_over_handwritten']:.3f} |")
        lines.append("")
    if "training" in r:
        lines += ["## 4. Training throughput (tutorial U-Net, 28x28)", "",
                  "| batch | scoreflow images/s | hand-written images/s | ratio | paired blocks: min-max |",
                  "| ---: | ---: | ---: | ---: | ---: |"]
        for b, v in r["training"]["results"].items():
            ips, pairs = v["images_per_s"], v.get("paired_block_ratios")
            spread = f"{pairs['min']:.3f}-{pairs['max']:.3f}" if pairs else ""
            lines.append(f"| {b} | {ips['scoreflow']:.0f} | {ips['hand-written']:.0f} | "
                         f"{v['ratio_scoreflow_over_handwritten']:.3f} | {spread} |")
        lines += ["", r["training"]["note"], ""]
        effects = r["training"].get("variant_effects")
        if effects:
            lines += [f"Speed-ups of the hand-written step at batch {effects['batch']} (medians, interleaved; "
                      "warm-up includes compilation):", "",
                      "| variant | images/s | ratio to fp32 | warm-up s |", "| --- | ---: | ---: | ---: |"]
            for name, v in effects["variants"].items():
                if "error" in v:
                    lines.append(f"| {name} | failed: {v['error']} | | |")
                else:
                    lines.append(f"| {name} | {v['images_per_s']:.0f} | {_f(v['ratio_to_fp32'], '.3f')} | "
                                 f"{v['warmup_seconds']} |")
            lines.append("")
    if "peers" in r:
        lines += ["## 5. Peers on the ring oracle", "", "| peer | budget | NFE | weight TV | spread | gap |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        ours = [{**q, "peer": f"scoreflow {q['sampler']}"} for q in r.get("quality", [])
                if q["oracle"] == "ring-2d" and q["sampler"] in SIDE_BY_SIDE and q.get("budget")]
        peer_rows = sorted([*r["peers"]["rows"], *ours], key=lambda p: (p["budget"], p["peer"]))
        for p in peer_rows:
            lines.append(f"| {p['peer']} | {p['budget']} | {_mixture_cells(p)} |")
        for name, why in r["peers"]["unavailable"].items():
            lines.append(f"\n- {name}: {why}")
        lines.append("")
    if "end_to_end" in r:
        e = r["end_to_end"]
        lines += ["## 6. End to end on digits", "",
                  f"Trained {e['train_steps']} steps in {e['train_seconds']} s; test bits/dim {e['test_bpd']:.3f} "
                  f"+- {e['test_bpd_std_error']:.3f} ({e['bpd_images']} test images dequantized over their "
                  f"{e.get('quantization_levels', 256)} levels). Frechet distance "
                  f"of training images to the test split (reference): {e['reference_frechet_distance']:.2f}.", "",
                  "| sampler | NFE | seconds | Frechet distance |", "| --- | ---: | ---: | ---: |"]
        for row in e["samplers"]:
            if "error" in row:
                lines.append(f"| {row['sampler']} | — | — | {row['error']} |")
            else:
                lines.append(f"| {row['sampler']} | {row['nfe']} | {row['seconds']} | {row['frechet_distance']:.2f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (under 3 minutes on 2 cores)")
    parser.add_argument("--out", default="bench-results", help="output folder (default: %(default)s)")
    parser.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated subset of {', '.join(SUITES)}")
    parser.add_argument("--device", default="cpu", help="only 'cpu' is measured so far")
    parser.add_argument("--data-dir", default=None, help="MNIST IDX folder for the training suite")
    parser.add_argument("--budgets", type=int, nargs="+", default=None,
                        help="NFE budgets of the quality and peer suites (default: 5 10 20 50 100 200 500 1000)")
    parser.add_argument("--kdiffusion-python", default=None,
                        help="python of an environment with k-diffusion (default: $SCOREFLOW_KDIFFUSION_PYTHON)")
    parser.add_argument("--render", metavar="RECORD", default=None,
                        help="print the markdown tables of a results.json record (every row) and exit")
    args = parser.parse_args(argv)
    if args.render:
        print(markdown(json.loads(Path(args.render).read_text())))
        return
    suites = tuple(s.strip() for s in args.suites.split(",") if s.strip())
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; available: {', '.join(SUITES)}")
    if args.device != "cpu":
        parser.error(f"--device {args.device!r}: only 'cpu' is supported by these suites so far")
    run_all(Path(args.out), quick=args.quick, suites=suites, device=args.device, data_dir=args.data_dir,
            kdiffusion_python=args.kdiffusion_python, budgets=args.budgets)
    print((Path(args.out) / "report.md").read_text())


if __name__ == "__main__":
    main()
