"""Image-to-image (SDEdit) and probability-flow encoding on a shipped MNIST model, judged by the MNIST classifier.

- **SDEdit restoration**: test digits with their bottom third replaced by uniform noise, noised by the forward process
  to each of ``--noise-levels`` and sampled back (``Sampler(start_time=...).sample(images=...)``), and the same
  guided by the ``inpaint`` condition keeping the intact top two thirds; the share of results the classifier
  assigns the original label, beside the share for the corrupted inputs and for the originals. The repeated rows
  (``sdedit_repeated`` in the record; ``--repeated-only`` measures just them) run guided SDEdit with a Langevin
  corrector ``--repeats`` times from ``--repeated-noise-levels``, each pass noising the last result back to the
  start (SDEdit's K), and record the share after every pass.
- **Encoding**: ``sf.encode`` then ``sf.decode`` (dopri5, tolerance 1e-5) of test digits: the mean absolute
  reconstruction error per pixel; the latents divided by the prior's std against N(0, 1) (mean and variance with
  their standard errors, over images: the pixels of one image are not independent).
- **Interpolation**: ``sf.interpolate`` between pairs of test digits of one class; the share of the frames between
  them that the classifier gives that class with confidence above 0.9.

Run::

    OMP_NUM_THREADS=1 python -m benchmarks.img2img_encoding --data-dir MNIST_DIR

It writes ``benchmarks/results/img2img-encoding.json`` and, with ``--pictures docs/images``, the strips the
controllable-generation guide shows (``sdedit-strip.png``, ``interpolation-strip.png``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

import scoreflow as sf

ROOT = Path(__file__).resolve().parents[1]


def corrupt_bottom_third(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``x`` (``(B, 1, H, W)`` in [0, 1]) with its bottom third replaced by uniform noise."""
    out = x.clone()
    rows = x.shape[-2] - x.shape[-2] // 3
    out[..., rows:, :] = torch.rand(out[..., rows:, :].shape, generator=generator)
    return out


