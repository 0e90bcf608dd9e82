"""What the ``scoreflow`` subcommands do (argument parsing lives in :mod:`scoreflow.cli`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch

from scoreflow.device import resolve_device
from scoreflow.errors import SamplingInterrupted
from scoreflow.training import distributed as ddp

if TYPE_CHECKING:
    from scoreflow.evaluation.runs import GatheredSamples


def train(args: argparse.Namespace) -> int:
    from scoreflow.training import TrainConfig, Trainer

    names = {f.name for f in attrs.fields(TrainConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    if not str(args.out).strip():
        raise ValueError("--out must name a run folder, got an empty string")
    if "steps" in overrides and "epochs" not in overrides:
        overrides["epochs"] = None  # an explicit --steps beats a preset's or config's epochs (which would ignore it)
    if getattr(args, "preset", None) is not None:
        from scoreflow.training.presets import load_preset

        base = load_preset(args.preset).train
    else:
        base = {}
    if args.config:
        config = TrainConfig.from_toml(args.config, base=base, **overrides)
    else:
        config = TrainConfig.from_dict({**base, **overrides})
    ddp.init_from_env(config.device)
    if ddp.is_main():
        for line in precedence_notes(args, base, overrides):
            print(f"scoreflow: {line}", file=sys.stderr)
    result = Trainer(config, args.out, progress=not args.no_progress).run(resume=args.resume,
                                                                          overwrite=args.overwrite)
    if ddp.is_main():
        last = result.losses[-1][1] if result.losses else float("nan")
        print(f"trained {result.step} steps, last loss {last:.3f}, {result.images_per_second:.0f} images/s; "
              f"checkpoint and loss.png in {result.out}")
    return 0


def precedence_notes(args: argparse.Namespace, preset: dict[str, Any], flags: dict[str, Any]) -> list[str]:
    """One line per value a command-line flag takes over from the config file or the preset (flags beat the
    config file, which beats the preset, which beats the defaults)."""
    import tomllib

    layers: list[tuple[str, dict[str, Any]]] = []
    if getattr(args, "preset", None) is not None:
        layers.append((f"preset {args.preset}", preset))
    if args.config:
        data = tomllib.loads(Path(args.config).read_text())  # already read once by from_toml: readable TOML
        layers.append((f"config {args.config}", data.get("train", data)))
    notes = []
    for key, value in flags.items():
        for where, values in reversed(layers):  # the layer the flag took the value from
            if key in values and values[key] != value:
                flag = "--steps" if key == "epochs" else f"--{key.replace('_', '-')}"
                notes.append(f"{flag} overrides {where}'s {key} = {values[key]!r} (now {value!r})")
                break
    return notes


def checkpoint_location(text: str) -> str:
    """A run or checkpoint folder as given, else the verified folder of the pretrained model of that name."""
    from scoreflow.errors import CheckpointError
    from scoreflow.plugins import get_host
    from scoreflow.pretrained import resolve_pretrained

    if Path(text).exists():
        return text
    if text in get_host().pretrained:
        return str(resolve_pretrained(text))
    if "/" in text or "\\" in text:
        return text  # a path: loading it says what is missing there
    from scoreflow.pretrained import ModelSource

    host = get_host()
    entries = {name: host.create("pretrained", name) for name in host.available("pretrained")}
    names = [name for name, entry in entries.items() if not isinstance(entry, ModelSource)]
    sources = [f"{name}:LOCATION" for name, entry in entries.items() if isinstance(entry, ModelSource)]
    raise CheckpointError(f"no run folder, checkpoint or pretrained model called {text!r}. "
                          f"Pretrained models: {', '.join(names) or '(none installed)'}."
                          + (f" Model sources: {', '.join(sources)}." if sources else ""))


@attrs.frozen
class OpenedModel:
    """A model the command line loaded: a scoreflow run or shipped model (``config`` its TrainConfig), or one
    from a model source such as ``diffusers:DIR`` (``config`` None)."""

    model: Any
    sde: Any
    data_shape: tuple[int, ...]
    eps: float
    config: Any = None


def open_model(args: argparse.Namespace) -> OpenedModel:
    """``args.checkpoint`` loaded: ``NAME:LOCATION`` for a registered model source, else a run folder,
    checkpoint folder or shipped model (``args.checkpoint`` becomes its verified folder)."""
    from scoreflow.pretrained import split_source
    from scoreflow.training import load_trained
    from scoreflow.training.checkpoint import read_meta

    sourced = split_source(args.checkpoint)
    if sourced is not None:
        if args.no_ema:
            raise ValueError(f"--no-ema applies to scoreflow checkpoints; {args.checkpoint!r} comes from a model "
                             "source, which has one set of weights")
        source, location = sourced
        model, sde, info = source.load(location, device=args.device)
        return OpenedModel(model, sde, tuple(info.data_shape), float(info.eps))
    args.checkpoint = checkpoint_location(args.checkpoint)
    model, sde, config = load_trained(args.checkpoint, ema=not args.no_ema, device=args.device)
    shape = tuple(read_meta(args.checkpoint)[1]["data_shape"])  # load_trained has checked it
    return OpenedModel(model, sde, shape, config.eps, config)


def to_unit_range(samples: torch.Tensor, model: Any) -> torch.Tensor:
    """Samples of a model whose data lives in another interval (``data_range``, e.g. ``[-1, 1]``) in ``[0, 1]``,
    the range scoreflow's pictures and metrics read."""
    from scoreflow.models.base import data_range

    low, high = data_range(model)
    return samples if (low, high) == (0.0, 1.0) else (samples - low) / (high - low)


