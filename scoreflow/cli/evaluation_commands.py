"""``scoreflow likelihood``, ``scoreflow evaluate`` and ``scoreflow calibrate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import attrs
import torch

from scoreflow.cli.arguments import add_command, add_guided_sampling_arguments, positive_int
from scoreflow.cli.loading import (
    OpenedModel,
    dataset_for,
    from_unit_range,
    open_model,
    to_unit_range,
    writable_folder,
    write_json,
)
from scoreflow.cli.sampler_options import GuidedSamplingOptions, generate
from scoreflow.device import resolve_device
from scoreflow.training import distributed as ddp


@attrs.frozen(kw_only=True)
class LikelihoodOptions:
    """``scoreflow likelihood``: bits/dim of a split, by ``method`` (``ode`` or ``exponential``)."""

    checkpoint: str
    split: str = "test"
    max_samples: int | None = None
    batch_size: int = 64
    estimator: str = "gaussian"
    n_probes: int = 1
    method: str = "ode"
    solver: str | None = None
    rtol: float | None = None
    atol: float | None = None
    logp_atol: float | None = None
    num_steps: int | None = None
    time_variable: str | None = None
    eps: float | None = None
    dataset: str | None = None
    dequantize: bool | None = None
    seed: int = 0
    device: str = "cpu"
    data_dir: str | None = None
    no_ema: bool = False
    no_progress: bool = False
    out: str | None = None


@attrs.frozen(kw_only=True)
class EvaluateOptions(GuidedSamplingOptions):
    """``scoreflow evaluate``: sample quality against the dataset."""

    features: str | None = None
    bpd_images: int = 64
    dataset: str | None = None
    out: str | None = None


@attrs.frozen(kw_only=True)
class CalibrateOptions:
    """``scoreflow calibrate``: the denoiser's per-pixel calibration at ``noise_levels``."""

    checkpoint: str
    num_images: int = 256
    noise_levels: list[float] = attrs.field(factory=list)
    margin: float = 0.0
    out: str = "calibration"
    data_dir: str | None = None
    dataset: str | None = None
    seed: int = 0
    device: str = "cpu"
    no_ema: bool = False


def add_commands(sub: Any) -> None:
    """Add ``likelihood``, ``evaluate`` and ``calibrate`` to the subcommands ``sub``."""
    _add_likelihood(sub)
    p = add_command(sub, "evaluate", EvaluateOptions, evaluate,
                    help="sample quality: Frechet distance and KID in a feature space beside real and noise "
                         "references, memorisation, held-out bits/dim (images); distances (2-D data)")
    add_guided_sampling_arguments(p)
    p.add_argument("--features", default=None,
                   help="feature extractor for images (see `scoreflow list feature_extractor`; default: classifier "
                        "for labelled images, autoencoder otherwise)")
    p.add_argument("--bpd-images", type=int, default=64,
                   help="held-out, training and noise images whose bits/dim are reported, 0 to skip "
                        "(default: %(default)s)")
    _add_dataset_and_out(p, out_help="also write the summary as JSON here", out=None)
    p.set_defaults(num_samples=500)
    _add_calibrate(sub)


def _add_dataset_and_out(p: argparse.ArgumentParser, *, out_help: str, out: str | None) -> None:
    p.add_argument("--dataset", default=None,
                   help="dataset to compare with (default: the run's; needed for a model from a source such as "
                        "diffusers:DIR, which records none)")
    p.add_argument("--out", default=out, help=out_help)


def _add_likelihood(sub: Any) -> None:
    p = add_command(sub, "likelihood", LikelihoodOptions, likelihood,
                    help="bits/dim of a dataset split under a checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--split", choices=("train", "test"), default="test")
    p.add_argument("--max-samples", type=positive_int, default=None, help="only the first N samples")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--estimator", choices=("gaussian", "rademacher", "exact"), default="gaussian")
    p.add_argument("--n-probes", type=positive_int, default=1)
    p.add_argument("--method", choices=("ode", "exponential"), default="ode",
                   help="ode: solve the augmented ODE with --solver; exponential: --num-steps (default 20) steps of a "
                        "third-order exponential integrator in the log noise level, the fast setting (default: "
                        "%(default)s)")
    p.add_argument("--solver", default=None, help="ODE solver of --method ode (default: dopri5)")
    p.add_argument("--rtol", type=float, default=None, help="relative tolerance of --method ode (default: 1e-5)")
    p.add_argument("--atol", type=float, default=None, help="absolute tolerance of --method ode (default: 1e-5)")
    p.add_argument("--logp-atol", type=float, default=None,
                   help="absolute tolerance of the log-density integral in nats (default: --rtol/--atol as for x)")
    p.add_argument("--num-steps", type=positive_int, default=None,
                   help="steps of a fixed-grid --solver (rk4) or of --method exponential")
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


