"""The commands on given images: ``inpaint``, ``img2img`` (SDEdit), ``encode`` and ``interpolate``."""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch

from scoreflow.cli.arguments import add_command, add_image_inputs, add_sampler_arguments, positive_int
from scoreflow.cli.loading import OpenedModel, dataset_for, from_unit_range, open_model, to_unit_range, writable_folder
from scoreflow.cli.sampler_options import SamplerOptions, build_sampler
from scoreflow.device import resolve_device
from scoreflow.sampling.sdedit import sdedit
from scoreflow.sde.base import final_time

#: The most SDEdit passes ``img2img --repeats`` takes.
MAX_REPEATS = 100
#: Seed offset between SDEdit passes (block ``i``'s pass ``r`` is seeded ``seed + i + r * stride``).
REPEAT_SEED_STRIDE = 100_000


@attrs.frozen(kw_only=True, slots=False)  # a base of classes with several bases
class ImageInputOptions:
    """Where the images come from (a split of the dataset or PNG files) and where the results go."""

    images: list[str]
    count: int = 16
    start: int = 0
    out: str = "out"
    dataset: str | None = None


@attrs.frozen(kw_only=True)
class InpaintOptions(SamplerOptions, ImageInputOptions):
    """``scoreflow inpaint``: fill in what ``mask`` hides."""

    mask: str


@attrs.frozen(kw_only=True)
class Img2ImgOptions(SamplerOptions, ImageInputOptions):
    """``scoreflow img2img``: SDEdit from ``noise_level`` (or ``start_time``), ``repeats`` passes, optionally
    holding the pixels ``mask`` keeps."""

    noise_level: float | None = None
    mask: str | None = None
    repeats: int = 1


@attrs.frozen(kw_only=True)
class EncodeOptions(ImageInputOptions):
    """``scoreflow encode``: probability-flow latents of the images."""

    checkpoint: str
    solver: str = "dopri5"
    rtol: float = 1e-5
    atol: float = 1e-5
    eps: float = 1e-3
    batch_size: int = 64
    data_dir: str | None = None
    device: str = "cpu"
    no_ema: bool = False
    seed: int = 0


@attrs.frozen(kw_only=True)
class InterpolateOptions(EncodeOptions):
    """``scoreflow interpolate``: ``frames`` decoded along the spherical path between two images' latents."""

    frames: int = 9


def add_commands(sub: Any) -> None:
    """Add ``inpaint``, ``img2img``, ``encode`` and ``interpolate`` to the subcommands ``sub``."""
    p = add_command(sub, "inpaint", InpaintOptions, inpaint,
                    help="fill in masked parts of images with a trained model (Song et al. 2021); writes inpaint.png "
                         "and inpaint.safetensors")
    add_sampler_arguments(p, ode=False)
    add_image_inputs(p, out="inpaint")
    p.add_argument("--mask", required=True, help="bottom-half, top-half, left-half, right-half, center, random:P "
                                                 "(fraction P known) or a PNG (white = known)")
    p = add_command(sub, "img2img", Img2ImgOptions, img2img,
                    help="image-to-image (SDEdit, Meng et al. 2022): noise images to --noise-level (or --start-time) "
                         "and run the reverse process from there; writes img2img.png and img2img.safetensors")
    add_sampler_arguments(p, ode=False)
    add_image_inputs(p, out="img2img")
    p.add_argument("--noise-level", type=float, default=None,
                   help="noise level s(t0) = std/alpha to start from (about 0.5 keeps the layout of [0, 1] images "
                        "and redraws details; the SDE's largest level forgets them); or give --start-time")
    p.add_argument("--mask", default=None,
                   help="guided SDEdit: as inpaint's --mask, the part to redraw (bottom-half, top-half, left-half, "
                        "right-half, center, random:P (fraction P kept) or a PNG, white = kept); the rest keeps the "
                        "given pixels at every step")
    p.add_argument("--repeats", type=positive_int, default=1,
                   help="SDEdit passes: noise the result back to the start and sample again (default: %(default)s)")
    _add_probability_flow_command(sub, "encode", EncodeOptions, encode,
                                  "probability-flow latents of images (the ODE from eps to T) and their "
                                  "reconstruction error; writes latents.safetensors")
    p = _add_probability_flow_command(sub, "interpolate", InterpolateOptions, interpolate,
                                      "decode spherical interpolations between the probability-flow latents of two "
                                      "images; writes interpolation.png and interpolation.safetensors")
    p.add_argument("--frames", type=positive_int, default=9, help="frames, the two ends included "
                                                                  "(default: %(default)s)")


