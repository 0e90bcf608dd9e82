"""The classic tutorial's MNIST experiment, reproduced from the shipped ``mnist-tutorial`` run.

One command measures everything and writes docs/reproduction/mnist.md with its pictures:

    python -m benchmarks.mnist_report --data-dir ../shared/data/mnist

- the per-epoch training loss beside the tutorial's fifteen printed values (and, with
  ``--notebook-epochs 1``, the notebook's own loop transcribed and run on this machine);
- test-set bits/dim (the tutorial's dequantization, tolerance and eps) with its standard error,
  for the raw weights (the tutorial's) and the EMA weights;
- sample grids and the MNIST classifier metric (Frechet distance on its features, class
  histogram, confident fraction) for Euler-Maruyama, predictor-corrector, the probability-flow
  ODE and the fast samplers, with real-image and uniform-noise references.

Measurements are kept in benchmarks/results/mnist-reproduction.json; ``--render-only`` rewrites
the page from it. ``--quick`` runs every part at toy sizes (the test suite does).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

import scoreflow as sf
from scoreflow.data.base import TensorData
from scoreflow.evaluation.runs import mean_and_standard_error

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "mnist-reproduction.json"
#: Epoch 0 of the notebook's own loop on this machine, float32 and bfloat16 autocast, from
#: ``python -m benchmarks.tutorial_notebook --data-dir DIR --modes fp32 bf16 --out THIS_FILE``.
NOTEBOOK_RESULTS = ROOT / "benchmarks" / "results" / "notebook-epoch0.json"

#: The tutorial's printed average loss for epochs 0-14 (its training log).
TUTORIAL_EPOCH_LOSSES = (479.2823524576823, 191.41421276448568, 143.56634580485027, 125.4686314066569,
                         115.43633513997396, 107.28631278686524, 102.80460919799805, 98.79836651204427,
                         95.33749889933269, 93.04867509765624, 90.20109106648763, 88.1472403523763,
                         86.72806940511067, 84.76441270141602, 82.9646538655599)
#: The tutorial's running-average test bits/dim (first and last of its printed values).
TUTORIAL_BPD_RANGE = (2.3032925728249083, 2.4092268406606396)


def samplers(quick: bool) -> dict[str, dict[str, Any]]:
    """The tutorial's three samplers at its settings, plus scoreflow-fast's few-step ones if installed."""
    steps = 8 if quick else 500
    out: dict[str, dict[str, Any]] = {
        f"Euler-Maruyama ({steps} steps)": {"predictor": "euler", "num_steps": steps},
        f"predictor-corrector ({steps} steps, snr 0.15)": {"predictor": "euler", "corrector": "langevin",
                                                             "num_steps": steps, "snr": 0.15},
        "probability-flow ODE (dopri5, tol 1e-5)": {"ode": "dopri5", "rtol": 1e-3 if quick else 1e-5,
                                                    "atol": 1e-3 if quick else 1e-5},
    }
    available = sf.available("predictor")
    for name, n in (("dpmpp_2m", 20), ("unipc", 20)):
        if name in available:
            out[f"{name} ({4 if quick else n} steps)"] = {"predictor": name, "num_steps": 4 if quick else n}
    return out


def _sample(model, sde, spec: dict[str, Any], n: int, seed: int) -> tuple[torch.Tensor, int, float]:
    from scoreflow.evaluation.runs import sample_many

    start = time.perf_counter()
    if "ode" in spec:
        sampler = sf.ProbabilityFlowSampler(solver=spec["ode"], rtol=spec["rtol"], atol=spec["atol"])
        x, nfe = sample_many(model, sde, (1, 28, 28), n, batch_size=250, seed=seed, sampler=sampler)
    else:
        sampler = sf.Sampler(**spec)
        x, nfe = sample_many(model, sde, (1, 28, 28), n, batch_size=250, seed=seed, sampler=sampler)
    return x, nfe, time.perf_counter() - start


def measure_weights(model, sde, *, train, test, n_bpd: int, n_quality: int, quick: bool, images: Path | None,
                    tag: str, cache: Path) -> dict[str, Any]:
    """Bits/dim and sample quality of one set of weights."""
    from scoreflow.evaluation import image_quality
    from scoreflow.pictures import save_samples_png
    from scoreflow.evaluation.runs import likelihood_many

    tol = 1e-3 if quick else 1e-5
    start = time.perf_counter()
    res = likelihood_many(model, sde, test.x[:n_bpd], batch_size=100, seed=0, rtol=tol, atol=tol, eps=1e-5,
                          dequantize=True)
    out: dict[str, Any] = {
        "bpd": {**mean_and_standard_error(res["bpd"]), "rtol": tol, "atol": tol, "eps": 1e-5,
                "seconds": round(time.perf_counter() - start, 1)},
        "samplers": {},
    }
    for label, spec in samplers(quick).items():
        x, nfe, seconds = _sample(model, sde, spec, n_quality, seed=1)
        quality = image_quality(x, train, test, cache)
        quality.update(nfe=nfe, seconds=round(seconds, 1))
        if images is not None:
            slug = label.split(" ")[0].lower().replace("-", "_")
            path = images / f"{tag}-{slug}.png"
            save_samples_png(x[:64], path, title=f"{label}, {tag} weights")
            quality["picture"] = path.name
        out["samplers"][label] = quality
    return out


#: The fast bits/dim setting used for the side-by-side comparison (benchmarks/likelihood_mnist.py measures its
#: error against a tolerance-1e-7 solve: under 0.01 bits/dim).
FAST_BPD = {"solver": "rk4", "num_steps": 30, "time_variable": "log_sigma"}


def fast_bpd(model, sde, test, n: int) -> dict[str, Any]:
    """Test bits/dim of the first ``n`` test images with :data:`FAST_BPD` (same images, probes and
    dequantization draws for every model)."""
    from scoreflow.evaluation.runs import likelihood_many

    start = time.perf_counter()
    res = likelihood_many(model, sde, test.x[:n], batch_size=100, seed=0, eps=1e-5, dequantize=True, **FAST_BPD)
    return {**mean_and_standard_error(res["bpd"]), **FAST_BPD,
            "nfe_per_batch": int(res["nfe"].max()), "seconds": round(time.perf_counter() - start, 1)}


def measure_better(args: argparse.Namespace, results: dict[str, Any]) -> dict[str, Any]:
    """The better recipe's shipped model beside the tutorial's: bits/dim of both the same way, and the better
    model's samples with the same samplers and seeds as the tutorial model's."""
    from scoreflow.data.sources import DEFAULT_DATA_DIR
    from scoreflow.evaluation import image_quality
    from scoreflow.pictures import save_samples_png
    from scoreflow.pretrained import resolve_pretrained
    from scoreflow.training import load_checkpoint

    train = sf.create("dataset", "mnist", split="train", data_dir=args.data_dir)
    test = sf.create("dataset", "mnist", split="test", data_dir=args.data_dir)
    cache = DEFAULT_DATA_DIR / "classifiers"
    images = Path(args.out) / "images"
    images.mkdir(parents=True, exist_ok=True)
    meta = load_checkpoint(resolve_pretrained(args.better))["meta"]
    better, sde, config = sf.load_pretrained(args.better, ema=True)
    out: dict[str, Any] = {"name": args.better, "config": config.to_dict(), "epoch_losses": meta.get("epoch_losses", []),
                           "bpd": {}, "samplers": {}, "date": time.strftime("%Y-%m-%d"),
                           "load_average_start": os.getloadavg()[0]}
    for tag, (name, ema) in {"tutorial raw": (args.pretrained, False), "tutorial EMA": (args.pretrained, True),
                             "better EMA": (args.better, True)}.items():
        model, model_sde, _ = sf.load_pretrained(name, ema=ema)
        out["bpd"][tag] = fast_bpd(model, model_sde, test, args.n_bpd)
        print(tag, out["bpd"][tag], flush=True)
    for label, spec in samplers(args.quick).items():
        x, nfe, seconds = _sample(better, sde, spec, args.n_quality, seed=1)
        quality = image_quality(x, train, test, cache)
        quality.update(nfe=nfe, seconds=round(seconds, 1))
        slug = label.split(" ")[0].lower().replace("-", "_")
        save_samples_png(x[:64], images / f"better-{slug}.png", title=f"{label}, {args.better} (EMA)")
        quality["picture"] = f"better-{slug}.png"
        out["samplers"][label] = quality
        print(label, quality["frechet_distance"], flush=True)
    out["load_average_end"] = os.getloadavg()[0]
    return out


def notebook_epochs(train, epochs: int, quick: bool) -> list[float]:
    """The notebook's own training loop (transcribed) on this machine: its per-epoch losses."""
    from benchmarks.tutorial_notebook import train as notebook_train

    return notebook_train(train.x, n_epochs=epochs, seed=0, max_steps=20 if quick else None)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from scoreflow.data.sources import DEFAULT_DATA_DIR
    from scoreflow.evaluation import quality_references
    from scoreflow.pretrained import resolve_pretrained
    from scoreflow.training import load_checkpoint

    start = time.perf_counter()
    raw, sde, config = sf.load_pretrained(args.pretrained, ema=False)
    load_seconds = time.perf_counter() - start
    ema, _, _ = sf.load_pretrained(args.pretrained, ema=True)
    meta = load_checkpoint(resolve_pretrained(args.pretrained))["meta"]
    train = sf.create("dataset", "mnist", split="train", data_dir=args.data_dir)
    test = sf.create("dataset", "mnist", split="test", data_dir=args.data_dir)
    if args.quick:  # the classifier's reference features of 10,000 images dominate a toy run
        test = TensorData(test.x[:500], test.labels[:500], "image", "mnist")
    cache = DEFAULT_DATA_DIR / "classifiers"
    images = Path(args.out) / "images"
    images.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": "python -m benchmarks.mnist_report " + " ".join(args.argv),
        "date": time.strftime("%Y-%m-%d"), "load_seconds": round(load_seconds, 3),
        "config": config.to_dict(), "epoch_losses": meta.get("epoch_losses", []),
        "versions": meta.get("versions", {}), "load_average_start": os.getloadavg()[0],
        "references": quality_references(args.n_quality, train, test, cache),
        "zero_pixel_fraction": float((train.x == 0).float().mean()),
    }
    if args.notebook_epochs:
        results["notebook_epoch_losses"] = notebook_epochs(train, args.notebook_epochs, args.quick)
    elif Path(args.notebook_results).is_file():
        measured = json.loads(Path(args.notebook_results).read_text())
        results["notebook_epoch_losses"] = measured["fp32"]["epoch_losses"]
        if "bf16" in measured:
            results["notebook_bf16_epoch_losses"] = measured["bf16"]["epoch_losses"]
    for tag, model in (("raw", raw), ("ema", ema)):
        results[tag] = measure_weights(model, sde, train=train, test=test, n_bpd=args.n_bpd,
                                       n_quality=args.n_quality, quick=args.quick, images=images, tag=tag,
                                       cache=cache)
    results["load_average_end"] = os.getloadavg()[0]
    return results


