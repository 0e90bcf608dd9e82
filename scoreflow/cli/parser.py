"""The ``scoreflow`` command line (also ``python -m scoreflow``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs

TRAIN_HELP = {
    "dataset": "dataset name (see `scoreflow list dataset`)",
    "data_dir": "folder with the dataset's files (MNIST IDX files, images for 'folder')",
    "dataset_options": "JSON object of extra dataset options",
    "init_from": "start from another run's weights (fine-tuning): a run or checkpoint folder, or pretrained:NAME",
    "model": "score network name (see `scoreflow list score_net`)",
    "model_options": 'JSON object of network options, e.g. \'{"channels": [32, 64, 128, 256]}\'',
    "sde": "SDE name (see `scoreflow list sde`)",
    "sde_options": 'JSON object of SDE options, e.g. \'{"sigma_min": 0.01, "sigma_max": 22}\' (the seed tutorial\'s)',
    "preconditioning": "none (the network's output as it declares) or edm (c_skip, c_out, c_in, c_noise)",
    "sigma_data": "the data's standard deviation, for edm preconditioning and weighting",
    "weighting": "loss weighting: sigma2 (the tutorial's), likelihood (g^2) or edm (log-normal noise levels)",
    "importance_sampling": "with --weighting likelihood, sample t in proportion to the weight",
    "weighting_options": "JSON object of a plugin weighting's options (see `scoreflow list weighting`)",
    "p_mean": "with --weighting edm, the mean of ln(noise level)",
    "p_std": "with --weighting edm, the standard deviation of ln(noise level)",
    "steps": "total optimisation steps (ignored when --epochs is given)",
    "epochs": "passes over the training data, each a fresh shuffle (overrides --steps)",
    "batch_size": "global batch size (split across torchrun processes)",
    "lr": "learning rate",
    "optimizer": "adam or adamw",
    "weight_decay": "weight decay",
    "warmup": "linear learning-rate warm-up steps",
    "grad_clip": "gradient-norm clip ('none' to disable)",
    "ema_decay": "EMA decay of the weights used for sampling",
    "amp": "bfloat16 autocast (mixed precision) where the device supports it",
    "seed": "seed of initialisation, batches and noise (same seed, same run)",
    "eps": "smallest training time t",
    "dequantize": "uniform dequantization over the dataset's quantization levels (256 for 8-bit images)",
    "device": "cpu, cuda, cuda:1, ...",
    "checkpoint_every": "also checkpoint every N steps (0: only at the end)",
    "log_every": "record the loss every N steps",
    "keep_last": "keep only the newest N checkpoints (0: keep all)",
    "class_dropout": "train a class-conditional network for classifier-free guidance on the dataset's labels, "
                     "dropping each label with this probability (e.g. 0.1; 'none': unconditional)",
}


def _json_object(text: str) -> dict:
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


def _nonnegative_int(text: str) -> int:
    return _int_at_least(text, 0, "non-negative")


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1, "positive")


def _optional_float(text: str) -> float | None:
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def _add_train(sub) -> None:
    from scoreflow.training import TrainConfig

    p = sub.add_parser("train", help="train a score network (denoising score matching)",
                       description="Every option can also be set in a TOML file given with --config.")
    p.add_argument("--preset", help="start from a shipped preset (see `scoreflow presets`); --config and "
                                    "command-line options override it")
    p.add_argument("--config", help="TOML file with training options (command-line options override it)")
    p.add_argument("--out", required=True, help="run folder: checkpoints/, loss.png")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out (its checkpoints "
                                                            "are deleted); without it or --resume that is an error")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    for field in attrs.fields(TrainConfig):
        default = field.default.factory() if isinstance(field.default, attrs.Factory) else field.default
        flag = "--" + field.name.replace("_", "-")
        kwargs: dict = {"default": argparse.SUPPRESS, "help": f"{TRAIN_HELP[field.name]} (default: {default})"}
        if field.name.endswith("_options"):
            kwargs["type"] = _json_object
        elif isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif field.name in ("grad_clip", "class_dropout"):
            kwargs["type"] = _optional_float
        elif field.name == "epochs":
            kwargs["type"] = _positive_int
        elif isinstance(default, (int, float)):
            kwargs["type"] = type(default)
        p.add_argument(flag, dest=field.name, **kwargs)
    p.set_defaults(func=_run("train"))


def _add_sampler_options(p: argparse.ArgumentParser, *, ode: bool = True) -> None:
    """The options that build a :class:`~scoreflow.Sampler` (and, with ``ode``, probability-flow sampling)."""
    p.add_argument("--checkpoint", required=True, help="run folder, checkpoint folder or shipped model name")
    p.add_argument("--predictor", default="euler",
                   help="predictor, or whole-trajectory solver (torchsde, ...), name (default: %(default)s)")
    p.add_argument("--corrector", default="langevin", help="corrector name or 'none' (default: %(default)s)")
    p.add_argument("--predictor-options", type=_json_object, default={}, help="JSON options for the predictor")
    if ode:
        p.add_argument("--ode-solver", default=None,
                       help="sample with the probability-flow ODE and this solver instead")
        p.add_argument("--ode-denoise", action="store_true",
                       help="end --ode-solver sampling with one Tweedie denoising step at --eps (one more evaluation)")
        p.add_argument("--solver-options", type=_json_object, default={},
                       help='JSON options of the --ode-solver, e.g. \'{"num_steps": 20}\' for rk4 (see '
                            '`scoreflow list ode_solver`)')
    p.add_argument("--num-steps", type=_positive_int, default=500, help="predictor steps (default: %(default)s)")
    p.add_argument("--snr", type=float, default=0.15,
                   help="corrector signal-to-noise ratio (default: %(default)s, the tutorial's)")
    p.add_argument("--eps", type=float, default=None,
                   help="final time of sampling, in (0, T) (default: the SDE's, 1e-3 for the built-ins)")
    p.add_argument("--schedule", default=None, help="time schedule (see `scoreflow list schedule`; default: the "
                                                    "SDE's, uniform_t for the built-ins)")
    p.add_argument("--schedule-options", type=_json_object, default={},
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
    p.add_argument("--resample", type=_nonnegative_int, default=0,
                   help="RePaint resampling: redo each block of --resample-jump steps this many more times after "
                        "jumping back by the forward process (helps inpainting; default: %(default)s)")
    p.add_argument("--resample-jump", type=_positive_int, default=None,
                   help="steps per resampled block (RePaint's jump length; default: 1)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="samples per batch (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--data-dir", default=None, help="the dataset's folder (default: the dataset's own location; "
                                                    "the folder a checkpoint was trained from is never used)")


def _add_image_inputs(p: argparse.ArgumentParser, *, out: str, count: int = 16, note: str = "") -> None:
    """The input and output options of the commands that take images (inpaint, img2img, encode, interpolate)."""
    p.add_argument("--images", nargs="+", required=True,
                   help="'test' or 'train' (images of the checkpoint's dataset, see --count/--start) or PNG files"
                        + note)
    p.add_argument("--count", type=_positive_int, default=count, help="images of the split (default: %(default)s)")
    p.add_argument("--start", type=int, default=0, help="first image of the split (default: %(default)s)")
    p.add_argument("--out", default=out, help="output folder (default: %(default)s)")
    p.add_argument("--dataset", default=None,
                   help="dataset of the images (default: the run's; needed for a model from a source such as "
                        "diffusers:DIR, which records none)")


def _add_sampling_options(p: argparse.ArgumentParser) -> None:
    _add_sampler_options(p)
    p.add_argument("--num-samples", type=_positive_int, default=64, help="how many samples (default: %(default)s)")
    p.add_argument("--class", dest="class_label", type=int, default=None,
                   help="sample this class: classifier-free guidance on a class-conditional checkpoint (trained with "
                        "--class-dropout), classifier guidance with --classifier on any other")
    p.add_argument("--classifier", default=None, help="noise-conditional classifier for --class: a folder from "
                                                      "`scoreflow train-classifier`, or 'mnist' (shipped)")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="guidance scale: classifier-free guidance's w in (1 + w) s(x, t, c) - w s(x, t) (default 0.5; "
                        "0: the conditional model), or classifier guidance's scale (default 1: the exact "
                        "conditional score)")


def _run(name: str):
    def call(args: argparse.Namespace) -> int:
        from scoreflow.cli import commands

        return getattr(commands, name)(args)

    return call


def _run_conditional(name: str):
    def call(args: argparse.Namespace) -> int:
        from scoreflow.cli import conditional_commands

        return getattr(conditional_commands, name)(args)

    return call


def _cmd_bench(args: argparse.Namespace) -> int:
    """``scoreflow bench ARGS`` is ``python -m benchmarks ARGS``: the importable benchmarks package, else the
    ``benchmarks/`` folder of the source checkout this scoreflow is installed from (run in a child process whose
    working folder is the checkout; this process's import path is never changed)."""
    import importlib.util
    import subprocess
    from pathlib import Path

    if importlib.util.find_spec("benchmarks") is not None:
        from benchmarks.__main__ import main as bench_main

        bench_main(args.bench_args)
        return 0
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "benchmarks" / "__main__.py").is_file():
        raise FileNotFoundError(
            "scoreflow bench runs the benchmarks/ folder of a scoreflow source checkout, which this "
            f"installation ({checkout}) does not have: clone the repository and pip install -e it")
    return subprocess.run([sys.executable, "-m", "benchmarks", *args.bench_args], cwd=checkout).returncode


