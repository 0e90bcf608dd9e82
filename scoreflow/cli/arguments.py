"""Argument types and the argument groups several commands share; each command group's module adds its own
commands with them (``add_commands``), and :func:`options_from` turns the parsed arguments into the command's
typed option object, so no argparse ``Namespace`` travels past the parser."""

from __future__ import annotations

import argparse
import functools
import json
from typing import Any, TypeVar

import attrs

T = TypeVar("T")


def options_from(cls: type[T], args: argparse.Namespace) -> T:
    """The typed options ``cls`` (an attrs class) of a parsed command line: each field from the argument of that
    name."""
    return cls(**{f.name: getattr(args, f.name) for f in attrs.fields(cls) if f.init})  # type: ignore[arg-type]


def json_object(text: str) -> dict:
    """A JSON object given on the command line."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({exc.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _int_at_least(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    return _int_at_least(text, 0, "non-negative")


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int_at_least(text, 1, "positive")


def optional_float(text: str) -> float | None:
    """A number, or ``none``."""
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def add_command(sub: Any, name: str, options: type, run: Any, **parser_options: Any) -> argparse.ArgumentParser:
    """A subcommand whose parsed arguments become ``options`` (an attrs class, built by :func:`options_from`) and
    are run by ``run(options)``."""
    p = sub.add_parser(name, **parser_options)
    p.set_defaults(make_options=functools.partial(options_from, options), run=run)
    return p


def add_sampler_arguments(p: argparse.ArgumentParser, *, ode: bool = True) -> None:
    """The options of :class:`~scoreflow.cli.sampler_options.SamplerOptions` (with ``ode``, also those of
    probability-flow sampling, :class:`~scoreflow.cli.sampler_options.ODESamplerOptions`)."""
    p.add_argument("--checkpoint", required=True, help="run folder, checkpoint folder or shipped model name")
    p.add_argument("--predictor", default="euler",
                   help="predictor, or whole-trajectory solver (torchsde, ...), name (default: %(default)s)")
    p.add_argument("--corrector", default="langevin", help="corrector name or 'none' (default: %(default)s)")
    p.add_argument("--predictor-options", type=json_object, default={}, help="JSON options for the predictor")
    if ode:
        p.add_argument("--ode-solver", default=None,
                       help="sample with the probability-flow ODE and this solver instead")
        p.add_argument("--ode-denoise", action="store_true",
                       help="end --ode-solver sampling with one Tweedie denoising step at --eps (one more evaluation)")
        p.add_argument("--solver-options", type=json_object, default={},
                       help='JSON options of the --ode-solver, e.g. \'{"num_steps": 20}\' for rk4 (see '
                            '`scoreflow list ode_solver`)')
    p.add_argument("--num-steps", type=positive_int, default=500, help="predictor steps (default: %(default)s)")
    p.add_argument("--snr", type=float, default=0.15,
                   help="corrector signal-to-noise ratio (default: %(default)s, the tutorial's)")
    p.add_argument("--eps", type=float, default=None,
                   help="final time of sampling, in (0, T) (default: the SDE's, 1e-3 for the built-ins)")
    p.add_argument("--schedule", default=None, help="time schedule (see `scoreflow list schedule`; default: the "
                                                    "SDE's, uniform_t for the built-ins)")
    p.add_argument("--schedule-options", type=json_object, default={},
                   help='JSON options of the schedule, e.g. \'{"rho": 7}\' for karras')
    p.add_argument("--start-time", type=float, default=None,
                   help="start sampling here, in (eps, T], from the forward marginal instead of the prior at T "
                        "(truncated sampling; img2img: where the images are noised to; default: T)")
    if ode:
        p.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance of adaptive ODE solvers "
                                                                "(default: %(default)s)")
        p.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance of adaptive ODE solvers "
                                                                "(default: %(default)s)")
    p.add_argument("--n-steps", type=int, default=1, help="corrector steps per level (default: %(default)s)")
    p.add_argument("--resample", type=nonnegative_int, default=0,
                   help="RePaint resampling: redo each block of --resample-jump steps this many more times after "
                        "jumping back by the forward process (helps inpainting; default: %(default)s)")
    p.add_argument("--resample-jump", type=positive_int, default=None,
                   help="steps per resampled block (RePaint's jump length; default: 1)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="samples per batch (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--data-dir", default=None, help="the dataset's folder (default: the dataset's own location; "
                                                    "the folder a checkpoint was trained from is never used)")


def add_guided_sampling_arguments(p: argparse.ArgumentParser) -> None:
    """Sampling many draws, optionally guided toward a class
    (:class:`~scoreflow.cli.sampler_options.GuidedSamplingOptions`)."""
    add_sampler_arguments(p)
    p.add_argument("--num-samples", type=positive_int, default=64, help="how many samples (default: %(default)s)")
    p.add_argument("--class", dest="class_label", type=int, default=None,
                   help="sample this class: classifier-free guidance on a class-conditional checkpoint (trained with "
                        "--class-dropout), classifier guidance with --classifier on any other")
    p.add_argument("--classifier", default=None, help="noise-conditional classifier for --class: a folder from "
                                                      "`scoreflow train-classifier`, or 'mnist' (shipped)")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="guidance scale: classifier-free guidance's w in (1 + w) s(x, t, c) - w s(x, t) (default 0.5; "
                        "0: the conditional model), or classifier guidance's scale (default 1: the exact "
                        "conditional score)")


def add_image_inputs(p: argparse.ArgumentParser, *, out: str, count: int = 16, note: str = "") -> None:
    """The input and output options of the commands that take images (inpaint, img2img, encode, interpolate)."""
    p.add_argument("--images", nargs="+", required=True,
                   help="'test' or 'train' (images of the checkpoint's dataset, see --count/--start) or PNG files"
                        + note)
    p.add_argument("--count", type=positive_int, default=count, help="images of the split (default: %(default)s)")
    p.add_argument("--start", type=int, default=0, help="first image of the split (default: %(default)s)")
    p.add_argument("--out", default=out, help="output folder (default: %(default)s)")
    p.add_argument("--dataset", default=None,
                   help="dataset of the images (default: the run's; needed for a model from a source such as "
                        "diffusers:DIR, which records none)")
