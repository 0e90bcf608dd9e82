"""What ``scoreflow train-classifier``, ``inpaint``, ``img2img``, ``encode`` and ``interpolate`` do."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch

from scoreflow.cli.commands import (OpenedModel, _dataset_from_checkpoint, _sampler_from_args, checkpoint_location,
                                    from_unit_range, open_model, to_unit_range, writable_folder)
from scoreflow.device import resolve_device


def train_classifier(args: argparse.Namespace) -> int:
    from scoreflow.training import load_trained
    from scoreflow.training.classifier import accuracy_by_noise_level, save_classifier, train_noise_classifier

    resolve_device(args.device)  # before any work
    out = Path(args.out)
    if (out / "classifier.json").exists() and not args.overwrite:
        raise ValueError(f"{str(out)!r} already holds a classifier; give --overwrite to replace it")
    writable_folder(out)
    args.checkpoint = checkpoint_location(args.checkpoint)
    _, sde, cfg = load_trained(args.checkpoint, ema=False, device="cpu")  # the run's SDE and dataset
    train, test = _dataset_from_checkpoint(args, "train"), _dataset_from_checkpoint(args, "test")
    eps = cfg.eps if args.eps is None else args.eps
    model, options = train_noise_classifier(train, sde, model=args.model, model_options=args.model_options,
                                            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, eps=eps,
                                            seed=args.seed, device=args.device, progress=not args.no_progress)
    accuracy = accuracy_by_noise_level(model.cpu(), test, seed=args.seed)
    info = {"dataset": cfg.dataset, "data_shape": list(train.sample_shape), "epochs": args.epochs,
            "sde": cfg.sde, "sde_options": cfg.sde_options, "eps": eps, "trained_from": str(args.checkpoint),
            "test_accuracy_by_noise_level": accuracy}
    save_classifier(out, model, name=args.model, options=options, info=info)
    print(json.dumps({"test_accuracy_by_noise_level": accuracy}, indent=2))
    print(f"wrote {out / 'classifier.safetensors'} and {out / 'classifier.json'}")
    return 0


def _load_images(args: argparse.Namespace, opened: OpenedModel) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The images to inpaint, in ``[0, 1]``: the first ``--count`` of a split of the checkpoint's dataset (or
    ``--dataset``), or PNG files."""
    shape = opened.data_shape
    if len(args.images) == 1 and args.images[0] in ("test", "train"):
        data = _dataset_from_checkpoint(args, args.images[0], opened)
        start = args.start
        if not 0 <= start < len(data):
            raise ValueError(f"--start {start} is outside the {args.images[0]} split of {len(data)} images")
        sl = slice(start, start + args.count)
        return data.x[sl], None if data.labels is None else data.labels[sl]
    return torch.stack([_read_png(p, shape) for p in args.images]), None


def _read_png(path: str, shape: tuple[int, ...]) -> torch.Tensor:
    from scoreflow.data.sources import read_image

    c, h, w = shape
    x = torch.from_numpy(read_image(path, c).copy())
    if tuple(x.shape[:2]) != (h, w):
        raise ValueError(f"{path}: image is {x.shape[1]}x{x.shape[0]}, the model's images are {w}x{h}")
    return x[None] if c == 1 else x.permute(2, 0, 1)


#: The most SDEdit passes ``img2img --repeats`` takes.
MAX_REPEATS = 100
#: Seed offset between SDEdit passes (block ``i``'s pass ``r`` is seeded ``seed + i + r * stride``).
REPEAT_SEED_STRIDE = 100_000