def _add_probability_flow_command(sub: Any, name: str, options: type, run: Any, text: str) -> Any:
    p = add_command(sub, name, options, run, help=text)
    p.add_argument("--checkpoint", required=True, help="run folder, checkpoint folder or shipped model name")
    add_image_inputs(p, out=name, count=16 if name == "encode" else 2,
                     note="; interpolate takes the first two" if name == "interpolate" else "")
    p.add_argument("--solver", default="dopri5", help="ODE solver (default: %(default)s)")
    p.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance (default: %(default)s)")
    p.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance (default: %(default)s)")
    p.add_argument("--eps", type=float, default=1e-3, help="the time the data sit at (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per solve (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="the dataset's folder (default: its own location)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-ema", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return p


def _open_image_model(command: str, checkpoint: str, device: str, no_ema: bool) -> OpenedModel:
    """The checkpoint of an image command, the device checked first; refused unless its samples are images."""
    resolve_device(device)  # before any work
    opened = open_model(checkpoint, device=device, ema=not no_ema)
    if len(opened.data_shape) != 3:
        raise ValueError(f"{command} works on image models; this checkpoint's samples have shape "
                         f"{opened.data_shape}")
    return opened


def _load_images(options: Any, opened: OpenedModel) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The images to work on, in ``[0, 1]``: the first ``count`` of a split of the checkpoint's dataset (or
    ``dataset``) from ``start``, or PNG files."""
    shape = opened.data_shape
    if len(options.images) == 1 and options.images[0] in ("test", "train"):
        data = dataset_for(opened, options.images[0], dataset=options.dataset, data_dir=options.data_dir)
        start = options.start
        if not 0 <= start < len(data):
            raise ValueError(f"--start {start} is outside the {options.images[0]} split of {len(data)} images")
        sl = slice(start, start + options.count)
        return data.x[sl], None if data.labels is None else data.labels[sl]
    return torch.stack([_read_png(p, shape) for p in options.images]), None


def _read_png(path: str, shape: tuple[int, ...]) -> torch.Tensor:
    from scoreflow.data.sources import read_image

    c, h, w = shape
    x = torch.from_numpy(read_image(path, c).copy())
    if tuple(x.shape[:2]) != (h, w):
        raise ValueError(f"{path}: image is {x.shape[1]}x{x.shape[0]}, the model's images are {w}x{h}")
    return x[None] if c == 1 else x.permute(2, 0, 1)


def _mask(spec: str, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    from scoreflow.sampling.conditioning import named_mask

    if spec.lower().endswith(".png"):  # white = known
        return _read_png(spec, (1, *shape[1:])).expand(shape) > 0.5
    return named_mask(spec, shape, generator=torch.Generator().manual_seed(seed))


def inpaint(options: InpaintOptions) -> int:
    """Inpaint the images in batches; write inpaint.safetensors and inpaint.png."""
    from safetensors.torch import save_file

    from scoreflow.pictures import save_rows_png

    opened = _open_image_model("inpaint", options.checkpoint, options.device, options.no_ema)
    model, sde, shape = opened.model, opened.sde, opened.data_shape
    base = build_sampler(options)
    base.check(sde)
    images, labels = _load_images(options, opened)
    mask = _mask(options.mask, shape, options.seed)
    out = writable_folder(options.out)
    results = []
    for i in range(0, len(images), options.batch_size):
        known = from_unit_range(images[i:i + options.batch_size], model).to(options.device)
        sampler = build_sampler(options, condition="inpaint",
                                condition_options={"known": known, "mask": mask.to(options.device)})
        g = torch.Generator(options.device).manual_seed(options.seed + i)
        results.append(sampler.sample(model, sde, tuple(known.shape), generator=g,
                                      progress=not options.no_progress).samples.cpu())
    filled = to_unit_range(torch.cat(results), model)  # pictures and the saved tensors in [0, 1]
    shown = images.clone()
    shown[:, ~mask] = 0.5
    save_file({"images": images.contiguous(), "mask": mask.contiguous(), "inpainted": filled.contiguous(),
               **({} if labels is None else {"labels": labels.contiguous()})}, str(out / "inpaint.safetensors"))
    n = min(len(images), 16)
    save_rows_png([("original", images[:n]), ("input", shown[:n]), ("inpainted", filled[:n])],
                  out / "inpaint.png", title=f"mask {options.mask}, {base.predictor_obj.__class__.__name__} "
                                             f"{base.num_steps} steps")
    print(f"inpainted {len(filled)} images: {out / 'inpaint.png'} and {out / 'inpaint.safetensors'}")
    return 0


def _start_time(options: Img2ImgOptions, sde: Any) -> float:
    """img2img's start: ``--start-time``, or the time at ``--noise-level`` (exactly one of them)."""
    if (options.noise_level is None) == (options.start_time is None):
        raise ValueError("img2img needs exactly one of --noise-level (e.g. 0.5) and --start-time")
    if options.start_time is not None:
        return options.start_time
    levels = sde.noise_level(torch.tensor([sde.T], dtype=torch.float64))
    low = float(sde.noise_level(torch.tensor([final_time(sde)], dtype=torch.float64))[0])
    top = float(levels[0])
    level = options.noise_level
    if not (math.isfinite(level) and low < level <= top):
        raise ValueError(f"--noise-level {level!r} is outside this SDE's noise levels ({low:.4g}, {top:.4g}]")
    return float(sde.time_at_noise_level(torch.tensor([level], dtype=torch.float64))[0])