def from_unit_range(images: torch.Tensor, model: Any) -> torch.Tensor:
    """Images in ``[0, 1]`` in the interval the model's data lives in (the inverse of :func:`to_unit_range`)."""
    from scoreflow.models.base import data_range

    low, high = data_range(model)
    return images if (low, high) == (0.0, 1.0) else low + (high - low) * images


def _sampler_from_args(args: argparse.Namespace, **condition: Any):
    """The :class:`~scoreflow.Sampler` of the sampling options; ``condition``: its condition keywords."""
    from scoreflow.sampling.sampler import Sampler

    corrector = None if args.corrector in (None, "none") else args.corrector
    extra = {} if args.eps is None else {"eps": args.eps}
    if getattr(args, "start_time", None) is not None:
        extra["start_time"] = args.start_time
    if args.schedule is not None or args.schedule_options:
        options = dict(args.schedule_options)
        if args.schedule == "tuned":  # the grids `scoreflow tune-schedule` stored with this run, for this predictor
            options.setdefault("path", getattr(args, "checkpoint_given", args.checkpoint))
            from scoreflow.plugins import get_host
            from scoreflow.sampling.sampler import canonical_predictor_name

            options.setdefault("predictor", canonical_predictor_name(args.predictor, host=get_host()))
        extra.update(schedule=args.schedule, schedule_options=options)
    if args.resample_jump is not None and not args.resample:
        raise ValueError(f"--resample-jump {args.resample_jump} sets the block length of RePaint resampling; give "
                         "--resample N (the repeats) too")
    return Sampler(predictor=args.predictor, corrector=corrector, num_steps=args.num_steps, snr=args.snr,
                   n_steps=args.n_steps, predictor_options=args.predictor_options, resample=args.resample,
                   resample_jump=1 if args.resample_jump is None else args.resample_jump, **extra, **condition)


def _sampling_plan(args: argparse.Namespace, sde, model):
    """The sampler (or ODE options) the arguments ask for, checked against ``sde`` and ``model`` before any
    sampling."""
    from scoreflow.cli.guidance import guidance_condition
    from scoreflow.flow.probability_flow import ProbabilityFlowSampler

    condition = guidance_condition(args, sde, model)  # classifier guidance with --ode-solver is refused here
    if args.ode_solver and (args.schedule is not None or args.predictor_options or args.resample):
        raise ValueError("--schedule, --predictor-options and --resample apply to predictor-corrector sampling, not to "
                         f"--ode-solver {args.ode_solver} (its options: --solver-options, --rtol, --atol, --eps)")
    if getattr(args, "ode_denoise", False) and not args.ode_solver:
        raise ValueError("--ode-denoise applies to --ode-solver sampling (predictor-corrector sampling ends with the "
                         "predictor's noise-free mean already)")
    if getattr(args, "start_time", None) is not None and args.ode_solver:
        raise ValueError("--start-time applies to predictor-corrector sampling, not to --ode-solver "
                         f"{args.ode_solver} (which integrates from T)")
    if args.solver_options and not args.ode_solver:
        raise ValueError("--solver-options applies to --ode-solver sampling; for predictor-corrector sampling use "
                         "--predictor-options")
    if args.ode_solver:  # the solver is built here, so an unknown name or option fails before any sampling
        sampler = ProbabilityFlowSampler(solver=args.ode_solver, rtol=args.rtol, atol=args.atol,
                                         eps=1e-3 if args.eps is None else args.eps, solver_options=args.solver_options,
                                         denoise=bool(getattr(args, "ode_denoise", False)), **condition)
    else:
        sampler = _sampler_from_args(args, **condition)
    sampler.check(sde)  # an incompatible predictor, corrector or eps fails before any batch starts
    return sampler


