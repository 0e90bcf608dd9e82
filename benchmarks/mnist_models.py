"""The shipped MNIST models side by side: denoiser calibration, probability-flow ODE samples, few-step samplers
and test bits/dim.

For every shipped MNIST model: the per-pixel calibration of its noise estimate (``scoreflow calibrate``; a heat
map per model). For each model of ``--models``: ``--n`` digits per seed with the probability-flow ODE (dopri5 at
the default tolerances; the share of pixels in [-0.25, 1.25] before any clipping, and the same trajectories ended
with one Tweedie step), the 1000-step Euler-Maruyama reference, every registered deterministic step-wise
predictor at each ``--budgets`` NFE, all judged by the MNIST classifier's Frechet distance (mean and standard
error over ``--seeds``); and test bits/dim on ``--n-bpd`` dequantized test images with its standard error.

    python -m benchmarks.mnist_models --data-dir MNIST_DIR

writes ``benchmarks/results/mnist-models.json``, the page ``docs/reproduction/mnist-models.md`` and the heat maps
into ``docs/reproduction/images/``; ``--render-only`` rewrites the page from the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

import scoreflow as sf
from scoreflow.evaluation.calibration import denoiser_calibration
from scoreflow.models.base import make_score_fn
from scoreflow.models.parametrization import denoised_from_score
from scoreflow.tensor import as_time

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("mnist", "mnist-density", "mnist-tutorial", "mnist-sigma25", "mnist-likelihood")
BUDGETS = (5, 10, 20, 50)
#: multistep solvers that also run on grids tuned to the model (``scoreflow tune-schedule``) at budgets up to
#: :data:`TUNED_MAX_BUDGET`; the grids are fitted on warm-up draws of their own seed, never the measured ones
TUNED = ("dpmpp_2m", "ipndm", "deis")
TUNED_MAX_BUDGET = 10
TUNING_SEED = 7
#: where the probability-flow ODE stops (the tutorial's 1e-2 would leave the VE(0.001, 50) model at noise 5e-4;
#: the SDE's default eps, 1e-3, is the same for every shipped model)
ODE_EPS = 1e-3


def mean_and_error(values: list[float]) -> dict[str, float]:
    """Mean and standard error (0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return {"mean": mean, "std_error": math.sqrt(var / n), "values": values}


def calibration(names: list[str], test, n: int, images: Path | None) -> dict[str, Any]:
    out = {}
    for name in names:
        model, sde, _ = sf.load_pretrained(name)
        report = denoiser_calibration(model, sde, test.x[:n], generator=torch.Generator().manual_seed(0))
        out[name] = report.summary()
        if images is not None:
            report.save_heatmap(images / f"calibration-{name}.png", title=f"{name}: slope of noise estimate on true noise")
        print(f"calibration {name}: {out[name]['flagged_count']} flagged, worst {out[name]['worst']}", flush=True)
    return out


def _draw(sample, n: int, batch: int, seed: int) -> tuple[torch.Tensor, int, float]:
    start = time.perf_counter()
    parts, nfe = [], 0
    for i, offset in enumerate(range(0, n, batch)):
        x, used = sample(min(batch, n - offset), torch.Generator().manual_seed(seed * 1000 + i))
        parts.append(x)
        nfe = max(nfe, used)
    return torch.cat(parts), nfe, time.perf_counter() - start


def sampling(name: str, args: argparse.Namespace, train, test, cache: Path) -> dict[str, Any]:
    """ODE, reference and few-step rows of one model, each over every seed."""
    from benchmarks.mnist_samplers import candidates
    from scoreflow.evaluation import image_quality

    model, sde, _ = sf.load_pretrained(name)
    score = make_score_fn(model, sde)
    shape = (1, 28, 28)
    rows: dict[str, dict[str, Any]] = {}

    def record(label: str, budget: int | None, x: torch.Tensor | None, nfe: int, seconds: float,
               fd: float | None = None, **extra: Any) -> None:
        fd = image_quality(x, train, test, cache)["frechet_distance"] if fd is None else fd
        row = rows.setdefault(label, {"sampler": label, "budget": budget, "fd": [], "nfe": nfe, "seconds": []})
        row["fd"].append(fd)
        row["seconds"].append(round(seconds, 1))
        for key, value in extra.items():
            row.setdefault(key, []).append(value)
        print(f"{name:<16} {label:<34} NFE {nfe:>5} FD {fd:8.2f} {seconds:6.1f} s {extra or ''}", flush=True)

    def ode(n: int, g: torch.Generator) -> tuple[torch.Tensor, int]:
        res = sf.ode_sample(model, sde, (n, *shape), sampler=sf.ProbabilityFlowSampler(eps=ODE_EPS), generator=g)
        return res.samples, res.nfe

    tuned = tuned_samplers(model, sde, shape, args) if args.tune_trajectories else {}
    for seed in args.seeds:
        x, nfe, seconds = _draw(ode, args.n, args.batch, seed)
        inside = float(((x >= -0.25) & (x <= 1.25)).float().mean())
        record("probability-flow ODE (dopri5)", None, x, nfe, seconds, share_in_range=inside,
               min=float(x.min()), max=float(x.max()))
        with torch.no_grad():
            t = as_time(ODE_EPS, x.shape[0], x)
            denoised = torch.cat([denoised_from_score(score(c, t[: len(c)]), c, t[: len(c)], sde)
                                  for c in x.split(args.batch)])
        record("probability-flow ODE + Tweedie step", None, denoised, nfe + 1, seconds,
               share_in_range=float(((denoised >= -0.25) & (denoised <= 1.25)).float().mean()))
        reference = sf.Sampler(predictor="euler", num_steps=args.reference_steps)
        x, nfe, seconds = _draw(lambda n, g: (lambda r: (r.samples, r.nfe))(reference.sample(model, sde, (n, *shape),
                                                                                             generator=g)),
                                args.n, args.batch, seed)
        record(f"euler_maruyama {args.reference_steps} steps (reference)", None, x, nfe, seconds)
        for budget in args.budgets:
            for label, sampler, _extra in candidates(sf.get_host(), sde, budget):
                if "(eta=" in label or getattr(sf.create("predictor", label.split("(")[0]), "eta", 0):
                    continue  # the deterministic samplers only
                x, nfe, seconds = _draw(lambda n, g, s=sampler: (lambda r: (r.samples, r.nfe))(
                    s.sample(model, sde, (n, *shape), generator=g)), args.n, args.batch, seed)
                record(f"{label} @ NFE {budget}", budget, x, nfe, seconds)
            for label, (sampler, tune_seconds) in tuned.get(budget, {}).items():
                x, nfe, seconds = _draw(lambda n, g, s=sampler: (lambda r: (r.samples, r.nfe))(
                    s.sample(model, sde, (n, *shape), generator=g)), args.n, args.batch, seed)
                record(f"{label} (tuned grid) @ NFE {budget}", budget, x, nfe, seconds, tune_seconds=tune_seconds)
        peer_note = kdiffusion_rows(name, args, seed, record)
    for row in rows.values():
        row["fd"] = mean_and_error(row["fd"])
    return {"rows": list(rows.values()), "peers": peer_note}


def tuned_samplers(model, sde, shape: tuple[int, ...], args: argparse.Namespace, names: tuple[str, ...] = TUNED
                   ) -> dict[int, dict[str, tuple[sf.Sampler, float]]]:
    """``{budget: {predictor: (sampler on its tuned grid, seconds the tuning took)}}`` for the predictors
    ``names`` at the budgets up to :data:`TUNED_MAX_BUDGET`, each predictor's grids tuned in one call on
    ``--tune-trajectories`` warm-up draws (seed :data:`TUNING_SEED`)."""
    import tempfile

    from scoreflow.sampling.tuning import steps_for_nfe

    folder = tempfile.mkdtemp(prefix="scoreflow-mnist-tuned-")
    budgets = [b for b in args.budgets if b <= TUNED_MAX_BUDGET]
    out: dict[int, dict[str, tuple[sf.Sampler, float]]] = {b: {} for b in budgets}
    for name in names:
        steps = {b: steps_for_nfe(name, b, sde) for b in budgets}
        start = time.perf_counter()
        result = sf.tune_schedule(model, sde, (args.tune_trajectories, *shape), sorted(set(steps.values())),
                                  predictor=name, search=sf.GridSearch(fine_steps=args.tune_fine_steps,
                                                                       sweeps=args.tune_sweeps),
                                  generator=torch.Generator().manual_seed(TUNING_SEED))
        result.save(folder)
        seconds = round(time.perf_counter() - start, 1)
        print(f"tuned {name} for {sorted(steps.values())} steps in {seconds} s", flush=True)
        for budget, n in steps.items():
            out[budget][name] = (sf.Sampler(predictor=name, num_steps=n, schedule="tuned",
                                            schedule_options={"path": folder, "predictor": name}), seconds)
    return out


def kdiffusion_rows(name: str, args: argparse.Namespace, seed: int, record) -> str:
    """k-diffusion's deterministic samplers on the same model, budgets and seed (its Karras schedule from the
    prior's noise level down to the one at the ODE's eps, then 0); returns what was run or why not."""
    from benchmarks.kdiffusion_peer import load_kdiffusion, run_pretrained

    try:
        load_kdiffusion()
    except ImportError as exc:
        return f"k-diffusion not run ({exc}); install it with pip install --no-deps k-diffusion"
    for row in run_pretrained(name, args.n, args.budgets, args.data_dir, seed=seed * 1000, eps=ODE_EPS):
        if "error" in row:
            print(f"{row['sampler']} @ NFE {row['budget']}: {row['error']}", flush=True)
            continue
        record(f"{row['sampler']} @ NFE {row['budget']}", row["budget"], None, row["nfe"], row["seconds"],
               fd=row["frechet_distance"])
    from importlib.metadata import version

    return f"k-diffusion {version('k-diffusion')}: its deterministic samplers on its Karras schedule (rho 7)"


def bits_per_dim(name: str, test, n: int, batch: int) -> dict[str, Any]:
    from scoreflow.evaluation.runs import likelihood_many, mean_and_standard_error

    model, sde, config = sf.load_pretrained(name)
    start = time.perf_counter()
    res = likelihood_many(model, sde, test.x[:n], batch_size=batch, seed=0, dequantize=True, method=sf.ExponentialLikelihood(eps=config.eps))
    out = {**mean_and_standard_error(res["bpd"]), "method": "exponential (20 steps)", "eps": config.eps,
           "seconds": round(time.perf_counter() - start, 1)}
    print(f"bits/dim {name}: {out['mean']:.4f} +- {out['std_error']:.4f} on {n} test images", flush=True)
    return out


FFJORD_BPD, RESIDUAL_FLOWS_BPD = 0.99, 0.97


def _row(row: dict[str, Any], reference: float) -> str:
    fd = row["fd"]
    extra = ""
    if "share_in_range" in row:
        extra = f"{100 * min(row['share_in_range']):.2f} %"
        if "min" in row:
            extra += f" ([{min(row['min']):+.2f}, {max(row['max']):+.2f}])"
    return (f"| {row['sampler']} | {row['nfe']} | {fd['mean']:.2f} +- {fd['std_error']:.2f} | "
            f"{fd['mean'] / reference:.2f} | {extra} |")


def render(result: dict[str, Any]) -> str:
    """The page docs/reproduction/mnist-models.md from a result of :func:`main`."""
    seeds = result["seeds"]
    lines = [
        "# The shipped MNIST models",
        "",
        "scoreflow ships five MNIST models: `mnist`, the default (EDM preconditioning and weighting on the `resunet` "
        "network, preset `mnist`), `mnist-density`, the `mnist` model fine-tuned for bits/dim (preset "
        "`mnist-density`), and three trained with the 2020 tutorial's network (`mnist-tutorial`, the seed "
        "tutorial's run; `mnist-sigma25`, Song's Colab; `mnist-likelihood`, the Colab's network trained for "
        "likelihood). This page compares them; the record is `benchmarks/results/mnist-models.json`, measured by:",
        "",
        *[f"- {part}: `{run.get('command', '?')}` ({run.get('seconds', 0) / 60:.0f} minutes, load average "
          f"{run.get('load_before', float('nan')):.1f} at the start and {run.get('load_after', float('nan')):.1f} at "
          f"the end, torch threads: {run.get('threads', '?')})" for part, run in _runs(result).items()],
        "",
    ]
    if "calibration" in result:
        lines += [
            "## Denoiser calibration",
            "",
            "`scoreflow calibrate --checkpoint NAME` noises test images at several noise levels `s`, reads the "
            "network's noise estimate `-score * std` and regresses it on the true noise, pixel by pixel. A perfect "
            "denoiser's slope is `1 - E[Var(x_0 | x_t)] / s^2`: near 1 wherever the noisy image pins the pixel down, "
            "and never below `1 - Var(x_0) / s^2`. A pixel is flagged when its slope falls more than 0.1 below that "
            "floor. A pixel with slope `b` keeps `1 - b` of its noise at every step; under the probability-flow ODE "
            "that leftover shrinks only like `s^b`, so it ends far outside the data's range, while stochastic "
            "samplers redraw the noise each step and hide most of it.",
            "",
            "| model | flagged (pixel, level) pairs | worst pixel | its slope | at noise level | "
            "min slope at s = 1 |",
            "| --- | ---: | --- | ---: | ---: | ---: |",
        ]
        for name, c in result["calibration"].items():
            at_one = next((lv["min_slope"] for lv in c["levels"] if lv["noise_level"] == 1.0), float("nan"))
            lines.append(f"| `{name}` | {c['flagged_count']} | {tuple(c['worst']['pixel'])} | "
                         f"{c['worst']['slope']:.3f} | {c['worst']['noise_level']:g} | {at_one:.3f} |")
        lines += ["", "The 2020 tutorial's U-Net (unpadded 3x3 convolutions and transposed convolutions) gives each "
                  "corner output a single tap and asks the network to copy its input noise pixel by pixel "
                  "(`score = F / std`): its corners stay at slopes 0.2-0.4 at every noise level. The `mnist` model's "
                  "EDM preconditioning starts every output pixel from its input (`c_skip`), and its padded "
                  "convolutions see a full neighbourhood everywhere.", ""]
        for name in result["calibration"]:
            lines += [f"![calibration of {name}](images/calibration-{name}.png)", ""]
    for name, block in result.get("sampling", {}).items():
        rows = block["rows"]
        reference = next(r for r in rows if "(reference)" in r["sampler"])["fd"]["mean"]
        lines += [f"## Sampling `{name}`", "",
                  f"{result['n']} digits per sampler and seed, seeds {', '.join(map(str, seeds))}: Frechet distance of "
                  "the MNIST classifier's features to the test set (mean +- standard error over seeds), its ratio to "
                  f"the {result['reference_steps']}-step Euler-Maruyama reference, and for the ODE the share of "
                  "pixels in [-0.25, 1.25] before any clipping (and the pixel range). Real training images give "
                  f"{result['references']['real_images']:.2f}, uniform noise {result['references']['uniform_noise']:.0f}. "
                  f"The ODE stops at t = {result['ode_eps']:g}.", "",
                  "| sampler | NFE | Frechet distance | x reference | pixels in range |",
                  "| --- | ---: | ---: | ---: | --- |"]
        fixed = [r for r in rows if r["budget"] is None]
        lines += [_row(r, reference) for r in fixed]
        verdicts = []
        for budget in result["budgets"]:
            here = sorted((r for r in rows if r["budget"] == budget), key=lambda r: r["fd"]["mean"])
            lines += [_row(r, reference) for r in here]
            ours = next((r for r in here if not r["sampler"].startswith("k-diffusion")), None)
            peer = next((r for r in here if r["sampler"].startswith("k-diffusion")), None)
            if ours:
                verdict = (f"NFE {budget}: best scoreflow `{ours['sampler'].split(' @')[0]}` "
                           f"{ours['fd']['mean']:.2f} ({ours['fd']['mean'] / reference:.2f}x the reference)")
                if peer:
                    verdict += (f", best k-diffusion `{peer['sampler'].split(' @')[0].removeprefix('k-diffusion ')}` "
                                f"{peer['fd']['mean']:.2f} ({peer['fd']['mean'] / reference:.2f}x)")
                verdicts.append(verdict)
        lines += ["", f"Peers: {block.get('peers', 'none')}."]
        tutorial = result.get("tutorial_reference") or {}
        if tutorial.get("mean"):
            lines += ["", f"The same {result['reference_steps']}-step reference on `mnist-tutorial` ({tutorial.get('n')} digits, "
                      f"seeds {', '.join(map(str, tutorial['seeds']))}; `{tutorial['record']}`): "
                      f"{tutorial['mean']:.2f}."]
        lines.append("")
        lines += [f"- {v}" for v in verdicts]
        lines.append("")
    if "bpd" in result:
        lines += ["## Test bits/dim", "",
                  "Dequantized test images `(255 x + u) / 256`, one Gaussian Hutchinson probe per image, the "
                  "exponential integrator (20 steps in the log noise level, 61 network passes per batch) from each "
                  "model's training eps; the standard error is over images.", "",
                  "| model | images | bits/dim | standard error |", "| --- | ---: | ---: | ---: |"]
        for name, b in result["bpd"].items():
            lines.append(f"| `{name}` | {b['n']} | {b['mean']:.4f} | {b['std_error']:.4f} |")
        lines += ["", f"For comparison, the best MNIST density models reach {FFJORD_BPD} (FFJORD) and "
                  f"{RESIDUAL_FLOWS_BPD} (Residual Flows) bits/dim. The `mnist` recipe is aimed at samples first: "
                  "EDM's weighting with log-normal noise levels trains the small noise levels that decide a "
                  "dequantized likelihood only lightly (about 5 % of draws below s = 0.02). `mnist-density` continues "
                  "the same 0.7 M-parameter network for 6,000 steps with the likelihood weighting `g(t)^2` and "
                  "importance-sampled time (Song et al. 2021), which trains every noise level in proportion to its "
                  "share of the likelihood bound; the same images, dequantization draws and probes measure both. "
                  "Closing the rest of the gap to FFJORD would take more of what moved it here and what this "
                  "machine could not afford: a larger network trained far longer for likelihood, the VP or sub-VP "
                  "SDE (Song et al. report their best likelihoods there), and a learned or variational "
                  "dequantization instead of uniform noise (i-DODE, VDM).", ""]
    return "\n".join(lines)


PARTS = {"calibration": ("calibration",), "sampling": ("sampling", "references", "n", "seeds", "budgets",
                                                       "reference_steps", "tune_trajectories", "tutorial_reference"),
         "bpd": ("bpd",)}
RUN_KEYS = ("command", "seconds", "load_before", "load_after", "threads")


def _runs(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Which command measured each part of a record (older records name one command for all, or a ``bpd_run``)."""
    runs = dict(record.get("runs") or {})
    for part, keys in PARTS.items():
        if part not in runs and keys[0] in record:
            runs[part] = record["bpd_run"] if part == "bpd" and "bpd_run" in record else \
                {k: record[k] for k in RUN_KEYS if k in record}
    return runs


def merge_parts(into: dict[str, Any], source: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    """``into`` with ``parts`` (and the runs that measured them) taken from ``source``."""
    merged = dict(into)
    runs, source_runs = _runs(into), _runs(source)
    for part in parts:
        if PARTS[part][0] not in source:
            continue
        for key in PARTS[part]:
            if key in source:
                merged[key] = source[key]
        runs[part] = source_runs[part]
    merged["runs"] = runs
    merged.pop("bpd_run", None)
    return merged


def main(argv: list[str] | None = None) -> None:
    from scoreflow.data.sources import DEFAULT_DATA_DIR

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--models", nargs="+", default=["mnist"],
                        help="models to sample (default: %(default)s; the tutorial model's figures at the same n are "
                             "in results/mnist-samplers-tutorial.json)")
    parser.add_argument("--bpd-models", nargs="+", default=["mnist", "mnist-density", "mnist-tutorial"],
                        help="models whose test bits/dim to measure (default: %(default)s)")
    parser.add_argument("--n", type=int, default=128, help="digits per sampler and seed (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    parser.add_argument("--reference-steps", type=int, default=1000)
    parser.add_argument("--tune-fine-steps", type=int, default=128, help="tune_schedule's fine_steps")
    parser.add_argument("--tune-sweeps", type=int, default=8, help="tune_schedule's sweeps")
    parser.add_argument("--tune-trajectories", type=int, default=128,
                        help="warm-up draws the tuned grids are fitted on; 0 skips the tuned grids (default: "
                             "%(default)s)")
    parser.add_argument("--n-bpd", type=int, default=1000, help="test images for bits/dim (default: %(default)s)")
    parser.add_argument("--n-calibration", type=int, default=256)
    parser.add_argument("--skip", nargs="*", default=[], choices=("calibration", "sampling", "bpd"))
    parser.add_argument("--images", default=str(ROOT / "docs" / "reproduction" / "images"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mnist-models.json"))
    parser.add_argument("--page", default=str(ROOT / "docs" / "reproduction" / "mnist-models.md"))
    parser.add_argument("--render-only", action="store_true", help="rewrite --page from the JSON in --out")
    parser.add_argument("--merge", metavar="RECORD", default=None,
                        help="take the parts RECORD measured (calibration, sampling, bits/dim) into --out, then "
                             "rewrite --page (runs of different parts made side by side)")
    args = parser.parse_args(argv)
    if args.merge:
        other = json.loads(Path(args.merge).read_text())
        merged = merge_parts(json.loads(Path(args.out).read_text()), other,
                             [part for part, keys in PARTS.items() if keys[0] in other])
        Path(args.out).write_text(json.dumps(merged, indent=1) + "\n")
        Path(args.page).write_text(render(merged))
        print(f"merged {args.merge} into {args.out} and wrote {args.page}")
        return
    if args.render_only:
        Path(args.page).write_text(render(json.loads(Path(args.out).read_text())))
        return
    train = sf.create("dataset", "mnist", split="train", data_dir=args.data_dir)
    test = sf.create("dataset", "mnist", split="test", data_dir=args.data_dir)
    cache = DEFAULT_DATA_DIR / "classifiers"
    started = time.perf_counter()
    import sys

    command = " ".join(["python -m benchmarks.mnist_models", *(sys.argv[1:] if argv is None else argv)])
    result: dict[str, Any] = {"command": command, "load_before": os.getloadavg()[0], "threads": torch.get_num_threads(),
                              "n": args.n, "seeds": args.seeds, "budgets": args.budgets, "ode_eps": ODE_EPS,
                              "reference_steps": args.reference_steps,
                              "tune_trajectories": args.tune_trajectories}
    tutorial = ROOT / "benchmarks" / "results" / "mnist-samplers-tutorial.json"
    if tutorial.is_file():
        confirmed = json.loads(tutorial.read_text()).get("confirmed") or [{}]
        result["tutorial_reference"] = {"record": "benchmarks/results/mnist-samplers-tutorial.json",
                                        "n": json.loads(tutorial.read_text()).get("n"),
                                        "mean": confirmed[0].get("mean"), "seeds": confirmed[0].get("seeds")}
    if "calibration" not in args.skip:
        result["calibration"] = calibration(list(SHIPPED), test, args.n_calibration, Path(args.images))
    if "sampling" not in args.skip:
        from scoreflow.evaluation import quality_references

        result["references"] = {k: v["frechet_distance"] for k, v in
                                quality_references(args.n, train, test, cache).items()}
        result["sampling"] = {name: sampling(name, args, train, test, cache) for name in args.models}
    if "bpd" not in args.skip:
        result["bpd"] = {name: bits_per_dim(name, test, args.n_bpd, 250) for name in args.bpd_models}
    result["load_after"] = os.getloadavg()[0]
    result["seconds"] = round(time.perf_counter() - started, 1)
    run_info = {k: result[k] for k in RUN_KEYS}
    result["runs"] = {part: run_info for part in PARTS if part not in args.skip}
    if args.skip and Path(args.out).is_file():
        result = merge_parts(result, json.loads(Path(args.out).read_text()), args.skip)  # the skipped parts kept
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    Path(args.page).write_text(render(result))
    print(f"wrote {args.out} and {args.page} in {result['seconds']} s")


if __name__ == "__main__":
    main()
