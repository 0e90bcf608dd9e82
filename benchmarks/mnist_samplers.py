"""Few-step sampling on the shipped MNIST model: every sampler at NFE 5, 10, 20 and 50.

Each sampler draws the same number of digits from the same seeds; quality is the MNIST classifier metric
of :func:`scoreflow.evaluation.image_quality` (Frechet distance of the classifier's features to the test
set, fraction classified with confidence) next to a 1000-step Euler-Maruyama reference and to real
training images. Registered step-wise ODE predictors (plugins included) are picked up automatically; with
``--tune`` the multistep solvers also run on grids tuned by :func:`scoreflow.tune_schedule`.

    python -m benchmarks.mnist_samplers --data-dir MNIST_DIR --n 256 --tune
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import scoreflow as sf
from scoreflow.sampling.tuning import steps_for_nfe

BUDGETS = (5, 10, 20, 50)
TUNED = ("ipndm", "dpmpp_2m", "deis")
#: grids and noise shares the stochastic step-wise predictors (those with an ``eta``) also run on, beside their
#: preferred grid: the Karras grid k-diffusion uses, and the SDE's own uniform-in-t grid (the tutorial's sampling
#: grid), each with the reverse SDE's noise (eta 1) and three times it (eta 3, which replaces more of the state
#: with fresh noise each step)
STOCHASTIC_SCHEDULES = ("karras", "uniform_t")
STOCHASTIC_ETAS = (1.0, 3.0)
#: seed of every sampler's first draw (k-diffusion's too); ``--confirm-seeds`` adds more
FIRST_SEED = 1000


def _draw(model, sde, sampler: sf.Sampler, n: int, batch: int, seed: int) -> tuple[torch.Tensor, int, float]:
    start = time.perf_counter()
    parts, nfe = [], 0
    for i, offset in enumerate(range(0, n, batch)):
        res = sampler.sample(model, sde, (min(batch, n - offset), 1, 28, 28),
                             generator=torch.Generator().manual_seed(seed + i))
        parts.append(res.samples)
        nfe = max(nfe, res.nfe)
    return torch.cat(parts), nfe, time.perf_counter() - start


def candidates(host: sf.PluginHost, sde, budget: int) -> list[tuple[str, sf.Sampler, dict[str, Any]]]:
    """``(label, sampler, row fields)`` for every registered step-wise predictor that asks for a noise-level
    schedule (the few-step solvers, plugins included) at ``budget`` evaluations: each on its preferred grid, the
    stochastic ones also on :data:`STOCHASTIC_SCHEDULES` with :data:`STOCHASTIC_ETAS`."""
    out = []
    for name in host.available("predictor"):
        proto = host.create("predictor", name)
        if not (isinstance(proto, sf.Predictor) and getattr(proto, "preferred_schedule", None)):
            continue
        try:
            steps = steps_for_nfe(name, budget, sde)
        except ValueError:
            continue  # e.g. a 3-evaluation-per-step method at NFE 5
        out.append((name, sf.Sampler(predictor=name, num_steps=steps),
                    {"schedule": proto.preferred_schedule}))
        if hasattr(proto, "eta"):
            for schedule in STOCHASTIC_SCHEDULES:
                for eta in STOCHASTIC_ETAS:
                    out.append((f"{name}(eta={eta:g})@{schedule}",
                                sf.Sampler(predictor=name, num_steps=steps, schedule=schedule,
                                           predictor_options={"eta": eta}),
                                {"schedule": schedule, "eta": eta}))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from scoreflow.data.sources import DEFAULT_DATA_DIR
    from scoreflow.evaluation import image_quality, quality_references

    host = sf.get_host()
    model, sde, _ = sf.load_pretrained(args.pretrained, ema=not args.raw_weights)
    train = sf.create("dataset", "mnist", split="train", data_dir=args.data_dir)
    test = sf.create("dataset", "mnist", split="test", data_dir=args.data_dir)
    cache = DEFAULT_DATA_DIR / "classifiers"
    load = [os.getloadavg()[0]]
    samplers: dict[tuple[str, int | None], sf.Sampler] = {}

    def measure(label: str, sampler: sf.Sampler, budget: int | None, seed: int = FIRST_SEED, **extra: Any
                ) -> dict[str, Any]:
        samplers[label, budget] = sampler
        x, nfe, seconds = _draw(model, sde, sampler, args.n, args.batch, seed)
        load.append(os.getloadavg()[0])
        row = {"sampler": label, "budget": budget, "nfe": nfe, "seconds": round(seconds, 2), **extra,
               **image_quality(x, train, test, cache)}
        print(f"{label:<40} budget {budget!s:>4} NFE {nfe:>4} FD {row['frechet_distance']:7.2f} "
              f"confident {row['confident_fraction']:.3f} {seconds:6.1f} s", flush=True)
        return row

    rows = [measure("euler_maruyama (reference)", sf.Sampler(predictor="euler", num_steps=args.reference_steps),
                    None)]
    tuned_dir = Path(tempfile.mkdtemp(prefix="scoreflow-tuned-"))
    for budget in args.budgets:
        rows.append(measure("euler_maruyama", sf.Sampler(predictor="euler", num_steps=budget), budget))
        rows.append(measure("euler_maruyama+langevin", sf.Sampler(predictor="euler", corrector="langevin",
                                                                   num_steps=budget // 2), budget))
        for label, sampler, extra in candidates(host, sde, budget):
            rows.append(measure(label, sampler, budget, **extra))
            if args.tune and label in TUNED and budget <= 10:
                start = time.perf_counter()
                steps = sampler.num_steps
                result = sf.tune_schedule(model, sde, (args.tune_trajectories, 1, 28, 28), steps, predictor=label,
                                          search=sf.GridSearch(sweeps=args.tune_sweeps),
                                          generator=torch.Generator().manual_seed(7))
                result.save(tuned_dir)
                tune_seconds = round(time.perf_counter() - start, 1)
                tuned = sf.Sampler(predictor=label, num_steps=steps, schedule="tuned",
                                   schedule_options={"path": str(tuned_dir), "predictor": label})
                rows.append(measure(f"{label} (tuned grid)", tuned, budget, schedule="tuned",
                                    tune_seconds=tune_seconds))
    peers, why = kdiffusion_rows(args)
    rows += peers
    confirmed = confirm(args, rows, samplers, measure) if args.confirm_seeds else []
    return {"pretrained": args.pretrained, "weights": "raw" if args.raw_weights else "ema", "n": args.n,
            "reference_steps": args.reference_steps, "budgets": list(args.budgets), "rows": rows,
            "confirm_seeds": list(args.confirm_seeds), "confirmed": confirmed,
            "references": quality_references(args.n, train, test, cache),
            "load_average": {"min": min(load), "max": max(load)}, "threads": torch.get_num_threads(),
            "peers": why or "k-diffusion: every sampler on every schedule it offers for a VE model (same seeds "
                            "for the prior draw; EMA weights); diffusers is not installed here"}


def best_rows(rows: list[dict[str, Any]], budget: int) -> dict[str, dict[str, Any] | None]:
    """The lowest Frechet distance of scoreflow's rows and of the peers' rows at ``budget``."""
    here = [r for r in rows if r["budget"] == budget]
    return {"scoreflow": min((r for r in here if not r.get("peer")), key=lambda r: r["frechet_distance"], default=None),
            "peer": min((r for r in here if r.get("peer")), key=lambda r: r["frechet_distance"], default=None)}


def confirm(args: argparse.Namespace, rows: list[dict[str, Any]], samplers: dict[tuple[str, int | None], sf.Sampler],
            measure) -> list[dict[str, Any]]:
    """Draw the reference and each budget's best scoreflow and best peer sampler again from every seed of
    ``--confirm-seeds``: one draw of ``n`` digits picks the best, the mean over all draws compares them."""
    out = []
    picks = [(rows[0], None)]
    for budget in args.budgets:
        picks += [(row, budget) for row in best_rows(rows, budget).values() if row is not None]
    for row, budget in picks:
        values = [row["frechet_distance"]]
        for seed in args.confirm_seeds:
            if row.get("peer"):
                again = kdiffusion_rows(args, seed=seed, only=(row["sampler"], budget))[0]
                values.append(again[0]["frechet_distance"] if again else float("nan"))
            else:
                sampler = samplers[row["sampler"], budget]
                values.append(measure(row["sampler"], sampler, budget, seed)["frechet_distance"])
        out.append({"sampler": row["sampler"], "budget": budget, "peer": row.get("peer"),
                    "seeds": [FIRST_SEED, *args.confirm_seeds], "frechet_distances": values,
                    "mean": sum(values) / len(values)})
    return out


def peer_choice(label: str) -> tuple[str, str]:
    """k-diffusion's sampler and schedule names from a peer row's label (``k-diffusion NAME[@SCHEDULE]``)."""
    name, _, schedule = label.removeprefix("k-diffusion ").partition("@")
    return name, schedule or "karras"


def kdiffusion_rows(args: argparse.Namespace, seed: int = FIRST_SEED, only: tuple[str, int] | None = None
                    ) -> tuple[list[dict[str, Any]], str | None]:
    """k-diffusion's samplers on the same model and budgets, run in its own environment
    (``--kdiffusion-python``, see :mod:`benchmarks.kdiffusion_peer`); ``only``: one row's label and budget."""
    import subprocess
    import sys

    from benchmarks import kdiffusion_peer

    if not args.kdiffusion_python:
        return [], "not run: pass --kdiffusion-python (k-diffusion needs its own environment, see benchmarks/peers.py)"
    samplers, schedules, budgets = list(kdiffusion_peer.SAMPLERS), list(kdiffusion_peer.SCHEDULES), args.budgets
    if only is not None:
        name, schedule = peer_choice(only[0])
        samplers, schedules, budgets = [name], [schedule], [only[1]]
    cmd = [args.kdiffusion_python, "-m", "benchmarks.kdiffusion_peer", "--pretrained", args.pretrained,
           "--n", str(args.n), "--budgets", *map(str, budgets), "--samplers", *samplers,
           "--schedules", *schedules, "--seed", str(seed)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=sys.stderr,
                          text=True)
    if proc.returncode != 0:
        return [], f"{args.kdiffusion_python} -m benchmarks.kdiffusion_peer failed with code {proc.returncode}"
    return [r for r in json.loads(proc.stdout)["rows"] if "error" not in r], None