def _loss_plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.plot(range(len(TUTORIAL_EPOCH_LOSSES)), TUTORIAL_EPOCH_LOSSES, "o-", ms=3, label="tutorial (printed)")
    ours = results["epoch_losses"]
    ax.plot([e for e, _ in ours], [v for _, v in ours], "s-", ms=3, label="scoreflow mnist-tutorial")
    if results.get("notebook_epoch_losses"):
        nb = results["notebook_epoch_losses"]
        ax.plot(range(len(nb)), nb, "^", ms=6, label="notebook loop, this machine")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("average loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(results: dict[str, Any], out: Path) -> str:
    """The Markdown page (and its loss plot) from a results dict."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    _loss_plot(results, out / "images" / "epoch-losses.png")
    ours = dict((int(e), v) for e, v in results["epoch_losses"])
    lines = [
        "# Reproducing the tutorial's MNIST experiment",
        "",
        "The classic score-based tutorial trains its U-Net on MNIST under the VE SDE `dx = 25^t dw` (batch 32, "
        "Adam 1e-4, 50 epochs, eps 1e-5), samples with Euler-Maruyama, predictor-corrector and the "
        "probability-flow ODE, and reports about 2.30-2.41 test bits/dim. scoreflow ships that run as the "
        "`mnist-tutorial` preset and as pretrained weights trained with it on this project's CPUs:",
        "",
        "```bash",
        "scoreflow train --preset mnist-tutorial --data-dir DIR --out run     # the run (about 1.5 h on 2 cores)",
        "scoreflow sample --checkpoint mnist-tutorial --num-samples 64        # the shipped weights, by name",
        "```",
        "",
        f"Generated by `{results['command']}` on {results['date']} (load average "
        f"{results['load_average_start']:.1f} at the start, {results['load_average_end']:.1f} at the end). "
        f"Loading the shipped weights by name, sha256 check included, took {results['load_seconds']:.2f} s.",
        "",
        "## Training loss per epoch",
        "",
        "![per-epoch loss](images/epoch-losses.png)",
        "",
    ]
    nb = results.get("notebook_epoch_losses") or []
    head = "| epoch | tutorial (printed) | scoreflow | scoreflow / tutorial |"
    if nb:
        head += " notebook loop on this machine |"
    lines += [head, "|---|---|---|---|" + ("---|" if nb else "")]
    for e in range(max(len(TUTORIAL_EPOCH_LOSSES), len(ours))):
        tut = TUTORIAL_EPOCH_LOSSES[e] if e < len(TUTORIAL_EPOCH_LOSSES) else None
        mine = ours.get(e)
        ratio = f"{mine / tut:.3f}" if tut and mine else ""
        row = f"| {e} | {'' if tut is None else f'{tut:.2f}'} | {'' if mine is None else f'{mine:.2f}'} | {ratio} |"
        if nb:
            row += f" {nb[e]:.2f} |" if e < len(nb) else " |"
        lines.append(row)
    lines += ["", _loss_discussion(results, ours, nb), ""]
    lines += ["## Test bits/dim", "",
              "Dequantized test images `(255 x + u) / 256`, one Gaussian Hutchinson probe per image, dopri5 at "
              "the tutorial's tolerance; the standard error is over images (probe and dequantization noise "
              "included).", "",
              "| weights | images | bits/dim | standard error | tutorial | seconds |", "|---|---|---|---|---|---|"]
    lo, hi = TUTORIAL_BPD_RANGE
    for tag, label in (("raw", "raw (the tutorial's)"), ("ema", "EMA 0.999")):
        b = results[tag]["bpd"]
        lines.append(f"| {label} | {b['n']} | {b['mean']:.4f} | {b['std_error']:.4f} | {lo:.2f}-{hi:.2f} | "
                     f"{b['seconds']} |")
    lines += ["", _bpd_discussion(results)]
    lines += ["", "## Samples and their quality", "",
              "Frechet distance between the features of a small MNIST classifier (shipped with scoreflow, "
              f"{_accuracy(results):.2%} test accuracy) for the samples and for the 10,000 test images; "
              "'confident' is the fraction the classifier labels with probability at least 0.9. Real training "
              "images and uniform noise, as many as the samples, are the floor and the ceiling.", "",
              "| weights | sampler | NFE | Frechet distance | confident | class histogram (0-9) | seconds |",
              "|---|---|---|---|---|---|---|"]
    for ref, label in (("real_images", "real MNIST training images"), ("uniform_noise", "uniform noise")):
        q = results["references"][ref]
        lines.append(f"| reference | {label} | | {q['frechet_distance']:.2f} | {q['confident_fraction']:.3f} | "
                     f"{q['class_histogram']} | |")
    for tag in ("raw", "ema"):
        for label, q in results[tag]["samplers"].items():
            lines.append(f"| {tag} | {label} | {q['nfe']} | {q['frechet_distance']:.2f} | "
                         f"{q['confident_fraction']:.3f} | {q['class_histogram']} | {q['seconds']} |")
    lines += [""]
    for tag in ("raw", "ema"):
        for label, q in results[tag]["samplers"].items():
            if "picture" in q:
                lines += [f"**{label}, {tag} weights**", "", f"![{label}, {tag}](images/{q['picture']})", ""]
    lines += ["## Beating the tutorial with the same network and epochs", "", _beat_discussion(results), ""]
    if "better" in results:
        lines += _better_section(results)
    text = "\n".join(lines)
    (out / "mnist.md").write_text(text)
    return text


def _better_section(results: dict[str, Any]) -> list[str]:
    """The better recipe's figures beside the tutorial model's, and what they show."""
    b = results["better"]
    cfg = b["config"]
    epochs = len(b["epoch_losses"])
    lines = [f"### The `{b['name']}` recipe", "",
             f"Same network, SDE, optimizer, batch and learning rate; {epochs} epochs (the tutorial's budget is 50). "
             f"Changes: uniform dequantization of every training batch (`dequantize = {str(cfg['dequantize']).lower()}`), "
             f"the likelihood weighting `g(t)^2` with importance-sampled time (`weighting = \"{cfg['weighting']}\"`, "
             f"`importance_sampling = {str(cfg['importance_sampling']).lower()}`, Song et al. 2021), and sampling "
             "with the EMA weights. Train it with `scoreflow train --preset mnist-likelihood --data-dir DIR --out RUN`; "
             f"the shipped weights load as `--checkpoint {b['name']}`. Measured by `{b['command']}` on {b['date']}.", "",
             "**Test bits/dim**, every model the same way: the same "
             f"{next(iter(b['bpd'].values()))['n']} test images, dequantization draws and probes, integrated in the "
             "log noise level with 30 RK4 steps (120 evaluations; within 0.01 bits/dim of a tolerance-1e-7 solve, "
             "see docs/benchmarks.md).", "",
             "| model | bits/dim | standard error | seconds |", "|---|---|---|---|"]
    for tag, v in b["bpd"].items():
        lines.append(f"| {tag} | {v['mean']:.4f} | {v['std_error']:.4f} | {v['seconds']} |")
    tut, mine = b["bpd"]["tutorial raw"], b["bpd"]["better EMA"]
    lines += ["", "**Sample quality**, same samplers, seeds and sample count as above (Frechet distance; lower "
              "is better):", "", "| sampler | tutorial, raw | tutorial, EMA | better recipe, EMA | confident (better) |",
              "|---|---|---|---|---|"]
    wins = 0
    for label, q in b["samplers"].items():
        raw = results["raw"]["samplers"].get(label, {}).get("frechet_distance")
        ema = results["ema"]["samplers"].get(label, {}).get("frechet_distance")
        fmt = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {label} | {fmt(raw)} | {fmt(ema)} | {q['frechet_distance']:.2f} | "
                     f"{q['confident_fraction']:.3f} |")
        wins += raw is not None and q["frechet_distance"] < raw
    lines += [""]
    for label, q in b["samplers"].items():
        lines += [f"**{label}, {b['name']}**", "", f"![{label}, better](images/{q['picture']})", ""]
    delta = mine["mean"] - tut["mean"]
    se = (mine["std_error"] ** 2 + tut["std_error"] ** 2) ** 0.5
    lines += [f"Bits/dim: {mine['mean']:.3f} against the tutorial recipe's {tut['mean']:.3f} ({delta:+.3f}, "
              f"standard error {se:.3f}), {'lower' if delta < -2 * se else 'not clearly lower'}; the tutorial's "
              f"printed 2.30-2.41 is {'reached' if mine['mean'] <= 2.45 else 'not reached'}. Sample quality: a "
              f"lower Frechet distance than the tutorial recipe's raw weights for {wins} of {len(b['samplers'])} "
              "samplers." + (" The likelihood weighting spends most training draws at small noise levels "
                             "(importance-sampled t), which is what lowers bits/dim and what the large noise "
                             "levels that shape the digits lose: Song et al. (2021) report the same trade-off "
                             "(better likelihood, worse sample quality). One recipe that wins on both within "
                             "the same budget is still open; for samples, the tutorial recipe's EMA weights with "
                             "predictor-corrector remain the best here." if wins == 0 else ""), ""]
    return lines


def _accuracy(results: dict[str, Any]) -> float:
    return results["references"]["real_images"]["classifier_test_accuracy"]


def _loss_discussion(results: dict[str, Any], ours: dict[int, float], nb: list[float]) -> str:
    ratios = [ours[e] / TUTORIAL_EPOCH_LOSSES[e] for e in range(3, len(TUTORIAL_EPOCH_LOSSES)) if e in ours]
    if not ratios:
        return ""
    within = sum(abs(r - 1) <= 0.05 for r in ratios)
    text = (f"**The epoch losses do not match the printed log.** From epoch 3 to 14, scoreflow's epoch loss is "
            f"{min(ratios):.2f}-{max(ratios):.2f} times the tutorial's printed value ({within} of {len(ratios)} "
            "epochs within 5 %): the run fits the training objective much more closely than the printed log says "
            "the notebook did.")
    mine0 = ours.get(0, float("nan"))
    if nb:
        closer_to_ours = abs(nb[0] - mine0) < abs(nb[0] - TUTORIAL_EPOCH_LOSSES[0])
        text += (f" The measurement: the notebook's own loop, transcribed in `benchmarks/tutorial_notebook.py` (its "
                 f"`ScoreNet`, `loss_fn` and shuffled `DataLoader`, no scoreflow code) and run on this machine "
                 f"(CPU, float32) with the same hyperparameters, prints {nb[0]:.1f} for epoch 0, where the printed "
                 f"log says {TUTORIAL_EPOCH_LOSSES[0]:.1f} and scoreflow {mine0:.1f}.")
        if closer_to_ours:
            text += (" So the notebook's code itself does not reproduce its printed log here, and scoreflow "
                     "agrees with the notebook's code: `tests/test_pretrained.py` checks that the notebook's network "
                     "and scoreflow's U-Net give the same scores from the same weights, and `tests/test_sde.py` "
                     "that the SDE is the notebook's.")
        else:
            text += " That is closer to the printed log than scoreflow's: the difference is scoreflow's and open."
    bf16 = results.get("notebook_bf16_epoch_losses")
    if bf16:
        text += (f" One hypothesis for the printed log, measured the same way: the notebook's loop with its network "
                 f"under bfloat16 autocast (reduced-precision convolutions, as TF32 GPUs run them by default) "
                 f"prints {bf16[0]:.1f} for epoch 0")
        if nb and abs(bf16[0] - nb[0]) < 0.2 * abs(TUTORIAL_EPOCH_LOSSES[0] - nb[0]):
            text += ", as float32 does: reduced precision does not explain it. The cause remains open."
        else:
            text += "."
    return text


def _bpd_discussion(results: dict[str, Any]) -> str:
    lo, hi = TUTORIAL_BPD_RANGE
    raw = results["raw"]["bpd"]
    if raw["mean"] <= 2.45:
        return (f"The shipped tutorial model's {raw['mean']:.3f} +- {raw['std_error']:.3f} bits/dim is within the "
                f"tutorial's range ({lo:.2f}-{hi:.2f}, at most 2.45).")
    return (f"**The bits/dim do not reach the tutorial's.** The shipped tutorial model gives {raw['mean']:.3f} +- "
            f"{raw['std_error']:.3f}, above the printed {lo:.2f}-{hi:.2f} (the acceptance bound is 2.45). The "
            "likelihood code matches the exact log-density of Gaussian mixtures (tests/test_flow.py), and "
            "benchmarks/likelihood.py runs it beside the notebook's scipy procedure. Together with "
            "the much lower training loss above, this says the model here is sharper at small noise levels than "
            f"the one behind the printed figures. A likely mechanism (not yet measured): MNIST pixels are multiples "
            f"of 1/255 ({results.get('zero_pixel_fraction', 0.8):.0%} of training pixels exactly 0), "
            "training sees them undequantized, and a model that learns those point masses closely assigns less "
            "density to the dequantized test pixels spread over [k/256, (k+1)/256). Measured since: training on "
            "dequantized images alone (sigma^2 weighting, as the tutorial) was *worse* at epoch 13 (EMA 4.20 "
            "bits/dim on 64 test images, against 3.62 for the shipped tutorial model on the same images), so the "
            "grid is not the whole story: with the tutorial's uniform t, only 0.1 % of training draws have "
            "t < 1e-3, where the likelihood integral spends much of its weight. The likelihood-weighted recipe "
            "below trains there. Nor is it the split (the tutorial averaged over the 1875 training batches): on the first "
            "256 images of each split (`scoreflow likelihood --checkpoint mnist-tutorial --split train --max-samples "
            "256 --solver rk4 --num-steps 30 --time-variable log_sigma`, 2026-11-30) the raw weights give 3.809 +- "
            "0.036 bits/dim on training images and 3.758 +- 0.034 on test images, the EMA weights 3.757 and 3.699: "
            "no better on the images the model was trained on.")


def _beat_discussion(results: dict[str, Any]) -> str:
    raw, ema = results["raw"], results["ema"]
    db = ema["bpd"]["mean"] - raw["bpd"]["mean"]
    se = (ema["bpd"]["std_error"] ** 2 + raw["bpd"]["std_error"] ** 2) ** 0.5
    fd = {label: (raw["samplers"][label]["frechet_distance"], ema["samplers"][label]["frechet_distance"])
          for label in raw["samplers"]}
    better = sum(e < r for r, e in fd.values())
    return (f"The EMA of the weights (decay 0.999), which the tutorial recommends but does not use, comes from "
            f"the same run at no extra training cost: test bits/dim {ema['bpd']['mean']:.4f} against "
            f"{raw['bpd']['mean']:.4f} for the raw weights (difference {db:+.4f}, standard error {se:.4f}), "
            f"and a lower Frechet distance for {better} of {len(fd)} samplers."
            + ("" if "better" in results else " A separately trained recipe (likelihood weighting with "
               "importance-sampled time, dequantization) needs another run and is not measured here yet."))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    parser.add_argument("--pretrained", default="mnist-tutorial")
    parser.add_argument("--n-bpd", type=int, default=1000, help="test images for bits/dim")
    parser.add_argument("--n-quality", type=int, default=500, help="samples per sampler for the quality metric")
    parser.add_argument("--notebook-epochs", type=int, default=0, help="also run the notebook's loop this long")
    parser.add_argument("--notebook-results", default=str(NOTEBOOK_RESULTS),
                        help="or read its measured epoch losses from this JSON (see benchmarks/tutorial_notebook.py)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "reproduction"))
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--render-only", action="store_true", help="rewrite the page from --results")
    parser.add_argument("--better", default="mnist-likelihood", help="shipped model of the better recipe")
    parser.add_argument("--better-only", action="store_true",
                        help="measure only the better recipe (beside the tutorial model) into --results")
    parser.add_argument("--quick", action="store_true", help="toy sizes, for the test suite")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else __import__("sys").argv[1:])
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.render_only:
        results = json.loads(Path(args.results).read_text())
    elif args.better_only:
        results = json.loads(Path(args.results).read_text())
        results["better"] = measure_better(args, results)
        results["better"]["command"] = "python -m benchmarks.mnist_report " + " ".join(args.argv)
        Path(args.results).write_text(json.dumps(results, indent=2) + "\n")
    else:
        results = measure(args)
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(results, indent=2) + "\n")
    render(results, Path(args.out))
    print(f"wrote {Path(args.out) / 'mnist.md'}")


if __name__ == "__main__":
    main()