def _mask(spec: str, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    from scoreflow.sampling.conditioning import named_mask

    if spec.lower().endswith(".png"):  # white = known
        return _read_png(spec, (1, *shape[1:])).expand(shape) > 0.5
    return named_mask(spec, shape, generator=torch.Generator().manual_seed(seed))


def _open_image_model(args: argparse.Namespace) -> OpenedModel:
    """The checkpoint of an image command (inpaint, img2img, encode, interpolate), the device checked first;
    refused unless its samples are images."""
    resolve_device(args.device)  # before any work
    args.checkpoint_given = args.checkpoint
    opened = open_model(args)
    if len(opened.data_shape) != 3:
        raise ValueError(f"{args.command} works on image models; this checkpoint's samples have shape "
                         f"{opened.data_shape}")
    return opened


def inpaint(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from scoreflow.pictures import save_rows_png

    opened = _open_image_model(args)
    model, sde, shape = opened.model, opened.sde, opened.data_shape
    args.ode_solver = None
    base = _sampler_from_args(args)
    base.check(sde)
    images, labels = _load_images(args, opened)
    mask = _mask(args.mask, shape, args.seed)
    out = writable_folder(args.out)
    results = []
    for i in range(0, len(images), args.batch_size):
        known = from_unit_range(images[i:i + args.batch_size], model).to(args.device)
        sampler = _sampler_from_args(args, condition="inpaint",
                                     condition_options={"known": known, "mask": mask.to(args.device)})
        g = torch.Generator(args.device).manual_seed(args.seed + i)
        results.append(sampler.sample(model, sde, tuple(known.shape), generator=g,
                                      progress=not args.no_progress).samples.cpu())
    filled = to_unit_range(torch.cat(results), model)  # pictures and the saved tensors in [0, 1]
    shown = images.clone()
    shown[:, ~mask] = 0.5
    save_file({"images": images.contiguous(), "mask": mask.contiguous(), "inpainted": filled.contiguous(),
               **({} if labels is None else {"labels": labels.contiguous()})}, str(out / "inpaint.safetensors"))
    n = min(len(images), 16)
    save_rows_png([("original", images[:n]), ("input", shown[:n]), ("inpainted", filled[:n])],
                  out / "inpaint.png", title=f"mask {args.mask}, {base.predictor_obj.__class__.__name__} "
                                             f"{base.num_steps} steps")
    print(f"inpainted {len(filled)} images: {out / 'inpaint.png'} and {out / 'inpaint.safetensors'}")
    return 0


def _start_time(args: argparse.Namespace, sde: Any) -> float:
    """img2img's start: ``--start-time``, or the time at ``--noise-level`` (exactly one of them)."""
    if (args.noise_level is None) == (args.start_time is None):
        raise ValueError("img2img needs exactly one of --noise-level (e.g. 0.5) and --start-time")
    if args.start_time is not None:
        return args.start_time
    levels = sde.noise_level(torch.tensor([sde.T], dtype=torch.float64))
    low = float(sde.noise_level(torch.tensor([float(getattr(sde, "default_eps", 1e-3))], dtype=torch.float64))[0])
    top = float(levels[0])
    if not (math.isfinite(args.noise_level) and low < args.noise_level <= top):
        raise ValueError(f"--noise-level {args.noise_level!r} is outside this SDE's noise levels ({low:.4g}, {top:.4g}]")
    return float(sde.time_at_noise_level(torch.tensor([args.noise_level], dtype=torch.float64))[0])


def img2img(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from scoreflow.pictures import save_rows_png

    opened = _open_image_model(args)
    model, sde = opened.model, opened.sde
    args.start_time = _start_time(args, sde)
    if isinstance(args.repeats, bool) or not 1 <= args.repeats <= MAX_REPEATS:
        raise ValueError(f"--repeats must lie in [1, {MAX_REPEATS}], got {args.repeats!r}")
    sampler = _sampler_from_args(args)
    sampler.check(sde)
    keep = None if args.mask is None else _mask(args.mask, opened.data_shape, args.seed)  # True: kept
    images, labels = _load_images(args, opened)
    out = writable_folder(args.out)
    results = []
    for i in range(0, len(images), args.batch_size):
        given = from_unit_range(images[i:i + args.batch_size], model).to(args.device)
        if keep is not None:  # guided SDEdit: the kept pixels are the given ones at every step
            sampler = _sampler_from_args(args, condition="inpaint",
                                         condition_options={"known": given, "mask": keep.to(args.device)})
        x = given
        for r in range(args.repeats):  # SDEdit's K: noise the result back to t0 and sample again
            g = torch.Generator(args.device).manual_seed(args.seed + i + REPEAT_SEED_STRIDE * r)
            x = sampler.sample(model, sde, tuple(given.shape), images=x, generator=g,
                               progress=not args.no_progress).samples
        results.append(x.cpu())
    edited = to_unit_range(torch.cat(results), model)  # pictures and the saved tensors in [0, 1]
    level = float(sde.noise_level(torch.tensor([args.start_time], dtype=torch.float64))[0])
    save_file({"images": images.contiguous(), "img2img": edited.contiguous(),
               "start_time": torch.tensor([args.start_time]),
               **({} if labels is None else {"labels": labels.contiguous()})}, str(out / "img2img.safetensors"))
    n = min(len(images), 16)
    how = (f"{sampler.predictor_obj.__class__.__name__} {sampler.num_steps} steps"
           + (f", {args.repeats} passes" if args.repeats > 1 else "") + (f", mask {args.mask}" if keep is not None
                                                                         else ""))
    save_rows_png([("original", images[:n]), ("img2img", edited[:n])], out / "img2img.png",
                  title=f"from noise level {level:.3g} (t0 = {args.start_time:.4g}), {how}")
    print(f"img2img of {len(edited)} images from noise level {level:.4g} (t0 = {args.start_time:.4g}, {how}): "
          f"{out / 'img2img.png'} and {out / 'img2img.safetensors'}")
    return 0


def _opened_images(args: argparse.Namespace) -> tuple[OpenedModel, torch.Tensor, torch.Tensor | None]:
    opened = _open_image_model(args)
    images, labels = _load_images(args, opened)
    return opened, images, labels


def _ode_options(args: argparse.Namespace, sde: Any) -> dict[str, Any]:
    from scoreflow.flow.probability_flow import resolve_solver
    from scoreflow.validators import check_eps

    check_eps(args.eps, sde.T)
    resolve_solver(args.solver, rtol=args.rtol, atol=args.atol)  # an unknown solver or option fails before work
    return {"solver": args.solver, "rtol": args.rtol, "atol": args.atol, "eps": args.eps}


def encode(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from scoreflow.flow.encoding import decode as decode_latents
    from scoreflow.flow.encoding import encode as encode_images

    opened, images, labels = _opened_images(args)
    model, sde = opened.model, opened.sde
    options = _ode_options(args, sde)
    out = writable_folder(args.out)
    latents, errors, nfe = [], [], 0
    for i in range(0, len(images), args.batch_size):
        x = from_unit_range(images[i:i + args.batch_size], model).to(args.device)
        enc = encode_images(model, sde, x, **options)
        back = to_unit_range(decode_latents(model, sde, enc.latents, **options).samples, model)
        latents.append(enc.latents.cpu())
        errors.append((back.cpu() - images[i:i + args.batch_size]).abs().flatten(1).mean(1))
        nfe = max(nfe, enc.nfe)
    z, error = torch.cat(latents), torch.cat(errors)
    save_file({"images": images.contiguous(), "latents": z.contiguous(), "reconstruction_error": error.contiguous(),
               **({} if labels is None else {"labels": labels.contiguous()})}, str(out / "latents.safetensors"))
    print(f"encoded {len(z)} images ({args.solver}, up to {nfe} evaluations each): latent mean {float(z.mean()):.4f}, "
          f"std {float(z.std()):.4f}; decoding them back differs by {float(error.mean()):.2e} per pixel on average "
          f"(in [0, 1]): {out / 'latents.safetensors'}")
    return 0


def interpolate(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from scoreflow.flow.encoding import MAX_FRAMES
    from scoreflow.flow.encoding import interpolate as interpolate_latents
    from scoreflow.pictures import save_rows_png

    if not 2 <= args.frames <= MAX_FRAMES:
        raise ValueError(f"--frames must lie in [2, {MAX_FRAMES}] (the two ends included), got {args.frames}")
    opened, images, _ = _opened_images(args)
    files = not (len(args.images) == 1 and args.images[0] in ("test", "train"))
    if len(images) < 2 or (files and len(images) != 2):
        raise ValueError(f"interpolate needs two images (two PNG files, or a split's --start and the next), got "
                         f"{len(images)}")
    model, sde = opened.model, opened.sde
    options = _ode_options(args, sde)
    out = writable_folder(args.out)
    pair = from_unit_range(images[:2], model).to(args.device)
    res = interpolate_latents(model, sde, pair[0], pair[1], args.frames, **options)
    frames = to_unit_range(res.samples.cpu(), model)
    save_file({"images": images[:2].contiguous(), "frames": frames.contiguous()}, str(out / "interpolation.safetensors"))
    save_rows_png([("frames", frames)], out / "interpolation.png",
                  title=f"probability-flow latents interpolated spherically ({args.solver})")
    print(f"interpolated {args.frames} frames ({res.nfe} evaluations): {out / 'interpolation.png'} and "
          f"{out / 'interpolation.safetensors'}")
    return 0


__all__ = ["encode", "img2img", "inpaint", "interpolate", "train_classifier"]