def _add_calibrate(sub: Any) -> None:
    from scoreflow.evaluation.calibration import DEFAULT_NOISE_LEVELS, SLOPE_MARGIN

    p = add_command(sub, "calibrate", CalibrateOptions, calibrate,
                    help="denoiser calibration: per-pixel slope of the noise estimate against the true noise at "
                         "several noise levels (heat map + JSON)")
    p.add_argument("--checkpoint", required=True, help="run folder, checkpoint folder or shipped model name")
    p.add_argument("--num-images", type=positive_int, default=256, help="test images (default: %(default)s)")
    p.add_argument("--noise-levels", type=float, nargs="+", default=list(DEFAULT_NOISE_LEVELS),
                   help="noise levels s of x/alpha; those above the SDE's are skipped (default: %(default)s)")
    p.add_argument("--margin", type=float, default=SLOPE_MARGIN,
                   help="flag a pixel whose slope is this far below what a perfect denoiser guarantees "
                        "(default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="the dataset's folder (default: the dataset's own location)")
    _add_dataset_and_out(p, out_help="output folder (default: %(default)s)", out="calibration")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-ema", action="store_true")


def _likelihood_method(options: LikelihoodOptions, eps: float) -> Any:
    """The likelihood method ``--method`` names, with its options; an option of the other method is refused."""
    from scoreflow.flow.likelihood_methods import ExponentialLikelihood, ODELikelihood

    if options.method == "exponential":
        given = [f"--{name.replace('_', '-')}" for name in ("solver", "rtol", "atol", "logp_atol", "time_variable")
                 if getattr(options, name) is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise ValueError(f"{', '.join(given)} {verb} to --method ode; --method exponential integrates with its "
                             "own exponential integrator (its option: --num-steps)")
        return ExponentialLikelihood(eps=eps, **({} if options.num_steps is None else
                                                 {"num_steps": options.num_steps}))
    return ODELikelihood(solver=options.solver or "dopri5", rtol=options.rtol, atol=options.atol,
                         logp_atol=options.logp_atol, num_steps=options.num_steps,
                         time_variable=options.time_variable or "t", eps=eps)


def likelihood(options: LikelihoodOptions) -> int:
    """Bits/dim of the split (dequantized where the data are quantized), as JSON."""
    from scoreflow.evaluation.runs import likelihood_many, mean_and_standard_error
    from scoreflow.flow.likelihood_methods import DEFAULT_EPS, DivergenceEstimator
    from scoreflow.validators import check_request

    _likelihood_method(options, DEFAULT_EPS if options.eps is None else options.eps)  # its options, before work
    estimator = DivergenceEstimator(options.estimator, n_probes=options.n_probes)
    ddp.init_from_env(options.device)
    if options.out and ddp.is_main():
        writable_folder(Path(options.out).parent)  # before the work, not after it
    opened = open_model(options.checkpoint, device=options.device, ema=not options.no_ema)
    check_request(f"{options.n_probes} probe(s) for a batch of {options.batch_size} of shape {opened.data_shape}",
                  options.n_probes * options.batch_size, opened.data_shape)  # before reading any data
    data = dataset_for(opened, options.split, dataset=options.dataset, data_dir=options.data_dir)
    x = data.x[: options.max_samples] if options.max_samples else data.x
    levels = data.levels if options.dequantize is not False else None
    if options.dequantize and levels is None:
        raise ValueError(f"--dequantize applies to quantized data; dataset {data.name!r} is continuous "
                         "(it declares no quantization levels)")
    eps = opened.eps if options.eps is None else options.eps  # the model knows times down to its training eps
    res = likelihood_many(opened.model, opened.sde, x.to(options.device), batch_size=options.batch_size,
                          seed=options.seed, progress=not options.no_progress,
                          method=_likelihood_method(options, eps), estimator=estimator,
                          dequantize=levels if levels is not None else False)
    bpd = mean_and_standard_error(res["bpd"])
    summary = {"split": options.split, "n": len(x), "mean_logp_nats": float(res["logp"].mean()),
               "mean_bpd": bpd["mean"], "bpd_std_error": bpd["std_error"] if len(x) > 1 else 0.0,
               "dequantized": levels is not None, "quantization_levels": levels, "eps": eps,
               "estimator": options.estimator, "method": options.method,
               "solver": None if options.method == "exponential" else options.solver or "dopri5",
               "time_variable": options.time_variable or "t",
               "nfe_per_batch": {"min": int(res["nfe"].min()), "max": int(res["nfe"].max())}}
    if ddp.is_main():
        write_json(options.out, summary)
        print(json.dumps(summary, indent=2))
    return 0


def evaluate(options: EvaluateOptions) -> int:
    """Sample, then compare with the dataset in a feature space (images) or directly (vectors), as JSON."""
    from scoreflow.models.features import default_feature_extractor
    from scoreflow.plugins import get_host

    ddp.init_from_env(options.device)
    if options.out and ddp.is_main():
        writable_folder(Path(options.out).parent)  # before sampling, not after it
    if options.bpd_images < 0:
        raise ValueError(f"--bpd-images must be >= 0, got {options.bpd_images}")
    opened = open_model(options.checkpoint, device=options.device, ema=not options.no_ema)
    model, sde = opened.model, opened.sde
    test, train = (dataset_for(opened, split, dataset=options.dataset, data_dir=options.data_dir)
                   for split in ("test", "train"))  # before sampling: an unusable dataset fails first
    features, name = None, None
    if test.kind == "image":
        name = options.features or default_feature_extractor(test)
        features = get_host().create("feature_extractor", name)
        features.check(test)
    elif options.features:
        raise ValueError(f"--features applies to image data; dataset {test.name!r} holds {test.kind} data")
    samples, nfe = generate(options, model, sde, opened.data_shape)
    bits = _reference_bits_per_dim(options, opened, train, test) if options.bpd_images else None  # every rank
    if not ddp.is_main():
        return 0
    summary = _quality(to_unit_range(samples.cpu(), model), train, test, features, name, options.seed)
    if bits is not None:
        summary["bits_per_dim"] = bits
    summary["nfe"] = nfe
    write_json(options.out, summary)
    print(json.dumps(summary, indent=2))
    return 0


def _quality(samples: torch.Tensor, train: Any, test: Any, features: Any, name: str | None, seed: int
             ) -> dict[str, Any]:
    """Quality figures of ``samples``: in the feature space ``name`` (images), else directly (vectors)."""
    from scoreflow.data.sources import DEFAULT_DATA_DIR
    from scoreflow.evaluation import image_quality, vector_quality
    from scoreflow.evaluation.sample_quality import sample_quality

    cache = DEFAULT_DATA_DIR / "classifiers"  # data folders may be read-only; keyed by content hash
    if features is None:
        return vector_quality(samples, test)
    summary: dict[str, Any] = {"features": name}
    if name == "classifier":  # the class histogram and confidence of the same classifier
        summary.update(image_quality(samples, train, test, cache))
    summary.update(sample_quality(samples, train, test, features, cache, seed=seed))
    return summary


def _reference_bits_per_dim(options: EvaluateOptions, opened: OpenedModel, train: Any, test: Any) -> dict[str, Any]:
    """Bits/dim of ``bpd_images`` held-out (test) images beside as many training images (a gap means memorised
    training data) and uniform noise on the data's grid (the ceiling); exponential integrator, seeded."""
    from scoreflow.evaluation.runs import likelihood_many, mean_and_standard_error
    from scoreflow.flow.likelihood_methods import ExponentialLikelihood

    n = options.bpd_images
    g = torch.Generator().manual_seed(options.seed)
    levels = test.levels
    sets = {"held_out": test.x[:n], "train": train.x[torch.randperm(len(train), generator=g)[:n]]}
    if test.kind == "image":
        noise = torch.rand((n, *test.sample_shape), generator=g)
        sets["uniform_noise"] = noise if levels is None else torch.round(noise * (levels - 1)) / (levels - 1)
    out: dict[str, Any] = {"method": "exponential", "quantization_levels": levels, "eps": opened.eps}
    for label, x in sets.items():
        res = likelihood_many(opened.model, opened.sde, x.to(options.device), batch_size=min(64, n),
                              seed=options.seed, method=ExponentialLikelihood(eps=opened.eps),
                              dequantize=levels if levels is not None else False)
        out[label] = mean_and_standard_error(res["bpd"])
    return out


def calibrate(options: CalibrateOptions) -> int:
    """The calibration heat map and JSON of the test split's first ``num_images`` images."""
    from scoreflow.evaluation.calibration import denoiser_calibration

    resolve_device(options.device)
    if not all(isinstance(s, float) and s > 0 for s in options.noise_levels):
        raise ValueError(f"--noise-levels must be positive numbers, got {options.noise_levels}")
    name = options.checkpoint
    out = writable_folder(options.out)
    opened = open_model(name, device=options.device, ema=not options.no_ema)
    model, sde = opened.model, opened.sde
    data = dataset_for(opened, "test", dataset=options.dataset, data_dir=options.data_dir)
    if data.kind != "image":
        raise ValueError(f"calibrate needs image data; {name!r} was trained on {data.kind} data")
    images = from_unit_range(data.x[: options.num_images], model).to(options.device)
    if images.shape[0] < 2:
        raise ValueError(f"calibrate needs at least 2 test images, the split has {images.shape[0]}")
    report = denoiser_calibration(model, sde, images, noise_levels=options.noise_levels, margin=options.margin,
                                  generator=torch.Generator().manual_seed(options.seed))
    summary = {"checkpoint": name, **report.summary()}
    report.save_heatmap(out / "calibration.png", title=f"{name}: slope of the noise estimate on the true noise")
    write_json(str(out / "calibration.json"), summary)
    level, pixel, slope = report.worst
    print(f"{name}: {summary['flagged_count']} pixel-level pairs flagged (slope more than {options.margin:g} below "
          f"what a perfect denoiser guarantees); worst pixel {pixel} at noise level {level:g}: slope {slope:.3f}")
    for row in summary["levels"]:
        print(f"  noise level {row['noise_level']:g}: min slope {row['min_slope']:.3f}, median "
              f"{row['median_slope']:.3f}, flagged {row['flagged']}")
    print(f"wrote {out / 'calibration.png'} and {out / 'calibration.json'}")
    return 0
