"""Controllable generation on the shipped MNIST model: inpainting and class-conditional samples.

    python -m benchmarks.mnist_conditional --data-dir MNIST_DIR

- **Inpainting**: the bottom half of the first ``--n-inpaint`` MNIST test digits is hidden and filled in with
  predictor-corrector sampling (``inpaint``, Song et al.'s replacement method), with replacement plus RePaint's
  resampling (``--repaint-steps``, ``--repaint-resample``, ``--repaint-jump``) and, for a subset, with
  ``inpaint_smc`` (particles per digit); a classifier trained on real MNIST says whether each result keeps
  the digit's label. The same classifier on the original digits (its accuracy) and on the top halves alone
  (the bottom filled with black) are the ceiling and the floor.
- **Class-conditional samples**: ``--n-per-class`` samples of each digit with classifier guidance from the
  shipped noise-conditional MNIST classifier, at each ``--scales``; the fraction classified as the requested
  digit, and the classifier-feature Frechet distance to the test set next to unconditional samples from the
  same sampler and seeds.

Writes docs/reproduction/mnist-conditional.md, its pictures, and benchmarks/results/mnist-conditional.json
(``--render-only`` rewrites the page from it; ``--inpainting-only`` measures inpainting again and keeps the stored
guidance figures; ``--repaint-only`` measures the RePaint row alone and keeps every other stored figure). ``--quick`` runs at toy sizes (the test suite does).
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
from scoreflow.evaluation.metrics import _batched, cached_classifier, frechet_distance

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "mnist-conditional.json"
PAGE = ROOT / "docs" / "reproduction" / "mnist-conditional.md"
IMAGES = ROOT / "docs" / "reproduction" / "images"


def _pc(num_steps: int, **condition: Any) -> sf.Sampler:
    """The tutorial's predictor-corrector sampler (Euler-Maruyama + Langevin, snr 0.15)."""
    return sf.Sampler(predictor="euler", corrector="langevin", snr=0.15, num_steps=num_steps, **condition)


def _in_batches(fn, n: int, batch: int) -> torch.Tensor:
    return torch.cat([fn(i, min(batch, n - i)) for i in range(0, n, batch)])


def _features(clf, x: torch.Tensor):
    with torch.no_grad():
        return _batched(clf.features, x.clamp(0, 1)).numpy()