def markdown(result: dict[str, Any]) -> str:
    """A table per budget, best Frechet distance first."""
    real = result["references"]["real_images"]["frechet_distance"]
    ref = next(r for r in result["rows"] if r["budget"] is None)
    lines = [f"Shipped `{result['pretrained']}` ({result['weights']} weights), {result['n']} digits per sampler; "
             f"Frechet distance of the MNIST classifier's features to the test set (lower is better): real training "
             f"images {real:.2f}, Euler-Maruyama with {result['reference_steps']} steps {ref['frechet_distance']:.2f}.",
             ""]
    confirmed = result.get("confirmed") or []
    if confirmed:
        ref_mean = confirmed[0]["mean"]
        lines += [(f"Each budget's best of both sides and the reference drawn again from seeds "
                   f"{', '.join(map(str, confirmed[0]['seeds']))} ({result['n']} digits each): mean Frechet distance "
                   f"(the draws), and the ratio to the reference's mean {ref_mean:.2f}."), "",
                  "| NFE | sampler | mean Frechet distance | x reference | draws |", "| ---: | --- | ---: | ---: | --- |"]
        for c in confirmed[1:]:
            lines.append(f"| {c['budget']} | {c['sampler']} | {c['mean']:.2f} | {c['mean'] / ref_mean:.3f} | "
                         + ", ".join(f"{v:.1f}" for v in c["frechet_distances"]) + " |")
        lines.append("")
    for budget in result["budgets"]:
        here = [r for r in result["rows"] if r["budget"] == budget]
        best = best_rows(result["rows"], budget)
        ours, peer = best["scoreflow"], best["peer"]
        summary = f"**NFE {budget}**"
        if ours:
            summary += (f": best scoreflow `{ours['sampler']}` {ours['frechet_distance']:.2f} "
                        f"({ours['frechet_distance'] / ref['frechet_distance']:.2f}x the reference)")
        if peer:
            summary += f", best k-diffusion `{peer['sampler'].removeprefix('k-diffusion ')}` {peer['frechet_distance']:.2f}"
        lines += [summary, "", "| sampler | NFE | Frechet distance | confident | seconds |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for r in sorted(here, key=lambda r: r["frechet_distance"]):
            lines.append(f"| {r['sampler']} | {r['nfe']} | {r['frechet_distance']:.2f} | "
                         f"{r['confident_fraction']:.3f} | {r['seconds']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--pretrained", default="mnist-sigma25")
    parser.add_argument("--raw-weights", action="store_true")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--reference-steps", type=int, default=1000)
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    parser.add_argument("--tune", action="store_true", help=f"also tune grids for {', '.join(TUNED)} at NFE 5, 10")
    parser.add_argument("--tune-trajectories", type=int, default=64)
    parser.add_argument("--tune-sweeps", type=int, default=4)
    parser.add_argument("--confirm-seeds", type=int, nargs="*", default=[],
                        help="draw the reference and each budget's best scoreflow and peer sampler again from these "
                             "seeds and compare their means")
    parser.add_argument("--kdiffusion-python", default=os.environ.get("SCOREFLOW_KDIFFUSION_PYTHON"),
                        help="python of an environment with k-diffusion (runs its samplers on the same model)")
    parser.add_argument("--out", default="benchmarks/results/mnist-samplers.json")
    args = parser.parse_args(argv)
    result = run(args)
    Path(args.out).write_text(json.dumps(result, indent=1))
    Path(args.out).with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