def _generate(args: argparse.Namespace, model, sde, shape, sampler=None,
              interruptible: bool = False) -> GatheredSamples:
    from scoreflow.evaluation.runs import sample_many

    return sample_many(model, sde, shape, args.num_samples, sampler=sampler or _sampling_plan(args, sde, model),
                       batch_size=args.batch_size, seed=args.seed, device=args.device,
                       progress=not args.no_progress, interruptible=interruptible)


def writable_folder(path: str | Path) -> Path:
    """Create ``path`` (and parents) and check a file can be written there, before any long work."""
    import tempfile

    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".scoreflow-write-test-"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write to output folder {str(out)!r}: {exc.strerror or exc}") from None
    return out


def sample(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from scoreflow.pictures import save_samples_png

    args.checkpoint_given = args.checkpoint
    ddp.init_from_env(args.device)
    opened = open_model(args)
    model, sde, shape = opened.model, opened.sde, opened.data_shape
    plan = _sampling_plan(args, sde, model)
    out = writable_folder(args.out) if ddp.is_main() else Path(args.out)
    def write(samples: torch.Tensor, nfe: int, note: str = "") -> None:
        samples = to_unit_range(samples, model)  # pictures and the saved tensor in [0, 1], scoreflow's data range
        save_file({"samples": samples.contiguous()}, str(out / "samples.safetensors"))
        save_samples_png(samples[:256], out / "samples.png", title=f"{len(samples)} samples{note}, NFE {nfe}")

    try:
        samples, nfe = _generate(args, model, sde, shape, plan, interruptible=True)
    except SamplingInterrupted as stop:
        if len(stop.samples):
            write(stop.samples, stop.nfe, " (interrupted)")
            where = f"wrote the {len(stop.samples)} finished to {out / 'samples.safetensors'}"
        else:
            where = "no block had finished, nothing written"
        raise SamplingInterrupted(f"{stop}: {where}", stop.samples, stop.nfe, stop.exit_code) from None
    if ddp.is_main():
        write(samples, nfe)
        print(f"wrote {len(samples)} samples (NFE {nfe}) to {out / 'samples.safetensors'} and {out / 'samples.png'}")
    return 0


def tune_schedule(args: argparse.Namespace) -> int:
    from scoreflow.sampling.tuning import TUNED_FILE, schedule_file
    from scoreflow.errors import RunBusyError
    from scoreflow.training.run_folder import RunLock

    resolve_device(args.device)  # before any work
    ddp.init_from_env(args.device)  # under torchrun the ranks share the warm-up draws; rank 0 alone writes
    given = args.checkpoint
    if args.out is None:
        if not Path(given).is_dir():
            raise ValueError(f"{given!r} is a shipped model or a model source: give --out FILE.json for its tuned "
                             "grids")
        args.out = str(Path(given) / TUNED_FILE)
    schedule_file(args.out)  # an existing --out must be a regular tuned-schedule file, checked before the work
    writable_folder(Path(args.out).parent)
    run = Path(args.out).parent
    # a run folder has one writer at a time: a live trainer (or another tune-schedule) on it is refused before the
    # search, and none can start until the grids are written
    with contextlib.ExitStack() as held:
        refused = None
        if ddp.is_main() and (run / "checkpoints").is_dir():
            try:
                held.enter_context(RunLock(run))
            except RunBusyError as exc:
                refused = exc
        if ddp.max_across_ranks(int(refused is not None)):  # every rank learns of it and stops before the search
            if refused is None:
                return 2  # rank 0 says why
            raise refused
        result, steps = _tune(args)
        if not ddp.is_main():
            return 0
        path = result.save(args.out)
    for n, grid in result.grids.items():
        print(f"{args.predictor}, {n} steps: end-point error {grid.error:.4g} against the ODE "
              f"(karras grid: {grid.karras_error:.4g})")
    hint = "" if Path(path).parent == Path(given) else f', "path": "{path}"'
    print(f"wrote {path} (teacher: {result.teacher_nfe} evaluations). Sample with: --predictor {args.predictor} "
          f"--schedule tuned --num-steps {steps[0]}" + (f" --schedule-options '{{{hint[2:]}}}'" if hint else ""))
    return 0


def _tune(args: argparse.Namespace):
    """The tuned grids ``tune-schedule``'s arguments ask for, and the step counts they are for."""
    from scoreflow.plugins import get_host
    from scoreflow.sampling.tuning import GridSearch, steps_for_nfe
    from scoreflow.sampling.tuning import tune_schedule as tune

    search = GridSearch(eps=args.eps, fine_steps=args.fine_steps, sweeps=args.sweeps)  # checked before the model
    opened = open_model(args)
    model, sde, shape = opened.model, opened.sde, opened.data_shape
    host = get_host()
    args.predictor = host.predictors.get(args.predictor).name  # grids are stored under the canonical name
    predictor = host.predictors.resolve(args.predictor, **args.predictor_options)
    steps = sorted({steps_for_nfe(predictor, n, sde, eps=args.eps) for n in args.nfe})
    generator = torch.Generator(args.device).manual_seed(args.seed)
    result = tune(model, sde, (args.trajectories, *shape), steps,
                  predictor=predictor if args.predictor_options else args.predictor, search=search,
                  generator=generator, progress=None if args.no_progress or not ddp.is_main() else print)
    return attrs.evolve(result, predictor=args.predictor), steps


def _dataset_from_checkpoint(args: argparse.Namespace, split: str, opened: OpenedModel | None = None):
    """The dataset ``--dataset`` names (where the command has it), else the one the run was trained on, in
    memory; with ``opened``, its samples must have the model's shape."""
    from scoreflow.data.streamed import ImageFiles
    from scoreflow.plugins import get_host

    name = getattr(args, "dataset", None)
    if name is not None:
        data = get_host().create("dataset", name, split=split, data_dir=args.data_dir)
    else:
        data = _trained_dataset(args, split, opened)
    if isinstance(data, ImageFiles):  # a streamed folder: the commands that measure a split read it into memory
        data = data.load()
    if opened is not None and tuple(data.sample_shape) != tuple(opened.data_shape):
        raise ValueError(f"dataset {data.name!r} holds samples of shape {tuple(data.sample_shape)}, but "
                         f"{args.checkpoint!r} models shape {tuple(opened.data_shape)}: pass --dataset with data of "
                         "the model's shape")
    return data


def _trained_dataset(args: argparse.Namespace, split: str, opened: OpenedModel | None):
    from scoreflow.plugins import get_host
    from scoreflow.training import TrainConfig
    from scoreflow.training.checkpoint import read_meta

    if opened is not None and opened.config is None:
        raise ValueError(f"{args.checkpoint!r} comes from a model source and records no dataset: pass --dataset NAME "
                         "(see `scoreflow list dataset`)")
    cfg = opened.config if opened is not None else TrainConfig.from_dict(read_meta(args.checkpoint)[1]["config"])
    # Data locations come from the user (--data-dir) or the dataset's default, never from the checkpoint file:
    # a crafted meta.json must not choose a folder to scan, create or download into. It may only be named.
    try:
        return get_host().create("dataset", cfg.dataset, split=split, data_dir=args.data_dir, **cfg.dataset_options)
    except FileNotFoundError as exc:
        if args.data_dir is None and cfg.data_dir:
            raise FileNotFoundError(f"{exc} (the run was trained with --data-dir {cfg.data_dir!r}; pass --data-dir "
                                    "again: a checkpoint never chooses a folder to read)") from exc
        raise


def _likelihood_method(args: argparse.Namespace, eps: float):
    """The likelihood method ``--method`` names, with its options; an option of the other method is refused."""
    from scoreflow.flow.likelihood_methods import ExponentialLikelihood, ODELikelihood

    if args.method == "exponential":
        given = [f"--{name.replace('_', '-')}" for name in ("solver", "rtol", "atol", "logp_atol", "time_variable")
                 if getattr(args, name) is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise ValueError(f"{', '.join(given)} {verb} to --method ode; --method exponential integrates with its "
                             "own exponential integrator (its option: --num-steps)")
        return ExponentialLikelihood(eps=eps, **({} if args.num_steps is None else {"num_steps": args.num_steps}))
    return ODELikelihood(solver=args.solver or "dopri5", rtol=args.rtol, atol=args.atol, logp_atol=args.logp_atol,
                         num_steps=args.num_steps, time_variable=args.time_variable or "t", eps=eps)


def likelihood(args: argparse.Namespace) -> int:
    from scoreflow.evaluation.runs import likelihood_many, mean_and_standard_error
    from scoreflow.flow.likelihood_methods import DEFAULT_EPS, DivergenceEstimator

    _likelihood_method(args, DEFAULT_EPS if args.eps is None else args.eps)  # its options, before any work
    estimator = DivergenceEstimator(args.estimator, n_probes=args.n_probes)
    ddp.init_from_env(args.device)
    if args.out and ddp.is_main():
        writable_folder(Path(args.out).parent)  # before the work, not after it
    opened = open_model(args)
    model, sde = opened.model, opened.sde
    from scoreflow.validators import check_request

    check_request(f"{args.n_probes} probe(s) for a batch of {args.batch_size} of shape {opened.data_shape}",
                  args.n_probes * args.batch_size, opened.data_shape)  # before reading any data
    data = _dataset_from_checkpoint(args, args.split, opened)
    x = data.x[: args.max_samples] if args.max_samples else data.x
    levels = data.levels if args.dequantize is not False else None
    if args.dequantize and levels is None:
        raise ValueError(f"--dequantize applies to quantized data; dataset {data.name!r} is continuous "
                         "(it declares no quantization levels)")
    dequantize = levels if levels is not None else False
    eps = opened.eps if args.eps is None else args.eps  # the model knows times down to its training eps
    res = likelihood_many(model, sde, x.to(args.device), batch_size=args.batch_size, seed=args.seed,
                          progress=not args.no_progress, method=_likelihood_method(args, eps),
                          estimator=estimator,
                          dequantize=dequantize)
    summary = {"split": args.split, "n": len(x), "mean_logp_nats": float(res["logp"].mean()),
               "mean_bpd": mean_and_standard_error(res["bpd"])["mean"],
               "bpd_std_error": mean_and_standard_error(res["bpd"])["std_error"] if len(x) > 1 else 0.0, "dequantized": levels is not None,
               "quantization_levels": levels, "eps": eps, "estimator": args.estimator,
               "method": args.method, "solver": None if args.method == "exponential" else args.solver or "dopri5",
               "time_variable": args.time_variable or "t",
               "nfe_per_batch": {"min": int(res["nfe"].min()), "max": int(res["nfe"].max())}}
    if ddp.is_main():
        _write_json(args.out, summary)
        print(json.dumps(summary, indent=2))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from scoreflow.data.sources import DEFAULT_DATA_DIR
    from scoreflow.evaluation import image_quality, vector_quality
    from scoreflow.evaluation.sample_quality import sample_quality
    from scoreflow.models.features import default_feature_extractor
    from scoreflow.plugins import get_host

    ddp.init_from_env(args.device)
    if args.out and ddp.is_main():
        writable_folder(Path(args.out).parent)  # before sampling, not after it
    if args.bpd_images < 0:
        raise ValueError(f"--bpd-images must be >= 0, got {args.bpd_images}")
    opened = open_model(args)
    model, sde = opened.model, opened.sde
    test = _dataset_from_checkpoint(args, "test", opened)  # before sampling: an unusable dataset fails first
    train = _dataset_from_checkpoint(args, "train", opened)
    features = None
    if test.kind == "image":
        name = args.features or default_feature_extractor(test)
        features = get_host().create("feature_extractor", name)
        features.check(test)
    elif args.features:
        raise ValueError(f"--features applies to image data; dataset {test.name!r} holds {test.kind} data")
    samples, nfe = _generate(args, model, sde, opened.data_shape)
    bits = _reference_bits_per_dim(args, opened, train, test) if args.bpd_images else None  # every rank: sharded
    if not ddp.is_main():
        return 0
    samples = to_unit_range(samples.cpu(), model)
    cache = DEFAULT_DATA_DIR / "classifiers"  # data folders may be read-only; keyed by content hash
    if features is None:
        summary: dict[str, Any] = vector_quality(samples, test)
    else:
        summary = {"features": name}
        if name == "classifier":  # the class histogram and confidence of the same classifier
            summary.update(image_quality(samples, train, test, cache))
        summary.update(sample_quality(samples, train, test, features, cache, seed=args.seed))
    if bits is not None:
        summary["bits_per_dim"] = bits
    summary["nfe"] = nfe
    _write_json(args.out, summary)
    print(json.dumps(summary, indent=2))
    return 0


def _reference_bits_per_dim(args: argparse.Namespace, opened: OpenedModel, train, test) -> dict[str, Any]:
    """Bits/dim of ``--bpd-images`` held-out (test) images beside as many training images (a gap means
    memorised training data) and uniform noise on the data's grid (the ceiling); exponential integrator, seeded."""
    from scoreflow.evaluation.runs import likelihood_many, mean_and_standard_error
    from scoreflow.flow.likelihood_methods import ExponentialLikelihood

    n = args.bpd_images
    g = torch.Generator().manual_seed(args.seed)
    levels = test.levels
    sets = {"held_out": test.x[:n], "train": train.x[torch.randperm(len(train), generator=g)[:n]]}
    if test.kind == "image":
        noise = torch.rand((n, *test.sample_shape), generator=g)
        sets["uniform_noise"] = noise if levels is None else torch.round(noise * (levels - 1)) / (levels - 1)
    out: dict[str, Any] = {"method": "exponential", "quantization_levels": levels, "eps": opened.eps}
    for label, x in sets.items():
        res = likelihood_many(opened.model, opened.sde, x.to(args.device), batch_size=min(64, n), seed=args.seed,
                              method=ExponentialLikelihood(eps=opened.eps),
                              dequantize=levels if levels is not None else False)
        out[label] = mean_and_standard_error(res["bpd"])
    return out


def calibrate(args: argparse.Namespace) -> int:
    from scoreflow.evaluation.calibration import denoiser_calibration

    resolve_device(args.device)
    if not all(isinstance(s, float) and s > 0 for s in args.noise_levels):
        raise ValueError(f"--noise-levels must be positive numbers, got {args.noise_levels}")
    name = args.checkpoint
    out = writable_folder(args.out)
    opened = open_model(args)
    model, sde = opened.model, opened.sde
    data = _dataset_from_checkpoint(args, "test", opened)
    if data.kind != "image":
        raise ValueError(f"calibrate needs image data; {name!r} was trained on {data.kind} data")
    images = from_unit_range(data.x[: args.num_images], model).to(args.device)
    if images.shape[0] < 2:
        raise ValueError(f"calibrate needs at least 2 test images, the split has {images.shape[0]}")
    report = denoiser_calibration(model, sde, images, noise_levels=args.noise_levels, margin=args.margin,
                                  generator=torch.Generator().manual_seed(args.seed))
    summary = {"checkpoint": name, **report.summary()}
    report.save_heatmap(out / "calibration.png", title=f"{name}: slope of the noise estimate on the true noise")
    _write_json(str(out / "calibration.json"), summary)
    level, pixel, slope = report.worst
    print(f"{name}: {summary['flagged_count']} pixel-level pairs flagged (slope more than {args.margin:g} below "
          f"what a perfect denoiser guarantees); worst pixel {pixel} at noise level {level:g}: slope {slope:.3f}")
    for row in summary["levels"]:
        print(f"  noise level {row['noise_level']:g}: min slope {row['min_slope']:.3f}, median "
              f"{row['median_slope']:.3f}, flagged {row['flagged']}")
    print(f"wrote {out / 'calibration.png'} and {out / 'calibration.json'}")
    return 0


def _write_json(path: str | None, data: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2) + "\n")


def demo(args: argparse.Namespace) -> int:
    from scoreflow.cli.mnist_demo import run_mnist_demo

    if args.bpd_images < 0:
        raise ValueError(f"--bpd-images must be >= 0, got {args.bpd_images}")
    writable_folder(args.out)
    run_mnist_demo(args.out, data_dir=args.data_dir, num_samples=args.num_samples, num_steps=args.num_steps,
                   bpd_images=args.bpd_images, ema=not args.raw_weights, seed=args.seed, progress=not args.no_progress,
                   pretrained=args.model)
    print((Path(args.out) / "report.md").read_text())
    print(f"wrote {Path(args.out) / 'samples.png'} and {Path(args.out) / 'report.md'}")
    return 0


def digits_demo(args: argparse.Namespace) -> int:
    from scoreflow.cli.digits_demo import run_digits_demo

    run_digits_demo(args.out, steps=args.steps, seed=args.seed, progress=not args.no_progress)
    print((Path(args.out) / "report.md").read_text())
    print(f"wrote {Path(args.out) / 'samples.png'}, {Path(args.out) / 'loss.png'} and {Path(args.out) / 'report.md'}")
    return 0