def _cmd_plugins(args: argparse.Namespace) -> int:
    from scoreflow.plugins import get_host

    rows = get_host().plugins()
    if args.json:
        print(json.dumps([attrs.asdict(r) for r in rows], indent=2))
        return 0
    for r in rows:
        version = f" {r.version}" if r.version else ""
        dist = f" [{r.distribution}{version}]" if r.distribution else ""
        print(f"{r.name}{dist}")
        for kind, names in r.components.items():
            print(f"  {kind}: {', '.join(names)}")
        if r.failure:
            print(f"  FAILED: {r.failure}")
    return 0


def _cmd_import_checkpoint(args: argparse.Namespace) -> int:
    from scoreflow.pretrained.tutorial_import import import_tutorial_checkpoint

    folder = import_tutorial_checkpoint(args.path, args.out, sigma=args.sigma, sigma_min=args.sigma_min,
                                        sigma_max=args.sigma_max, overwrite=args.overwrite)
    print(f"wrote {folder}; sample it with: scoreflow sample --checkpoint {args.out} --no-ema")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from scoreflow.training.presets import available_presets, load_preset

    for name in available_presets():
        preset = load_preset(name)
        print(f"{name}  {preset.description}")
        if args.verbose:
            for key, value in preset.train.items():
                print(f"    {key} = {value!r}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from scoreflow.plugins import get_host

    for entry in get_host().registry(args.kind).entries():
        aliases = f" (aliases: {', '.join(entry.aliases)})" if entry.aliases else ""
        print(f"{entry.qualified_name}{aliases}  {entry.summary}")
    return 0


def _cmd_oracle_demo(args: argparse.Namespace) -> int:
    from scoreflow.cli.oracle_demo import run_demo

    run_demo(Path(args.out), num_samples=args.num_samples, num_steps=args.num_steps, seed=args.seed)
    print((Path(args.out) / "report.md").read_text())
    print(f"wrote {Path(args.out) / 'samples.png'} and {Path(args.out) / 'report.md'}")
    return 0


def _cmd_plugin_new(args: argparse.Namespace) -> int:
    from scoreflow.cli.commands import writable_folder
    from scoreflow.cli.plugin_template import new_plugin

    writable_folder(args.out)
    root = new_plugin(args.name, args.out)
    print(f"wrote {root}; next: pip install -e {root} && pytest {root / 'tests'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from scoreflow.cli.mnist_demo import DEMO_MODELS
    from scoreflow.evaluation.calibration import DEFAULT_NOISE_LEVELS, SLOPE_MARGIN
    from scoreflow.plugins import KINDS

    parser = argparse.ArgumentParser(prog="scoreflow", description="Score-based generative modeling through SDEs.")
    parser.add_argument("--no-plugins", action="store_true",
                        help="load no third-party plugins (also: SCOREFLOW_DISABLE_PLUGIN_AUTOLOAD=1)")
    parser.add_argument("--block-plugin", action="append", default=[], metavar="NAME",
                        help="skip this plugin; repeatable (also: SCOREFLOW_BLOCKED_PLUGINS=a,b)")
    parser.add_argument("--strict-plugins", action="store_true",
                        help="a plugin that fails to load is an error (also: SCOREFLOW_STRICT_PLUGINS=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plugins", help="list loaded plugins, their versions, components and failures")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_plugins)
    p = sub.add_parser("list", help="list the registered components of one kind")
    p.add_argument("kind", choices=KINDS)
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("import-checkpoint", help="import a tutorial notebook's ckpt.pth (ScoreNet state_dict) "
                                                 "as a scoreflow run (loaded with weights_only: no code runs)")
    p.add_argument("path", help="the notebook's ckpt.pth (the seed tutorial's or Song's Colab, told apart by "
                                "its weights)")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--sigma-min", type=float, default=0.01,
                   help="the seed tutorial's sigma_min (default: %(default)s)")
    p.add_argument("--sigma-max", type=float, default=22.0,
                   help="the seed tutorial's sigma_max (default: %(default)s)")
    p.add_argument("--sigma", type=float, default=25.0,
                   help="Song's Colab's sigma in dx = sigma^t dw (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.set_defaults(func=_cmd_import_checkpoint)
    p = sub.add_parser("presets", help="list the shipped training presets (scoreflow train --preset NAME)")
    p.add_argument("-v", "--verbose", action="store_true", help="also print every option of each preset")
    p.set_defaults(func=_cmd_presets)
    _add_train(sub)
    p = sub.add_parser("sample", help="sample from a checkpoint; writes samples.png and samples.safetensors")
    _add_sampling_options(p)
    p.add_argument("--out", default="samples", help="output folder (default: %(default)s)")
    p.set_defaults(func=_run("sample"))
    p = sub.add_parser("train-classifier", help="train a noise-conditional classifier on a run's dataset and SDE "
                                                "(for sample --class)")
    p.add_argument("--checkpoint", required=True, help="run folder, checkpoint or shipped model: its SDE and dataset")
    p.add_argument("--out", required=True, help="classifier folder (classifier.safetensors + classifier.json)")
    p.add_argument("--overwrite", action="store_true", help="replace a classifier already in --out")
    p.add_argument("--model", default="conv", help="classifier name (see `scoreflow list classifier`; default: "
                                                   "%(default)s)")
    p.add_argument("--model-options", type=_json_object, default={}, help="JSON options of the classifier")
    p.add_argument("--epochs", type=_positive_int, default=5, help="passes over the data (default: %(default)s)")
    p.add_argument("--batch-size", type=_positive_int, default=128, help="batch size (default: %(default)s)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--eps", type=float, default=None, help="smallest training time (default: the run's)")
    p.add_argument("--data-dir", default=None, help="the dataset's folder (default: the dataset's own location)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run_conditional("train_classifier"))
    p = sub.add_parser("inpaint", help="fill in masked parts of images with a trained model (Song et al. 2021); "
                                       "writes inpaint.png and inpaint.safetensors")
    _add_sampler_options(p, ode=False)
    _add_image_inputs(p, out="inpaint")
    p.add_argument("--mask", required=True, help="bottom-half, top-half, left-half, right-half, center, random:P "
                                                 "(fraction P known) or a PNG (white = known)")
    p.set_defaults(func=_run_conditional("inpaint"))
    p = sub.add_parser("img2img", help="image-to-image (SDEdit, Meng et al. 2022): noise images to --noise-level "
                                       "(or --start-time) and run the reverse process from there; writes "
                                       "img2img.png and img2img.safetensors")
    _add_sampler_options(p, ode=False)
    _add_image_inputs(p, out="img2img")
    p.add_argument("--noise-level", type=float, default=None,
                   help="noise level s(t0) = std/alpha to start from (about 0.5 keeps the layout of [0, 1] images "
                        "and redraws details; the SDE's largest level forgets them); or give --start-time")
    p.add_argument("--mask", default=None,
                   help="guided SDEdit: as inpaint's --mask, the part to redraw (bottom-half, top-half, left-half, "
                        "right-half, center, random:P (fraction P kept) or a PNG, white = kept); the rest keeps the "
                        "given pixels at every step")
    p.add_argument("--repeats", type=_positive_int, default=1,
                   help="SDEdit passes: noise the result back to the start and sample again (default: %(default)s)")
    p.set_defaults(func=_run_conditional("img2img"))
    for name, text in (("encode", "probability-flow latents of images (the ODE from eps to T) and their reconstruction "
                                  "error; writes latents.safetensors"),
                       ("interpolate", "decode spherical interpolations between the probability-flow latents of two "
                                       "images; writes interpolation.png and interpolation.safetensors")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--checkpoint", required=True, help="run folder, checkpoint folder or shipped model name")
        _add_image_inputs(p, out=name, count=16 if name == "encode" else 2,
                          note="; interpolate takes the first two" if name == "interpolate" else "")
        if name == "interpolate":
            p.add_argument("--frames", type=_positive_int, default=9, help="frames, the two ends included "
                                                                          "(default: %(default)s)")
        p.add_argument("--solver", default="dopri5", help="ODE solver (default: %(default)s)")
        p.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance (default: %(default)s)")
        p.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance (default: %(default)s)")
        p.add_argument("--eps", type=float, default=1e-3, help="the time the data sit at (default: %(default)s)")
        p.add_argument("--batch-size", type=_positive_int, default=64, help="images per solve (default: %(default)s)")
        p.add_argument("--data-dir", default=None, help="the dataset's folder (default: its own location)")
        p.add_argument("--device", default="cpu")
        p.add_argument("--no-ema", action="store_true")
        p.add_argument("--seed", type=int, default=0)
        p.set_defaults(func=_run_conditional(name))
    p = sub.add_parser("tune-schedule", help="tune time grids for one sampler and NFE budgets on a model "
                                             "(stored with the run; sample with --schedule tuned)")
    p.add_argument("--checkpoint", required=True, help="run folder, checkpoint folder or shipped model name")
    p.add_argument("--nfe", type=_positive_int, nargs="+", required=True, help="budgets of score evaluations")
    p.add_argument("--predictor", default="ipndm", help="a deterministic (ODE) predictor (default: %(default)s)")
    p.add_argument("--predictor-options", type=_json_object, default={}, help="JSON options for the predictor")
    p.add_argument("--trajectories", type=_positive_int, default=128,
                   help="warm-up draws solved accurately (default: %(default)s)")
    p.add_argument("--fine-steps", type=_positive_int, default=128, help="fine grid for the GITS start "
                                                                          "(default: %(default)s)")
    p.add_argument("--sweeps", type=_positive_int, default=8, help="rounds of the search (default: %(default)s)")
    p.add_argument("--eps", type=float, default=None, help="final time (default: the SDE's)")
    p.add_argument("--out", default=None, help="JSON file (default: tuned-schedules.json in the run folder)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-ema", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run("tune_schedule"))
    p = sub.add_parser("likelihood", help="bits/dim of a dataset split under a checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--split", choices=("train", "test"), default="test")
    p.add_argument("--max-samples", type=_positive_int, default=None, help="only the first N samples")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--estimator", choices=("gaussian", "rademacher", "exact"), default="gaussian")
    p.add_argument("--n-probes", type=_positive_int, default=1)
    p.add_argument("--method", choices=("ode", "exponential"), default="ode",
                   help="ode: solve the augmented ODE with --solver; exponential: --num-steps (default 20) steps of a "
                        "third-order exponential integrator in the log noise level, the fast setting (default: "
                        "%(default)s)")
    p.add_argument("--solver", default=None, help="ODE solver of --method ode (default: dopri5)")
    p.add_argument("--rtol", type=float, default=None, help="relative tolerance of --method ode (default: 1e-5)")
    p.add_argument("--atol", type=float, default=None, help="absolute tolerance of --method ode (default: 1e-5)")
    p.add_argument("--logp-atol", type=float, default=None,
                   help="absolute tolerance of the log-density integral in nats (default: --rtol/--atol as for x)")
    p.add_argument("--num-steps", type=_positive_int, default=None, help="steps of a fixed-grid --solver (rk4) or of --method exponential")
    p.add_argument("--time-variable", choices=("t", "log_sigma"), default=None,
                   help="integrate in t (the tutorial's way) or in the log noise level (default: t)")
    p.add_argument("--eps", type=float, default=None,
                   help="smallest time of the ODE integral, in (0, T) (default: the run's training eps, as both "
                        "tutorial notebooks do: 1e-3 for mnist-tutorial, 1e-5 for mnist-sigma25)")
    p.add_argument("--dataset", default=None,
                   help="dataset to measure (default: the run's; needed for a model from a source such as "
                        "diffusers:DIR, which records none)")
    p.add_argument("--dequantize", action=argparse.BooleanOptionalAction, default=None,
                   help="uniform dequantization over the dataset's quantization levels (256 for 8-bit images, 17 "
                        "for digits), with bits/dim of the discrete data (default: on for quantized data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None, help="the dataset's folder (default: the dataset's own location, "
                                                    "never the folder stored in the checkpoint)")
    p.add_argument("--no-ema", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", default=None, help="also write the summary as JSON here")
    p.set_defaults(func=_run("likelihood"))
    p = sub.add_parser("evaluate", help="sample quality: Frechet distance and KID in a feature space beside real "
                                        "and noise references, memorisation, held-out bits/dim (images); "
                                        "distances (2-D data)")
    _add_sampling_options(p)
    p.add_argument("--features", default=None,
                   help="feature extractor for images (see `scoreflow list feature_extractor`; default: classifier "
                        "for labelled images, autoencoder otherwise)")
    p.add_argument("--bpd-images", type=int, default=64,
                   help="held-out, training and noise images whose bits/dim are reported, 0 to skip "
                        "(default: %(default)s)")
    p.add_argument("--dataset", default=None,
                   help="dataset to compare with (default: the run's; needed for a model from a source such as "
                        "diffusers:DIR, which records none)")
    p.add_argument("--out", default=None, help="also write the summary as JSON here")
    p.set_defaults(func=_run("evaluate"), num_samples=500)
    p = sub.add_parser("calibrate", help="denoiser calibration: per-pixel slope of the noise estimate against the "
                                         "true noise at several noise levels (heat map + JSON)")
    p.add_argument("--checkpoint", required=True, help="run folder, checkpoint folder or shipped model name")
    p.add_argument("--num-images", type=_positive_int, default=256, help="test images (default: %(default)s)")
    p.add_argument("--noise-levels", type=float, nargs="+", default=list(DEFAULT_NOISE_LEVELS),
                   help="noise levels s of x/alpha; those above the SDE's are skipped (default: %(default)s)")
    p.add_argument("--margin", type=float, default=SLOPE_MARGIN, help="flag a pixel whose slope is this far below what a "
                                                             "perfect denoiser guarantees (default: %(default)s)")
    p.add_argument("--out", default="calibration", help="output folder (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="the dataset's folder (default: the dataset's own location)")
    p.add_argument("--dataset", default=None,
                   help="dataset to compare with (default: the run's; needed for a model from a source such as "
                        "diffusers:DIR, which records none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-ema", action="store_true")
    p.set_defaults(func=_run("calibrate"))
    p = sub.add_parser("demo", help="MNIST digits from the shipped mnist model with EM, PC and the ODE "
                                    "sampler, plus test bits/dim (a few CPU minutes)")
    p.add_argument("--out", default="scoreflow-demo", help="output folder (default: %(default)s)")
    p.add_argument("--model", default="mnist", choices=tuple(DEMO_MODELS),
                   help="the shipped model (default: %(default)s; mnist-tutorial is the seed tutorial's run)")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX test files (default: scoreflow's "
                                                    "data cache, downloaded once if absent)")
    p.add_argument("--num-samples", type=_positive_int, default=64, help="samples per sampler (default: %(default)s)")
    p.add_argument("--num-steps", type=_positive_int, default=None,
                   help="steps of the SDE samplers (default: 250 for mnist, the tutorial's 500 for the others)")
    p.add_argument("--bpd-images", type=int, default=200, help="test images for bits/dim, 0 to skip "
                                                                 "(default: %(default)s)")
    p.add_argument("--raw-weights", action="store_true", help="the raw weights instead of their EMA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run("demo"))
    p = sub.add_parser("digits-demo", help="train on the 8x8 digits for a few minutes, sample, evaluate, "
                                           "write a report")
    p.add_argument("--out", default="scoreflow-digits-demo", help="output folder (default: %(default)s)")
    p.add_argument("--steps", type=_positive_int, default=None, help="training steps (default: the demo's budget)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run("digits_demo"))
    p = sub.add_parser("plugin", help="plugin authoring tools")
    plugin_sub = p.add_subparsers(dest="plugin_command", required=True)
    q = plugin_sub.add_parser("new", help="write a ready plugin package skeleton (pyproject, component, test)")
    q.add_argument("name", help="plugin name, e.g. 'heun' (gives the distribution scoreflow-heun)")
    q.add_argument("--out", default=".", help="folder to create it in (default: %(default)s)")
    q.set_defaults(func=_cmd_plugin_new)
    p = sub.add_parser("bench", help="run the benchmark suites (python -m benchmarks; --help lists its options)",
                       add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="options of python -m benchmarks")
    p.set_defaults(func=_cmd_bench)
    p = sub.add_parser("oracle-demo", help="sample a 2-D Gaussian mixture with every sampler using its exact score")
    p.add_argument("--out", default="scoreflow-oracle-demo", help="output folder (default: %(default)s)")
    p.add_argument("--num-samples", type=_positive_int, default=2000, help="samples per sampler")
    p.add_argument("--num-steps", type=_positive_int, default=500, help="predictor steps")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_oracle_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scoreflow`` console script."""
    from scoreflow.errors import SamplingInterrupted, ScoreflowError, TrainingInterrupted
    from scoreflow.training import distributed as ddp

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":  # its options belong to python -m benchmarks, --help included
        args.bench_args = [*extra, *args.bench_args]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    import signal
    import threading

    class Terminated(KeyboardInterrupt):
        """SIGTERM, turned into an exception so that every command stops the way Ctrl-C stops it."""

    def terminate(signum, frame):
        raise Terminated()

    previous_term = None
    if threading.current_thread() is threading.main_thread():
        previous_term = signal.signal(signal.SIGTERM, terminate)
    try:
        if args.no_plugins or args.block_plugin or args.strict_plugins:
            from scoreflow.plugins import PluginHost, _env_list, set_host

            set_host(PluginHost(autoload=False if args.no_plugins else None,
                                blocked=(*_env_list("SCOREFLOW_BLOCKED_PLUGINS"), *args.block_plugin),
                                strict=True if args.strict_plugins else None))
        code = int(args.func(args))
        ddp.shutdown(wait=True)
        return code
    except (TrainingInterrupted, SamplingInterrupted) as exc:
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank stops; one line says so
            print(f"scoreflow: {exc}", file=sys.stderr)
        return exc.exit_code
    except (ScoreflowError, ValueError, OSError) as exc:  # OSError: a path that cannot be read or written
        print(f"scoreflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM in a command without its own handling: one line, no traceback
        name, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("SIGINT", 130)
        if os.environ.get("RANK", "0") == "0":
            print(f"scoreflow: {args.command} stopped by {name}; its results were not written", file=sys.stderr)
        return code
    except MemoryError:
        print(f"scoreflow: error: {args.command} ran out of memory; ask for less (--num-samples, --batch-size, "
              "--max-samples or the network's size)", file=sys.stderr)
        return 2
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)


if __name__ == "__main__":
    sys.exit(main())