def img2img(options: Img2ImgOptions) -> int:
    """SDEdit the images in batches (``repeats`` passes each); write img2img.safetensors and img2img.png."""
    opened = _open_image_model("img2img", options.checkpoint, options.device, options.no_ema)
    model, sde = opened.model, opened.sde
    options = attrs.evolve(options, start_time=_start_time(options, sde))
    if isinstance(options.repeats, bool) or not 1 <= options.repeats <= MAX_REPEATS:
        raise ValueError(f"--repeats must lie in [1, {MAX_REPEATS}], got {options.repeats!r}")
    sampler = build_sampler(options)
    sampler.check(sde)
    keep = None if options.mask is None else _mask(options.mask, opened.data_shape, options.seed)  # True: kept
    images, labels = _load_images(options, opened)
    out = writable_folder(options.out)
    results = []
    for i in range(0, len(images), options.batch_size):
        given = from_unit_range(images[i:i + options.batch_size], model).to(options.device)
        if keep is not None:  # guided SDEdit: the kept pixels are the given ones at every step
            sampler = build_sampler(options, condition="inpaint",
                                    condition_options={"known": given, "mask": keep.to(options.device)})
        generators = [torch.Generator(options.device).manual_seed(options.seed + i + REPEAT_SEED_STRIDE * r)
                      for r in range(options.repeats)]  # SDEdit's K: noise the result back to t0 and sample again
        results.append(sdedit(sampler, model, sde, given, generators=generators,
                              progress=not options.no_progress).samples.cpu())
    edited = to_unit_range(torch.cat(results), model)  # pictures and the saved tensors in [0, 1]
    _write_img2img(options, out, sde, sampler, keep is not None, images, edited, labels)
    return 0


def _write_img2img(options: Img2ImgOptions, out: Any, sde: Any, sampler: Any, masked: bool, images: torch.Tensor,
                   edited: torch.Tensor, labels: torch.Tensor | None) -> None:
    from safetensors.torch import save_file

    from scoreflow.pictures import save_rows_png

    start = options.start_time
    level = float(sde.noise_level(torch.tensor([start], dtype=torch.float64))[0])
    save_file({"images": images.contiguous(), "img2img": edited.contiguous(), "start_time": torch.tensor([start]),
               **({} if labels is None else {"labels": labels.contiguous()})}, str(out / "img2img.safetensors"))
    n = min(len(images), 16)
    how = (f"{sampler.predictor_obj.__class__.__name__} {sampler.num_steps} steps"
           + (f", {options.repeats} passes" if options.repeats > 1 else "")
           + (f", mask {options.mask}" if masked else ""))
    save_rows_png([("original", images[:n]), ("img2img", edited[:n])], out / "img2img.png",
                  title=f"from noise level {level:.3g} (t0 = {start:.4g}), {how}")
    print(f"img2img of {len(edited)} images from noise level {level:.4g} (t0 = {start:.4g}, {how}): "
          f"{out / 'img2img.png'} and {out / 'img2img.safetensors'}")


