"""diffusers' schedulers against scoreflow's samplers on a diffusers-format MNIST model, and its bits/dim.

The model is the ``UNet2DModel`` + ``DDPMScheduler`` pipeline ``benchmarks/diffusers_mnist_train.py`` trains (32x32
padded MNIST in [-1, 1], epsilon prediction). On it, at each NFE budget and seed, from the same initial noise:

- diffusers' own deterministic schedulers driving the network directly (``set_timesteps``, ``scale_model_input``,
  ``step``): DDIM, DPM-Solver++(2M) with and without Karras sigmas, UniPC, Euler and Heun (Heun with and without
  Karras sigmas), each with every ``timestep_spacing`` (leading, linspace, trailing); a scheduler's best spacing is
  chosen on the measured seeds themselves, which can only favour diffusers;
- scoreflow's registered step-wise deterministic predictors on their preferred grids, and ``dpmpp_2m`` and
  ``deis`` on grids ``tune_schedule`` fits to the model at budgets up to 10 (warm-up draws of their own seed,
  never the measured ones), all through
  ``diffusers:DIR``;
- the reference: diffusers' 1000-step DDPM ancestral sampler (the model's own).

Quality is the MNIST classifier Frechet distance to the test digits (``scoreflow.evaluation.image_quality``) of the
samples cropped back to 28x28 and mapped to [0, 1]. Test bits/dim through the bridge: dequantized 8-bit 32x32
images (the padding included, 1024 dimensions), mapped into the model's [-1, 1] with the Jacobian accounted.

Run (after training the model)::

    OMP_NUM_THREADS=1 python -m benchmarks.diffusers_mnist --model ddpm-mnist --data-dir MNIST_DIR

(``ddpm-mnist`` is the plugin's shipped copy of the model; a pipeline folder works the same way)
or one process per seed (``--seeds 0 --out A.json``, ``--seeds 1 --bpd 0 --out B.json``) joined with
``--merge A.json B.json``.

It writes ``benchmarks/results/diffusers-mnist.json`` and the page ``docs/reproduction/diffusers-mnist.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import scoreflow as sf
from benchmarks.mnist_models import _draw, mean_and_error, tuned_samplers

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = (5, 10, 20)
SPACINGS = ("leading", "linspace", "trailing")
#: ``(label, scheduler class, options, evaluations per step beyond the first)``; Heun takes 2 per step but 1 at
#: the last, so ``n`` steps cost ``2 n - 1``.
SCHEDULERS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("DDIM", "DDIMScheduler", {"eta": 0.0}),
    ("DPM-Solver++(2M)", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    ("DPM-Solver++(2M) Karras", "DPMSolverMultistepScheduler",
     {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    ("UniPC", "UniPCMultistepScheduler", {}),
    ("Euler", "EulerDiscreteScheduler", {}),
    ("Heun", "HeunDiscreteScheduler", {}),
    ("Heun Karras", "HeunDiscreteScheduler", {"use_karras_sigmas": True}),
)
TUNED = ("dpmpp_2m", "deis")
#: Truncated grids explored with ``--explore-truncation`` (on a seed that is never measured): these predictors on
#: these schedules, started at each of these noise levels (diffusers' "leading" spacing starts at 33, 61 and 90
#: at NFE 5, 10 and 20) and stopped at each of these before the final denoising step (leading stops at 0.58,
#: 0.30 and 0.18). ``unipc`` counts its final denoising step as the last step, as diffusers' UniPC does.
TRUNCATION_PREDICTORS: dict[str, tuple[str, dict[str, Any]]] = {
    "dpmpp_2m": ("dpmpp_2m", {}), "unipc": ("unipc", {"denoise_is_last_step": True}),
    "unipc order 2": ("unipc", {"order": 2, "denoise_is_last_step": True}),
    "edm_heun": ("edm_heun", {})}
TRUNCATION_SCHEDULES = ("uniform_t", "karras")
TRUNCATION_STARTS = (90.0, 60.0, 33.0)
TRUNCATION_ENDS = (0.58, 0.3, 0.15, 0.08)


def to_mnist(x: torch.Tensor) -> torch.Tensor:
    """32x32 samples in [-1, 1] as 28x28 images in [0, 1] (the padding cropped)."""
    return ((x.float().clamp(-1, 1) + 1) / 2)[..., 2:30, 2:30]


def steps_for_budget(cls: str, budget: int) -> int:
    return (budget + 1) // 2 if cls.startswith("Heun") else budget


def diffusers_sample(unet, scheduler, n: int, g: torch.Generator, steps: int, *, stochastic: bool = False
                     ) -> tuple[torch.Tensor, int]:
    """diffusers' own sampling loop (a stochastic scheduler draws from ``g`` too); returns the samples and the
    network evaluations."""
    scheduler.set_timesteps(steps)
    step_options = {"generator": g} if stochastic else {}
    x = torch.randn((n, 1, 32, 32), generator=g) * scheduler.init_noise_sigma
    nfe = 0
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps = unet(scheduler.scale_model_input(x, t), t).sample
            nfe += 1
            x = scheduler.step(eps, t, x, **step_options).prev_sample
    return x, nfe


def draw(sample: Callable[[int, torch.Generator], tuple[torch.Tensor, int]], n: int, batch: int, seed: int
         ) -> tuple[torch.Tensor, int, float]:
    """``n`` samples in blocks (:func:`benchmarks.mnist_models._draw`) as 28x28 images in [0, 1]."""
    x, nfe, seconds = _draw(sample, n, batch, seed)
    return to_mnist(x), nfe, seconds


def truncated_sampler(sde, predictor: str, schedule: str, start: float, end: float, budget: int) -> sf.Sampler:
    """``predictor`` (a key of :data:`TRUNCATION_PREDICTORS`) on ``schedule`` from noise level ``start`` down to
    ``end`` (then its final denoising step), within ``budget`` evaluations."""
    from scoreflow.sampling.tuning import steps_for_nfe

    name, options = TRUNCATION_PREDICTORS[predictor]
    times = sde.time_at_noise_level(torch.tensor([start, end], dtype=torch.float64)).tolist()
    steps = steps_for_nfe(name, budget, sde, eps=times[1])
    return sf.Sampler(predictor=name, predictor_options=options, num_steps=steps, schedule=schedule,
                      start_time=times[0], eps=times[1])


def truncation_label(predictor: str, schedule: str, start: float, end: float) -> str:
    return f"{predictor} {schedule}, sigma {start:g} to {end:g}"


def chosen_truncations(paths: list[str] | None, budgets) -> dict[int, dict[str, Any]]:
    """Per budget, the truncated grid with the lowest Frechet distance in ``--explore-truncation`` records."""
    rows = [row for path in paths or () for row in json.loads(Path(path).read_text())["rows"]]
    out = {}
    for budget in budgets:
        mine = [r for r in rows if r["budget"] == budget and "truncation" in r]
        if mine:
            out[budget] = min(mine, key=lambda r: r["fd"]["mean"])["truncation"]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import diffusers

    from benchmarks.mnist_samplers import candidates
    from scoreflow.data.sources import DEFAULT_DATA_DIR
    from scoreflow.evaluation import image_quality

    from scoreflow_diffusers import load_diffusers
    from scoreflow_diffusers.loading import model_folders, shipped_model_folder, shipped_models

    folder = Path(args.model)
    if not folder.is_dir() and args.model in shipped_models():  # the model shipped with the plugin, by name
        folder = shipped_model_folder(args.model)
    model, sde, info = load_diffusers(folder)
    unet_dir, scheduler_dir = model_folders(folder)
    unet = diffusers.UNet2DModel.from_pretrained(str(unet_dir), use_safetensors=True, local_files_only=True).eval()
    config = diffusers.DDPMScheduler.load_config(str(scheduler_dir))
    train = sf.create("dataset", "mnist", split="train", data_dir=args.data_dir)
    test = sf.create("dataset", "mnist", split="test", data_dir=args.data_dir)
    cache = DEFAULT_DATA_DIR / "classifiers"
    rows: dict[str, dict[str, Any]] = {}
    loads = [os.getloadavg()[0]]
    kept = {row["sampler"] for row in json.loads(Path(args.extend).read_text())["rows"]} if args.extend else set()

    def wanted(label: str) -> bool:  # not measured already in the --extend record, and not excluded
        return label not in kept and (not args.explore_truncation or "sigma" in label)

    def record(label: str, library: str, budget: int | None, x: torch.Tensor, nfe: int, seconds: float,
               **extra: Any) -> None:
        fd = image_quality(x, train, test, cache)["frechet_distance"]
        row = rows.setdefault(label, {"sampler": label, "library": library, "budget": budget, "nfe": nfe,
                                      "fd": [], "seconds": [], **extra})
        row["fd"].append(fd)
        row["seconds"].append(round(seconds, 1))
        loads.append(os.getloadavg()[0])
        print(f"{label:<44} NFE {nfe:>4} FD {fd:8.2f} {seconds:6.1f} s", flush=True)

    def scoreflow_draw(sampler: sf.Sampler):
        def sample(n: int, g: torch.Generator) -> tuple[torch.Tensor, int]:
            res = sampler.sample(model, sde, (n, 1, 32, 32), generator=g)
            return res.samples, res.nfe
        return sample

    tuned_labels = [f"{p} (tuned grid) @ NFE {b}" for p in TUNED for b in args.budgets if b <= 10]
    tuned = tuned_samplers(model, sde, (1, 32, 32), args, TUNED) \
        if args.tune_trajectories and any(wanted(label) for label in tuned_labels) else {}
    truncations = chosen_truncations(args.truncation_from, args.budgets)
    reference = f"DDPM ancestral {args.reference_steps} steps (reference)"
    for seed in args.seeds:
        if wanted(reference):
            ddpm = getattr(diffusers, "DDPMScheduler").from_config(config)
            x, nfe, seconds = draw(lambda n, g: diffusers_sample(unet, ddpm, n, g, args.reference_steps,
                                                                        stochastic=True),
                                   args.n, args.batch, seed)
            record(reference, "diffusers", None, x, nfe, seconds)
        for budget in args.budgets:
            for label, cls, options in SCHEDULERS:
                spacings = ("linspace",) if options.get("use_karras_sigmas") else SPACINGS
                for spacing in spacings:
                    name = label if options.get("use_karras_sigmas") else f"{label} ({spacing})"
                    if not wanted(f"{name} @ NFE {budget}"):
                        continue
                    scheduler = getattr(diffusers, cls).from_config(config, timestep_spacing=spacing, **options)
                    steps = steps_for_budget(cls, budget)
                    x, nfe, seconds = draw(lambda n, g, s=scheduler, k=steps: diffusers_sample(unet, s, n, g, k),
                                           args.n, args.batch, seed)
                    record(f"{name} @ NFE {budget}", "diffusers", budget, x, nfe, seconds, method=label,
                           spacing=spacing)
            for label, sampler, _ in candidates(sf.get_host(), sde, budget):
                if "(eta=" in label or getattr(sf.create("predictor", label.split("(")[0]), "eta", 0):
                    continue  # the deterministic samplers only
                if wanted(f"{label} @ NFE {budget}"):
                    x, nfe, seconds = draw(scoreflow_draw(sampler), args.n, args.batch, seed)
                    record(f"{label} @ NFE {budget}", "scoreflow", budget, x, nfe, seconds, method=label)
            grids = ([{"predictor": p, "schedule": s, "start": a, "end": e} for p in TRUNCATION_PREDICTORS
                      for s in TRUNCATION_SCHEDULES for a in TRUNCATION_STARTS for e in TRUNCATION_ENDS]
                     if args.explore_truncation else [truncations[budget]] if budget in truncations else [])
            for grid in grids:
                label = f"{truncation_label(**grid)} @ NFE {budget}"
                if wanted(label):
                    sampler = truncated_sampler(sde, budget=budget, **grid)
                    x, nfe, seconds = draw(scoreflow_draw(sampler), args.n, args.batch, seed)
                    record(label, "scoreflow", budget, x, nfe, seconds, method=truncation_label(**grid),
                           truncation=grid)
            for label, (sampler, tune_seconds) in tuned.get(budget, {}).items():
                if not wanted(f"{label} (tuned grid) @ NFE {budget}"):
                    continue
                x, nfe, seconds = draw(scoreflow_draw(sampler), args.n, args.batch, seed)
                record(f"{label} (tuned grid) @ NFE {budget}", "scoreflow", budget, x, nfe, seconds,
                       method=f"{label} (tuned grid)", tune_seconds=tune_seconds)
    for row in rows.values():
        row["fd"] = mean_and_error(row["fd"])
    result: dict[str, Any] = {
        "model": info.description, "model_folder": str(args.model), "n": args.n, "seeds": list(args.seeds),
        "budgets": list(args.budgets), "diffusers": diffusers.__version__, "threads": torch.get_num_threads(),
        "rows": list(rows.values()), "best": best_rows(list(rows.values()), args.budgets)}
    if args.truncation_from:
        result["truncation_from"] = {"records": [Path(p).name for p in args.truncation_from],
                                     "seeds": sorted({s for p in args.truncation_from
                                                      for s in json.loads(Path(p).read_text())["seeds"]}),
                                     "chosen": {str(b): g for b, g in truncations.items()}}
    if args.bpd:
        result["bpd"] = bits_per_dim(model, sde, test, args.bpd, args.batch)
    loads.append(os.getloadavg()[0])
    result["load_average"] = {"min": min(loads), "max": max(loads)}
    return result


def best_rows(rows: list[dict[str, Any]], budgets) -> dict[str, dict[str, Any]]:
    """Per budget, each library's row with the lowest mean Frechet distance."""
    out: dict[str, dict[str, Any]] = {}
    for budget in budgets:
        for library in ("diffusers", "scoreflow"):
            mine = [r for r in rows if r["budget"] == budget and r["library"] == library]
            if mine:
                best = min(mine, key=lambda r: r["fd"]["mean"])
                out.setdefault(str(budget), {})[library] = {"sampler": best["sampler"], "fd": best["fd"]}
    return out


