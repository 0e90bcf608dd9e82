"""Classifier-free guidance on the shipped class-conditional MNIST model: a guidance sweep.

    python -m benchmarks.mnist_free_guidance --data-dir MNIST_DIR

``--n-per-class`` samples of each digit (1,000 by default) from the class-conditional model ``mnist-cfg`` at each
guidance scale ``w`` of ``--scales`` (``(1 + w) s(x, t, c) - w s(x, t)``), with one sampler (``--predictor`` on its
default grid, ``--budget`` solver evaluations; each guided evaluation is one network call on the stacked batch, two
network evaluations of the batch), the same prior draws for every row. Beside them, with the same sampler and
draws: the unconditional shipped model ``mnist`` at the same budget and at twice it (the same number of network
evaluations), and classifier guidance of ``mnist`` by the shipped noise-conditional classifier at
``--classifier-scales``. Each row: the fraction the project's MNIST classifier (the one ``scoreflow evaluate``
uses) puts in the asked class, the Frechet distance of its features to the test set (all digits) and the mean over
digits of each digit's samples against that digit's test images.

Writes benchmarks/results/mnist-free-guidance.json, docs/reproduction/mnist-free-guidance.md and the sweep grid
docs/images/free-guidance-sweep.png (``--render-only`` rewrites the page from the record). ``--quick`` runs at toy
sizes (the test suite does).
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
from scoreflow.sampling.tuning import steps_for_nfe

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "mnist-free-guidance.json"
PAGE = ROOT / "docs" / "reproduction" / "mnist-free-guidance.md"
PICTURE = ROOT / "docs" / "images" / "free-guidance-sweep.png"
CLASSES = 10


def _load(name: str):
    """``(model, sde)`` of a shipped model name or a run folder (EMA weights)."""
    if Path(name).exists():
        model, sde, _ = sf.training.load_trained(name, ema=True)
    else:
        model, sde, _ = sf.load_pretrained(name, ema=True)
    return model.eval(), sde


def _draw(model, sde, sampler_for, wanted: torch.Tensor, args) -> tuple[torch.Tensor, int, float]:
    """Samples for the labels ``wanted`` in batches, batch ``i`` from seed ``args.seed + i`` for every row."""
    parts, nfe, start = [], 0, time.perf_counter()
    for i in range(0, len(wanted), args.batch_size):
        labels = wanted[i:i + args.batch_size]
        g = torch.Generator().manual_seed(args.seed + i)
        result = sampler_for(labels).sample(model, sde, (len(labels), 1, 28, 28), generator=g)
        parts.append(result.samples)
        nfe = max(nfe, result.nfe)
    return torch.cat(parts), nfe, time.perf_counter() - start


def _row(samples: torch.Tensor, wanted: torch.Tensor, nfe: int, seconds: float, clf, test, f_test) -> dict[str, Any]:
    with torch.no_grad():
        f = _batched(clf.features, samples.clamp(0, 1))
        predicted = clf.head(f).argmax(1)
    f, per_class = f.numpy(), []
    for c in range(CLASSES):
        mine = (wanted == c).numpy()
        if mine.sum() > 1:
            per_class.append(frechet_distance(f[mine], f_test[(test.labels == c).numpy()]))
    return {"requested_class": float((predicted == wanted).double().mean()),
            "per_class_accuracy": [float((predicted[wanted == c] == c).double().mean()) for c in range(CLASSES)],
            "frechet_distance": frechet_distance(f, f_test),
            "class_frechet_distance": float(sum(per_class) / len(per_class)) if per_class else float("nan"),
            "nfe": nfe, "seconds": round(seconds, 1)}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    model, sde = _load(args.checkpoint)
    plain, plain_sde = _load(args.unconditional)
    data = {split: sf.create("dataset", "mnist", split=split, data_dir=args.data_dir) for split in ("train", "test")}
    test = data["test"]
    clf = cached_classifier(data["train"], Path(args.data_dir) / "classifiers")
    with torch.no_grad():
        f_test = _batched(clf.features, test.x).numpy()
    wanted = torch.arange(CLASSES).repeat(args.n_per_class)  # every batch holds every digit
    steps = steps_for_nfe(args.predictor, args.budget, sde)

    def sampler(steps_: int = steps, **condition: Any) -> sf.Sampler:
        return sf.Sampler(predictor=args.predictor, num_steps=steps_, **condition)

    out: dict[str, Any] = {"checkpoint": args.checkpoint, "unconditional": args.unconditional,
                           "predictor": args.predictor, "budget": args.budget, "num_steps": steps,
                           "n": len(wanted), "seed": args.seed, "threads": torch.get_num_threads(),
                           "load_average": os.getloadavg()[0], "free_guidance": {}, "classifier_guidance": {}}
    pictures = {}
    for w in args.scales:
        x, nfe, secs = _draw(model, sde, lambda y, w=w: sampler(condition=sf.ClassifierFreeGuidance(y, scale=w)),
                             wanted, args)
        out["free_guidance"][f"{w:g}"] = _row(x, wanted, nfe, secs, clf, test, f_test)
        pictures[w] = x
        print(f"w {w:g}: {out['free_guidance'][f'{w:g}']}", flush=True)
    for label, steps_ in (("same_budget", steps), ("same_network_evaluations",
                                                   steps_for_nfe(args.predictor, 2 * args.budget, plain_sde))):
        x, nfe, secs = _draw(plain, plain_sde, lambda y, s=steps_: sampler(s), wanted, args)
        out[f"unconditional_{label}"] = _row(x, wanted, nfe, secs, clf, test, f_test)
        print(f"unconditional {label}: {out[f'unconditional_{label}']}", flush=True)
    if args.classifier_scales:
        noisy, _ = sf.load_classifier(args.noise_classifier)
        classify = sf.classifier_fn(noisy, plain_sde)
        for s in args.classifier_scales:
            x, nfe, secs = _draw(plain, plain_sde, lambda y, s=s: sampler(
                condition=sf.ClassifierGuidance(classify, y, scale=s)), wanted, args)
            out["classifier_guidance"][f"{s:g}"] = _row(x, wanted, nfe, secs, clf, test, f_test)
            print(f"classifier guidance {s:g}: {out['classifier_guidance'][f'{s:g}']}", flush=True)
    out["load_average_after"] = os.getloadavg()[0]
    if not (args.quick or args.no_page):
        _save_picture(pictures, wanted)
    return out


def _save_picture(pictures: dict[float, torch.Tensor], wanted: torch.Tensor) -> None:
    from scoreflow.pictures import save_rows_png

    rows = []
    for w, x in pictures.items():
        first = torch.stack([x[(wanted == c).nonzero()[j, 0]] for j in range(2) for c in range(CLASSES)])
        rows.append((f"w = {w:g}", first))
    PICTURE.parent.mkdir(parents=True, exist_ok=True)
    save_rows_png(rows, PICTURE, title="classifier-free guidance on mnist-cfg: two samples of each digit per scale")


def render(record: dict[str, Any]) -> str:
    def line(label: str, r: dict[str, Any]) -> str:
        return (f"| {label} | {r['nfe']} | {100 * r['requested_class']:.1f} % | {r['frechet_distance']:.2f} | "
                f"{r['class_frechet_distance']:.2f} |")

    lines = ["# Classifier-free guidance on MNIST", "",
             "`python -m benchmarks.mnist_free_guidance --data-dir MNIST_DIR` (record "
             "`benchmarks/results/mnist-free-guidance.json`).", "",
             f"{record['n']} samples ({record['n'] // CLASSES} of each digit), `{record['predictor']}` with "
             f"{record['num_steps']} steps ({record['budget']} solver evaluations), seed {record['seed']}, the same "
             "prior draws in every row. NFE counts network evaluations of the batch: a guided evaluation is one call "
             "on the stacked batch, two evaluations (one at `w = 0`). \"in class\": the project's MNIST classifier "
             "(the one `scoreflow evaluate` uses) puts the sample in the asked digit; FD: Frechet distance of its "
             "features to the 10,000 test digits; class FD: the mean over digits of each digit's samples against that "
             "digit's test images.", "",
             "| model and guidance | NFE | in class | FD | class FD |", "| --- | ---: | ---: | ---: | ---: |"]
    for w, r in record["free_guidance"].items():
        lines.append(line(f"`{Path(record['checkpoint']).name}`, classifier-free `w = {w}`", r))
    for s, r in record["classifier_guidance"].items():
        lines.append(line(f"`{record['unconditional']}`, classifier guidance scale {s}", r))
    lines.append(line(f"`{record['unconditional']}` unconditional, same budget", record["unconditional_same_budget"]))
    lines.append(line(f"`{record['unconditional']}` unconditional, same network evaluations",
                      record["unconditional_same_network_evaluations"]))
    lines += ["", "![the sweep: two samples of each digit per scale](../images/free-guidance-sweep.png)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    p.add_argument("--checkpoint", default="mnist-cfg", help="class-conditional model: shipped name or run folder")
    p.add_argument("--unconditional", default="mnist", help="the unconditional model to compare with")
    p.add_argument("--noise-classifier", default=str(ROOT / "scoreflow" / "pretrained" / "noise-classifiers" /
                                                     "mnist"), help="classifier guidance's noise-conditional classifier")
    p.add_argument("--predictor", default="edm_heun")
    p.add_argument("--budget", type=int, default=20, help="solver evaluations per sample")
    p.add_argument("--scales", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 3.0, 4.0])
    p.add_argument("--classifier-scales", type=float, nargs="*", default=[4.0, 8.0])
    p.add_argument("--n-per-class", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--render-only", action="store_true")
    p.add_argument("--no-page", action="store_true", help="write the record only (another seed's check)")
    p.add_argument("--quick", action="store_true", help="toy sizes, nothing under docs/ rewritten")
    args = p.parse_args(argv)
    if args.quick:
        args.n_per_class, args.batch_size, args.budget = 2, 20, 4
        args.scales, args.classifier_scales = [0.0, 2.0], [4.0]
    if args.render_only:
        record = json.loads(Path(args.out).read_text())
    else:
        record = measure(args)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    if not (args.quick or args.no_page):
        PAGE.write_text(render(record))
    print(render(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