def _probability_flow(options: EncodeOptions, sde: Any) -> Any:
    """The probability-flow sampler (solver, tolerances, ``eps``) of encode and interpolate, built before work."""
    from scoreflow.flow.probability_flow import ProbabilityFlowSampler

    sampler = ProbabilityFlowSampler(solver=options.solver, rtol=options.rtol, atol=options.atol, eps=options.eps)
    sampler.check(sde)
    return sampler


def encode(options: EncodeOptions) -> int:
    """Encode the images in batches, decode them back, report the error; write latents.safetensors."""
    from safetensors.torch import save_file

    from scoreflow.flow.encoding import decode as decode_latents
    from scoreflow.flow.encoding import encode as encode_images

    opened = _open_image_model("encode", options.checkpoint, options.device, options.no_ema)
    images, labels = _load_images(options, opened)
    model, sde = opened.model, opened.sde
    flow = _probability_flow(options, sde)
    out = writable_folder(options.out)
    latents, errors, nfe = [], [], 0
    for i in range(0, len(images), options.batch_size):
        x = from_unit_range(images[i:i + options.batch_size], model).to(options.device)
        enc = encode_images(model, sde, x, sampler=flow)
        back = to_unit_range(decode_latents(model, sde, enc.latents, sampler=flow).samples, model)
        latents.append(enc.latents.cpu())
        errors.append((back.cpu() - images[i:i + options.batch_size]).abs().flatten(1).mean(1))
        nfe = max(nfe, enc.nfe)
    z, error = torch.cat(latents), torch.cat(errors)
    save_file({"images": images.contiguous(), "latents": z.contiguous(), "reconstruction_error": error.contiguous(),
               **({} if labels is None else {"labels": labels.contiguous()})}, str(out / "latents.safetensors"))
    print(f"encoded {len(z)} images ({options.solver}, up to {nfe} evaluations each): latent mean "
          f"{float(z.mean()):.4f}, std {float(z.std()):.4f}; decoding them back differs by {float(error.mean()):.2e} "
          f"per pixel on average (in [0, 1]): {out / 'latents.safetensors'}")
    return 0


def interpolate(options: InterpolateOptions) -> int:
    """Decode ``frames`` spherical interpolations between two images' latents; write interpolation.png and
    interpolation.safetensors."""
    from safetensors.torch import save_file

    from scoreflow.flow.encoding import MAX_FRAMES
    from scoreflow.flow.encoding import interpolate as interpolate_latents
    from scoreflow.pictures import save_rows_png

    if not 2 <= options.frames <= MAX_FRAMES:
        raise ValueError(f"--frames must lie in [2, {MAX_FRAMES}] (the two ends included), got {options.frames}")
    opened = _open_image_model("interpolate", options.checkpoint, options.device, options.no_ema)
    images, _ = _load_images(options, opened)
    files = not (len(options.images) == 1 and options.images[0] in ("test", "train"))
    if len(images) < 2 or (files and len(images) != 2):
        raise ValueError(f"interpolate needs two images (two PNG files, or a split's --start and the next), got "
                         f"{len(images)}")
    model, sde = opened.model, opened.sde
    flow = _probability_flow(options, sde)
    out = writable_folder(options.out)
    pair = from_unit_range(images[:2], model).to(options.device)
    res = interpolate_latents(model, sde, pair[0], pair[1], options.frames, sampler=flow)
    frames = to_unit_range(res.samples.cpu(), model)
    save_file({"images": images[:2].contiguous(), "frames": frames.contiguous()},
              str(out / "interpolation.safetensors"))
    save_rows_png([("frames", frames)], out / "interpolation.png",
                  title=f"probability-flow latents interpolated spherically ({options.solver})")
    print(f"interpolated {options.frames} frames ({res.nfe} evaluations): {out / 'interpolation.png'} and "
          f"{out / 'interpolation.safetensors'}")
    return 0