def bits_per_dim(model, sde, test, n: int, batch: int) -> dict[str, Any]:
    from scoreflow.evaluation.runs import likelihood_many, mean_and_standard_error

    images = torch.nn.functional.pad(test.x[:n], (2, 2, 2, 2))  # [0, 1], 8-bit levels; the bridge maps to [-1, 1]
    start = time.perf_counter()
    res = likelihood_many(model, sde, images, batch_size=batch, seed=0, dequantize=True, method=sf.ExponentialLikelihood(eps=sde.default_eps))
    out = {**mean_and_standard_error(res["bpd"]), "n": n, "method": "exponential (20 steps)",
           "eps": sde.default_eps, "dimensions": 1024, "seconds": round(time.perf_counter() - start, 1)}
    print(f"bits/dim {out['mean']:.4f} +- {out['std_error']:.4f} on {n} test images", flush=True)
    return out


def merge(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One record from runs of the same model and budgets over different seeds (each row's per-seed values
    joined, means and the best rows recomputed; bits/dim from the run that measured them)."""
    first = records[0]
    rows: dict[str, dict[str, Any]] = {}
    for record in records:
        if record["model"] != first["model"] or record["budgets"] != first["budgets"]:
            raise ValueError("records to merge must share the model and the budgets")
        for row in record["rows"]:
            into = rows.setdefault(row["sampler"], {**row, "fd": [], "seconds": []})
            into["fd"] += row["fd"]["values"]
            into["seconds"] += row["seconds"]
    for row in rows.values():
        row["fd"] = mean_and_error(row["fd"])
    merged = {**first, "seeds": [s for r in records for s in r["seeds"]], "rows": list(rows.values()),
              "command": [r["command"] for r in records],
              "load_average": {"min": min(r["load_average"]["min"] for r in records),
                               "max": max(r["load_average"]["max"] for r in records)}}
    merged["best"] = best_rows(merged["rows"], first["budgets"])
    for record in records:
        if "bpd" in record:
            merged["bpd"] = record["bpd"]
    return merged


def extend(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old``'s rows with ``new``'s added (the same seeds), best rows recomputed, both commands kept."""
    if sorted(old["seeds"]) != sorted(new["seeds"]) or old["model"] != new["model"]:
        raise ValueError(f"cannot extend a record of seeds {old['seeds']} with one of seeds {new['seeds']}")
    labels = {row["sampler"] for row in old["rows"]}
    out = {**old, "rows": old["rows"] + [r for r in new["rows"] if r["sampler"] not in labels],
           "command": [*_as_list(old["command"]), *_as_list(new["command"])],
           "load_average": {"min": min(old["load_average"]["min"], new["load_average"]["min"]),
                            "max": max(old["load_average"]["max"], new["load_average"]["max"])}}
    for key in ("truncation_from",):
        if key in new:
            out[key] = new[key]
    out["best"] = best_rows(out["rows"], old["budgets"])
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def render(result: dict[str, Any]) -> str:
    lines = [
        "# diffusers' schedulers and scoreflow's samplers on a diffusers MNIST model",
        "",
        "Generated by `python -m benchmarks.diffusers_mnist` from `benchmarks/results/diffusers-mnist.json`; the model",
        "is trained by `python -m benchmarks.diffusers_mnist_train` (a `UNet2DModel` with a `DDPMScheduler`, epsilon",
        "prediction, 32x32 padded MNIST in [-1, 1]; see that script for the recipe).",
        "",
        f"Model: {result['model']}; diffusers {result['diffusers']}; {result['n']} samples per sampler and seed, "
        f"seeds {', '.join(map(str, result['seeds']))}; torch threads {result['threads']}, load average "
        f"{result['load_average']['min']:.1f}-{result['load_average']['max']:.1f}.",
        "Quality: MNIST classifier Frechet distance (FD) to the test digits of the samples cropped to 28x28, mean +- "
        "standard error over seeds (lower is better).",
        "",
        "## Best of each library per budget",
        "",
        "| NFE | diffusers' best | FD | scoreflow's best | FD |",
        "|---:|---|---:|---|---:|",
    ]
    def cells(row: dict[str, Any] | None) -> str:
        return f"{row['sampler']} | {row['fd']['mean']:.2f} +- {row['fd']['std_error']:.2f}" if row else "(not run) | -"

    for budget, best in result["best"].items():
        lines.append(f"| {budget} | {cells(best.get('diffusers'))} | {cells(best.get('scoreflow'))} |")
    reference = next((r for r in result["rows"] if r["budget"] is None), None)
    if reference is not None:
        lines += ["", f"Reference: {reference['sampler'].replace(' (reference)', '')}, FD "
                  f"{reference['fd']['mean']:.2f} +- {reference['fd']['std_error']:.2f}.", ""]
    else:
        lines.append("")
    if "bpd" in result:
        b = result["bpd"]
        lines += [f"Test bits/dim through the bridge: **{b['mean']:.3f} +- {b['std_error']:.3f}** on {b['n']} "
                  f"dequantized 32x32 test images ({b['dimensions']} dimensions, the padding included; "
                  f"{b['method']}, eps {b['eps']:g}). diffusers has no likelihood API.", ""]
    if "truncation_from" in result:
        t = result["truncation_from"]
        lines += [f"Truncated grids (rows `... sigma A to B`): scoreflow's `Sampler(start_time=..., eps=...)` starts "
                  "from the forward marginal at noise level A and stops at B before its final denoising step, as "
                  "diffusers' leading and trailing spacings do implicitly. The grid per budget is the best of "
                  f"`--explore-truncation` on seed(s) {', '.join(map(str, t['seeds']))}, never measured here "
                  "(" + ", ".join(f"`benchmarks/results/{r}`" for r in t["records"]) + ").", ""]
    lines += ["## Every row", "", "| sampler | library | NFE | FD | seconds per seed |", "|---|---|---:|---:|---:|"]
    for row in sorted(result["rows"], key=lambda r: (r["budget"] or 0, r["fd"]["mean"])):
        lines.append(f"| {row['sampler']} | {row['library']} | {row['nfe']} | {row['fd']['mean']:.2f} +- "
                     f"{row['fd']['std_error']:.2f} | {sum(row['seconds']) / len(row['seconds']):.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="the diffusers pipeline folder, or ddpm-mnist (the plugin's shipped copy of "
                                        "diffusers_mnist_train's model); needed unless --merge or --render")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n", type=int, default=128, help="samples per sampler and seed")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    parser.add_argument("--reference-steps", type=int, default=1000)
    parser.add_argument("--tune-trajectories", type=int, default=64, help="warm-up draws for tuned grids (0: none)")
    parser.add_argument("--bpd", type=int, default=500, help="test images for bits/dim (0: skip)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/diffusers-mnist.json"))
    parser.add_argument("--page", default=None,
                        help="page to render (default: docs/reproduction/diffusers-mnist.md; none with "
                             "--explore-truncation)")
    parser.add_argument("--render", action="store_true", help="only rewrite the page from --out")
    parser.add_argument("--merge", nargs="+", metavar="RECORD", help="join records of other seeds into --out")
    parser.add_argument("--extend", metavar="RECORD",
                        help="measure only the rows this record lacks (same seeds); with --merge, add its rows")
    parser.add_argument("--explore-truncation", action="store_true",
                        help="measure only the truncated grids TRUNCATION_* (run it on a seed never measured)")
    parser.add_argument("--truncation-from", metavar="RECORD", nargs="+",
                        help="--explore-truncation records: add their best truncated grid per budget")
    args = parser.parse_args(argv)
    if args.merge:
        merged = merge([json.loads(Path(p).read_text()) for p in args.merge])
        if args.extend:
            merged = extend(json.loads(Path(args.extend).read_text()), merged)
        Path(args.out).write_text(json.dumps(merged, indent=1) + "\n")
    elif not args.render:
        if not args.model:
            parser.error("--model is required to measure (give --merge or --render otherwise)")
        result = run(args)
        result["command"] = "python -m benchmarks.diffusers_mnist " + " ".join(argv if argv is not None else
                                                                              __import__("sys").argv[1:])
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    if args.page is None and not args.explore_truncation:
        args.page = str(ROOT / "docs/reproduction/diffusers-mnist.md")
    if args.page:
        Path(args.page).write_text(render(json.loads(Path(args.out).read_text())))
    print(f"wrote {args.out}" + (f" and {args.page}" if args.page else ""))


if __name__ == "__main__":
    main()