def _predict(clf, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return _batched(clf, x.clamp(0, 1)).argmax(1)


def measure_inpainting(model, sde, test, clf, args) -> dict[str, Any]:
    n = args.n_inpaint
    images, labels = test.x[:n], test.labels[:n]
    mask = sf.named_mask("bottom-half", tuple(images.shape[1:]))
    out: dict[str, Any] = {"n": n, "num_steps": args.num_steps, "mask": "bottom-half"}
    out["original_accuracy"] = float((_predict(clf, images) == labels).double().mean())
    top_only = torch.where(mask, images, torch.zeros(()))
    out["top_half_only_accuracy"] = float((_predict(clf, top_only) == labels).double().mean())

    def replace(i, size):
        sampler = _pc(args.num_steps, condition="inpaint",
                      condition_options={"known": images[i:i + size], "mask": mask})
        g = torch.Generator().manual_seed(args.seed + i)
        return sampler.sample(model, sde, (size, *images.shape[1:]), generator=g).samples

    start = time.perf_counter()
    filled = _in_batches(replace, n, args.batch_size)
    out["inpaint"] = {"kept_label": float((_predict(clf, filled) == labels).double().mean()),
                      "seconds": time.perf_counter() - start}
    if args.repaint_resample:
        out["inpaint_repaint"], out["_repaint_pictures"] = measure_repaint(model, sde, test, clf, args)
    smc_n, k = args.n_smc, args.particles
    if smc_n:
        def smc(i, size):
            sampler = _pc(args.num_steps, condition="inpaint_smc",
                          condition_options={"known": images[i:i + size], "mask": mask})
            g = torch.Generator().manual_seed(args.seed + 7919 + i)
            return sampler.sample(model, sde, (size * k, *images.shape[1:]), generator=g).samples

        start = time.perf_counter()
        per_batch = max(1, args.batch_size // k)
        particles = _in_batches(smc, smc_n, per_batch)  # (smc_n * k, ...): digit d's particles are contiguous
        kept = (_predict(clf, particles) == labels[:smc_n].repeat_interleave(k)).double()
        out["inpaint_smc"] = {"n": smc_n, "particles": k, "kept_label": float(kept.mean()),
                              "kept_label_same_digits_replacement": float(
                                  (_predict(clf, filled[:smc_n]) == labels[:smc_n]).double().mean()),
                              "seconds": time.perf_counter() - start}
        out["_smc_pictures"] = particles.reshape(smc_n, k, *images.shape[1:])[:8, 0]
    out["_pictures"] = (images[:16], top_only[:16], filled[:16])
    return out


def measure_repaint(model, sde, test, clf, args) -> tuple[dict[str, Any], list]:
    """Replacement with RePaint resampling on the same digits and seeds; its figures and picture rows."""
    n = args.n_inpaint
    images, labels = test.x[:n], test.labels[:n]
    mask = sf.named_mask("bottom-half", tuple(images.shape[1:]))
    nfe: list[int] = []

    def repaint(i, size):
        sampler = sf.Sampler(predictor="reverse_diffusion", num_steps=args.repaint_steps,
                             resample=args.repaint_resample, resample_jump=args.repaint_jump,
                             condition="inpaint", condition_options={"known": images[i:i + size], "mask": mask})
        g = torch.Generator().manual_seed(args.seed + i)
        result = sampler.sample(model, sde, (size, *images.shape[1:]), generator=g)
        nfe.append(result.nfe)
        return result.samples

    start = time.perf_counter()
    repainted = _in_batches(repaint, n, args.batch_size)
    figures = {"kept_label": float((_predict(clf, repainted) == labels).double().mean()),
               "predictor": "reverse_diffusion", "num_steps": args.repaint_steps,
               "resample": args.repaint_resample, "resample_jump": args.repaint_jump,
               "nfe_per_sample": nfe[0], "seconds": time.perf_counter() - start}
    top_only = torch.where(mask, images[:16], torch.zeros(()))
    return figures, [("original", images[:16]), ("top half", top_only), ("RePaint", repainted[:16])]


def measure_guidance(model, sde, test, clf, noisy_clf, args) -> dict[str, Any]:
    per, n_classes = args.n_per_class, 10
    wanted = torch.arange(n_classes).repeat_interleave(per)
    n = len(wanted)
    out: dict[str, Any] = {"n": n, "num_steps": args.num_steps, "scales": {}}
    f_test = _features(clf, test.x)

    def draw(condition_for):
        def one(i, size):
            g = torch.Generator().manual_seed(args.seed + 104729 + i)  # the same seeds for every row
            return _pc(args.num_steps, **condition_for(i, size)).sample(model, sde, (size, 1, 28, 28),
                                                                        generator=g).samples
        return one

    start = time.perf_counter()
    plain = _in_batches(draw(lambda i, size: {}), n, args.batch_size)
    out["unconditional"] = {"frechet_distance": frechet_distance(_features(clf, plain), f_test),
                            "seconds": time.perf_counter() - start}
    classify = sf.classifier_fn(noisy_clf, sde)
    pictures = {}
    for scale in args.scales:
        start = time.perf_counter()
        guided = _in_batches(draw(lambda i, size, s=scale: {"condition": sf.ClassifierGuidance(
            classify, wanted[i:i + size], scale=s)}), n, args.batch_size)
        predicted = _predict(clf, guided)
        per_class = [(float((predicted[wanted == c] == c).double().mean())) for c in range(n_classes)]
        out["scales"][f"{scale:g}"] = {"requested_class": float((predicted == wanted).double().mean()),
                                       "per_class": per_class,
                                       "frechet_distance": frechet_distance(_features(clf, guided), f_test),
                                       "seconds": time.perf_counter() - start}
        pictures[f"{scale:g}"] = guided.reshape(n_classes, per, 1, 28, 28)[:, :8]
    out["_pictures"] = pictures
    return out


def _save_pictures(results: dict[str, Any], quick: bool) -> None:
    from scoreflow.pictures import save_rows_png, save_samples_png

    if quick:
        return
    IMAGES.mkdir(parents=True, exist_ok=True)
    inp = results["inpainting"]
    if "_repaint_pictures" in inp:
        save_rows_png(inp.pop("_repaint_pictures"), IMAGES / "mnist-inpaint-repaint.png",
                      title="bottom half of MNIST test digits filled in with RePaint resampling (mnist-sigma25 EMA)")
    if "_pictures" in inp:  # absent when only the RePaint row was measured: the stored picture stays
        orig, top, filled = inp.pop("_pictures")
        rows = [("original", orig), ("top half", top), ("inpainted", filled)]
        if "_smc_pictures" in inp:
            rows.append(("SMC", inp.pop("_smc_pictures")))
        save_rows_png(rows, IMAGES / "mnist-inpaint.png", title="bottom half of MNIST test digits filled in "
                                                                 "(mnist-sigma25 EMA, predictor-corrector)")
    for scale, grid in results["guidance"].pop("_pictures", {}).items():
        save_samples_png(grid.reshape(-1, 1, 28, 28), IMAGES / f"mnist-guided-{scale}.png",
                         title=f"classifier guidance scale {scale}: one row per digit 0-9")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    model, sde, _ = sf.load_pretrained("mnist-sigma25", ema=True)
    data = {split: sf.create("dataset", "mnist", split=split, data_dir=args.data_dir) for split in ("train", "test")}
    clf = cached_classifier(data["train"], Path(args.data_dir) / "classifiers")
    noisy, meta = sf.load_classifier(args.classifier)
    results: dict[str, Any] = {"model": "mnist-sigma25 (EMA)", "classifier_test_accuracy": float(
        (_predict(clf, data["test"].x) == data["test"].labels).double().mean()),
        "noise_classifier": {"path": str(args.classifier),
                             "accuracy_by_noise_level": meta.get("test_accuracy_by_noise_level")},
        "threads": torch.get_num_threads(), "load_average": os.getloadavg()[0]}
    if args.repaint_only:
        stored = json.loads(RESULTS.read_text())
        results["inpainting"] = stored["inpainting"]
        results["inpainting"]["inpaint_repaint"], pictures = measure_repaint(model, sde, data["test"], clf, args)
        results["inpainting"]["_repaint_pictures"] = pictures
        results["inpainting"]["inpaint_repaint"]["measured_separately"] = {
            "load_average": results["load_average"], "command_flags": "--repaint-only"}
    else:
        results["inpainting"] = measure_inpainting(model, sde, data["test"], clf, args)
    if args.inpainting_only or args.repaint_only:
        results["guidance"] = json.loads(RESULTS.read_text())["guidance"]
    else:
        results["guidance"] = measure_guidance(model, sde, data["test"], clf, noisy, args)
    results["load_average_after"] = os.getloadavg()[0]
    _save_pictures(results, args.quick)
    return results


def render(results: dict[str, Any]) -> str:
    inp, gd = results["inpainting"], results["guidance"]
    lines = [
        "# Controllable generation on the shipped MNIST model",
        "",
        "Generated by `python -m benchmarks.mnist_conditional --data-dir MNIST_DIR` from the shipped "
        f"`{results['model']}` model; judged by the MNIST classifier trained on real images that scoreflow ships "
        f"for its sample-quality metric ({results['classifier_test_accuracy']:.2%} test accuracy). Sampler: the "
        f"tutorial's predictor-corrector (Euler-Maruyama + Langevin, snr 0.15, {inp['num_steps']} steps). "
        "The guide is [Controllable generation](../guides/controllable-generation.md).",
        "",
        "## Inpainting the bottom half of test digits",
        "",
        f"The first {inp['n']} MNIST test digits, bottom half hidden (`scoreflow inpaint --checkpoint mnist-sigma25 "
        "--images test --mask bottom-half`). 'Keeps its label' is the fraction the real-data classifier gives the "
        "digit's true label.",
        "",
        "| images | keeps its label | seconds |",
        "|---|---|---|",
        f"| original digits (the classifier's accuracy: the ceiling) | {inp['original_accuracy']:.3f} | |",
        f"| top half only, bottom black (the floor) | {inp['top_half_only_accuracy']:.3f} | |",
        f"| inpainted (`inpaint`, replacement) | **{inp['inpaint']['kept_label']:.3f}** | "
        f"{inp['inpaint']['seconds']:.0f} |",
    ]
    if "inpaint_repaint" in inp:
        rp = inp["inpaint_repaint"]
        lines.append(f"| inpainted (`inpaint` with RePaint resampling: reverse diffusion, {rp['num_steps']} steps, "
                     f"`resample={rp['resample']}`, `resample_jump={rp['resample_jump']}`; {rp['nfe_per_sample']} "
                     f"network evaluations per digit against {2 * inp['num_steps']} above"
                     f"{'; measured in a separate run, see below' if 'measured_separately' in rp else ''}) | "
                     f"**{rp['kept_label']:.3f}** | {rp['seconds']:.0f} |")
    if "inpaint_smc" in inp:
        smc = inp["inpaint_smc"]
        lines.append(f"| inpainted (`inpaint_smc`, {smc['particles']} particles per digit, first {smc['n']} digits; "
                     f"replacement on the same digits: {smc['kept_label_same_digits_replacement']:.3f}) | "
                     f"{smc['kept_label']:.3f} | {smc['seconds']:.0f} |")
    se = (0.25 / inp["n"]) ** 0.5
    lines += ["", f"The standard error of a fraction near 0.8 over {inp['n']} digits is about "
              f"{(0.8 * 0.2 / inp['n']) ** 0.5:.3f} (at most {se:.3f}).", ""]
    if "measured_separately" in inp.get("inpaint_repaint", {}):
        lines += [f"The RePaint row was measured by a later run with `--repaint-only` (same digits, seeds and "
                  f"classifier; load average {inp['inpaint_repaint']['measured_separately']['load_average']:.2f} "
                  "at its start), which keeps the other rows' stored figures; its seconds come from a quieter "
                  "machine than the replacement and SMC rows' and do not compare with them.", ""]
    lines += ["![inpainting](images/mnist-inpaint.png)", ""]
    if "inpaint_repaint" in inp:
        lines += ["![inpainting with RePaint](images/mnist-inpaint-repaint.png)", ""]
    lines += [
              "## Class-conditional samples (classifier guidance)", "",
              f"{gd['n'] // 10} samples of each digit, guided by the noise-conditional classifier "
              f"`{Path(results['noise_classifier']['path']).name}` "
              "(`scoreflow sample --checkpoint mnist-sigma25 --class 3 --classifier ... --guidance-scale S`); "
              "its test accuracy at noise levels (standard deviation: accuracy): "
              + ", ".join(f"{k}: {v:.3f}" for k, v in (results["noise_classifier"]["accuracy_by_noise_level"]
                                                       or {}).items()) + ".",
              "'Requested class' is the fraction the real-data classifier labels as the digit asked for; the "
              "Frechet distance on its features to the 10,000 test images is next to unconditional samples from the "
              "same sampler and seeds (lower is better).", "",
              "| guidance | requested class | lowest per digit | Frechet distance | seconds |", "|---|---|---|---|---|",
              f"| unconditional | (0.1 by chance) | | {gd['unconditional']['frechet_distance']:.2f} | "
              f"{gd['unconditional']['seconds']:.0f} |"]
    for scale, row in gd["scales"].items():
        worst = min(range(10), key=lambda c: row["per_class"][c])
        lines.append(f"| scale {scale} | **{row['requested_class']:.3f}** | {row['per_class'][worst]:.2f} "
                     f"(digit {worst}) | {row['frechet_distance']:.2f} | {row['seconds']:.0f} |")
    lines += [""] + [f"![guidance scale {s}](images/mnist-guided-{s}.png)" for s in gd["scales"]]
    lines += ["", f"Machine: {results['threads']} torch threads; load average {results['load_average']:.2f} before, "
              f"{results['load_average_after']:.2f} after.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    p.add_argument("--classifier", default="mnist", help="noise-conditional classifier folder or shipped name")
    p.add_argument("--n-inpaint", type=int, default=500)
    p.add_argument("--n-smc", type=int, default=50, help="digits inpainted with inpaint_smc (0: none)")
    p.add_argument("--particles", type=int, default=8)
    p.add_argument("--n-per-class", type=int, default=50)
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 4.0])
    p.add_argument("--num-steps", type=int, default=500)
    p.add_argument("--repaint-steps", type=int, default=100, help="grid steps of the RePaint row")
    p.add_argument("--repaint-resample", type=int, default=19, help="RePaint's extra passes (0: no RePaint row)")
    p.add_argument("--repaint-jump", type=int, default=10, help="RePaint's jump length")
    p.add_argument("--inpainting-only", action="store_true",
                   help="measure inpainting only; keep the stored guidance figures")
    p.add_argument("--repaint-only", action="store_true",
                   help="measure the RePaint row only; keep every other stored figure")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="toy sizes, nothing written to docs")
    p.add_argument("--render-only", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.n_inpaint, args.n_smc, args.particles, args.n_per_class, args.num_steps = 8, 2, 2, 1, 4
        args.repaint_steps, args.repaint_resample, args.repaint_jump = 4, 1, 2
    if args.render_only:
        results = json.loads(RESULTS.read_text())
    else:
        args.classifier = _classifier_folder(args.classifier)
        results = measure(args)
        if not args.quick:
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    text = render(results)
    if args.quick:
        print(text)
    else:
        PAGE.write_text(text)
        print(f"wrote {PAGE}")


def _classifier_folder(text: str) -> str:
    from scoreflow.pretrained import shipped_classifier

    return text if Path(text).exists() else str(shipped_classifier(text))


if __name__ == "__main__":
    main()