def _share(flags: torch.Tensor) -> dict[str, float]:
    p = float(flags.float().mean())
    return {"share": p, "std_error": math.sqrt(p * (1 - p) / len(flags))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from scoreflow.data.sources import DEFAULT_DATA_DIR
    from scoreflow.models.digit_classifier import cached_classifier
    from scoreflow.cli.loading import from_unit_range, to_unit_range

    model, sde, _ = sf.load_pretrained(args.model)
    train = sf.create("dataset", "mnist", split="train", data_dir=args.data_dir)
    test = sf.create("dataset", "mnist", split="test", data_dir=args.data_dir)
    clf = cached_classifier(train, DEFAULT_DATA_DIR / "classifiers")
    loads = [os.getloadavg()[0]]

    def classify(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            p = torch.softmax(clf(x.float().clamp(0, 1)), dim=1)
        return p.argmax(1), p.max(1).values

    out: dict[str, Any] = {"model": args.model, "sde": repr(sde), "threads": torch.get_num_threads()}
    # SDEdit
    g = torch.Generator().manual_seed(0)
    images, labels = test.x[:args.sdedit_images], test.labels[:args.sdedit_images]
    corrupted = corrupt_bottom_third(images, g)
    known = torch.ones_like(images, dtype=torch.bool)
    known[..., images.shape[-2] - images.shape[-2] // 3:, :] = False  # the top two thirds are intact

    def restore(level: float, guided: bool, corrector: str | None = None, repeats: int = 1) -> dict[str, Any]:
        """SDEdit from ``level`` (``repeats`` times: noise the result back to ``level`` and sample again)."""
        start = float(sde.time_at_noise_level(torch.tensor([level], dtype=torch.float64))[0])
        began, parts, nfe = time.perf_counter(), [[] for _ in range(repeats)], 0
        for i in range(0, len(images), args.batch):
            given = from_unit_range(corrupted[i:i + args.batch], model)
            condition = {"condition": "inpaint", "condition_options": {"known": given, "mask": known[i:i + args.batch]}
                         } if guided else {}
            sampler = sf.Sampler(predictor=args.predictor, corrector=corrector, num_steps=args.num_steps,
                                 start_time=start, **condition)
            res = sf.sdedit(sampler, model, sde, given,
                            generators=[torch.Generator().manual_seed(1000 + i + 100_000 * r) for r in range(repeats)])
            nfe = res.nfe
            for r, x in enumerate(res.passes):
                parts[r].append(to_unit_range(x, model))
        row = {"noise_level": level, "start_time": start, "guided": guided, "corrector": corrector,
               "repeats": repeats, "nfe": nfe, "seconds": round(time.perf_counter() - began, 1),
               "restored": _share(classify(torch.cat(parts[-1]))[0] == labels)}
        if repeats > 1:  # the share after each pass
            row["restored_after_each_repeat"] = [_share(classify(torch.cat(p))[0] == labels)["share"] for p in parts]
        print("SDEdit", json.dumps(row), flush=True)
        return row

    header = {"images": len(images), "predictor": args.predictor, "num_steps": args.num_steps,
              "corrupted_inputs": _share(classify(corrupted)[0] == labels),
              "originals": _share(classify(images)[0] == labels)}
    out["sdedit_repeated"] = {**header, "rows": [restore(level, True, args.corrector, args.repeats)
                                                 for level in args.repeated_noise_levels]}
    if args.repeated_only:
        out["load_average"] = {"min": min(loads), "max": os.getloadavg()[0]}
        return out
    out["sdedit"] = {**header, "rows": [restore(level, False) for level in args.noise_levels]
                     + [restore(level, True) for level in args.guided_noise_levels]}
    loads.append(os.getloadavg()[0])
    # encoding
    options = {"sampler": sf.ProbabilityFlowSampler(rtol=args.tolerance, atol=args.tolerance, eps=args.eps)}
    x = from_unit_range(test.x[:args.encode_images], model)
    began = time.perf_counter()
    enc = sf.encode(model, sde, x, **options)
    dec = sf.decode(model, sde, enc.latents, **options)
    _, prior_std = sde.marginal_prob(torch.zeros(1, 1, dtype=torch.float64), torch.tensor([sde.T], dtype=torch.float64))
    z = enc.latents.double() / float(prior_std[0])
    per_image_mean, per_image_var = z.flatten(1).mean(1), z.flatten(1).var(1)
    n = len(z)
    out["encoding"] = {
        "images": n, "tolerance": args.tolerance, "eps": args.eps,
        "reconstruction_mae": float((dec.samples - x).abs().mean()),
        "reconstruction_mae_unit_range": float((to_unit_range(dec.samples, model) - test.x[:n]).abs().mean()),
        "nfe_encode": enc.nfe, "nfe_decode": dec.nfe, "seconds": round(time.perf_counter() - began, 1),
        "latent_mean": {"value": float(per_image_mean.mean()), "std_error": float(per_image_mean.std() / math.sqrt(n))},
        "latent_variance": {"value": float(per_image_var.mean()), "std_error": float(per_image_var.std() / math.sqrt(n))}}
    loads.append(os.getloadavg()[0])
    print("encoding", json.dumps(out["encoding"]), flush=True)
    # interpolation between same-class pairs
    confident, frames_total, began = 0, 0, time.perf_counter()
    pairs = []
    for digit in range(10):
        idx = torch.nonzero(test.labels == digit).flatten()[:2 * args.pairs_per_class]
        pairs += [(int(idx[2 * k]), int(idx[2 * k + 1]), digit) for k in range(args.pairs_per_class)]
    for a, b, digit in pairs:
        res = sf.interpolate(model, sde, from_unit_range(test.x[a], model), from_unit_range(test.x[b], model),
                             args.frames, **options)
        label, confidence = classify(to_unit_range(res.samples[1:-1], model))
        confident += int(((label == digit) & (confidence > 0.9)).sum())
        frames_total += args.frames - 2
    out["interpolation"] = {"pairs": len(pairs), "frames": args.frames, "inner_frames": frames_total,
                            **_share(torch.tensor([True] * confident + [False] * (frames_total - confident))),
                            "seconds": round(time.perf_counter() - began, 1)}
    loads.append(os.getloadavg()[0])
    print("interpolation", json.dumps(out["interpolation"]), flush=True)
    out["load_average"] = {"min": min(loads), "max": max(loads)}
    if args.pictures:
        pictures(model, sde, test, args, pairs[::args.pairs_per_class][:4], options)
    return out


def pictures(model, sde, test, args: argparse.Namespace, pairs, options: dict[str, Any]) -> None:
    """An SDEdit strip (8 corrupted test digits restored from several noise levels) and interpolation strips."""
    from scoreflow.cli.loading import from_unit_range, to_unit_range
    from scoreflow.pictures import save_rows_png

    folder = Path(args.pictures)
    images = test.x[args.sdedit_images:args.sdedit_images + 8]
    corrupted = corrupt_bottom_third(images, torch.Generator().manual_seed(1))
    rows = [("original", images), ("bottom third noise", corrupted)]
    top = float(sde.noise_level(torch.tensor([sde.T], dtype=torch.float64))[0])
    for level in (0.2, 0.5, 1.0, 3.0, top):
        start = float(sde.time_at_noise_level(torch.tensor([level], dtype=torch.float64))[0])
        sampler = sf.Sampler(predictor=args.predictor, num_steps=args.num_steps, start_time=start)
        res = sampler.sample(model, sde, tuple(corrupted.shape), images=from_unit_range(corrupted, model),
                             generator=torch.Generator().manual_seed(2))
        rows.append((f"from noise {level:.3g}", to_unit_range(res.samples, model)))
    save_rows_png(rows, folder / "sdedit-strip.png", title=f"SDEdit: {args.predictor}, {args.num_steps} steps "
                                                            "from each start")
    strips = []
    for a, b, digit in pairs:
        res = sf.interpolate(model, sde, from_unit_range(test.x[a], model), from_unit_range(test.x[b], model),
                             args.frames, **options)
        strips.append((f"two {digit}s", to_unit_range(res.samples, model)))
    save_rows_png(strips, folder / "interpolation-strip.png",
                  title="probability-flow latents interpolated spherically, decoded (dopri5)")
    print(f"wrote {folder / 'sdedit-strip.png'} and {folder / 'interpolation-strip.png'}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mnist", help="shipped model or run folder (default: %(default)s)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--sdedit-images", type=int, default=300)
    parser.add_argument("--noise-levels", type=float, nargs="+", default=[0.5, 1.0, 2.0],
                        help="SDEdit start noise levels (default: %(default)s)")
    parser.add_argument("--guided-noise-levels", type=float, nargs="*", default=[0.5, 1.0],
                        help="the same with the intact top two thirds kept by the inpaint condition (guided SDEdit)")
    parser.add_argument("--repeated-noise-levels", type=float, nargs="*", default=[0.5],
                        help="guided SDEdit with --corrector, repeated --repeats times (SDEdit's K: noise the result "
                             "back to the level and sample again)")
    parser.add_argument("--corrector", default="langevin", help="corrector of the repeated rows")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--predictor", default="euler")
    parser.add_argument("--num-steps", type=int, default=100)
    parser.add_argument("--encode-images", type=int, default=100)
    parser.add_argument("--tolerance", type=float, default=1e-5)
    parser.add_argument("--eps", type=float, default=1e-3)
    parser.add_argument("--pairs-per-class", type=int, default=2)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/img2img-encoding.json"))
    parser.add_argument("--pictures", default=None, help="also write the guide's strips into this folder")
    parser.add_argument("--repeated-only", action="store_true",
                        help="measure the repeated guided SDEdit rows only and replace that part of the record in "
                             "--out (the other parts stay as they were measured)")
    args = parser.parse_args(argv)
    result = run(args)
    command = "python -m benchmarks.img2img_encoding " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.repeated_only and Path(args.out).is_file():
        record = json.loads(Path(args.out).read_text())
        record["sdedit_repeated"] = {**result["sdedit_repeated"], "command": command,
                                     "load_average": result["load_average"]}
        result = record
    else:
        result["command"] = command
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
