"""``scoreflow train`` and ``scoreflow train-classifier``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import attrs

from scoreflow.cli.arguments import add_command, json_object, optional_float, positive_int
from scoreflow.cli.loading import dataset_for, open_model, writable_folder
from scoreflow.device import resolve_device
from scoreflow.training import distributed as ddp

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


@attrs.frozen(kw_only=True)
class TrainOptions:
    """``scoreflow train``: a run in ``out`` from a preset, a TOML file and the flags given (``flags``: the
    :class:`~scoreflow.training.TrainConfig` fields set on the command line, and only those)."""

    out: str
    preset: str | None = None
    config: str | None = None
    resume: bool = False
    overwrite: bool = False
    no_progress: bool = False
    flags: dict[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> TrainOptions:
        """The options of a parsed ``train`` command line (a flag not given is absent from ``flags``)."""
        from scoreflow.training import TrainConfig

        names = {f.name for f in attrs.fields(TrainConfig)}
        return cls(out=args.out, preset=args.preset, config=args.config, resume=args.resume,
                   overwrite=args.overwrite, no_progress=args.no_progress,
                   flags={k: v for k, v in vars(args).items() if k in names})


@attrs.frozen(kw_only=True)
class TrainClassifierOptions:
    """``scoreflow train-classifier``: a noise-conditional classifier on a run's dataset and SDE."""

    checkpoint: str
    out: str
    overwrite: bool = False
    model: str = "conv"
    model_options: dict[str, Any] = attrs.field(factory=dict)
    epochs: int = 5
    batch_size: int = 128
    lr: float = 2e-3
    eps: float | None = None
    data_dir: str | None = None
    seed: int = 0
    device: str = "cpu"
    no_progress: bool = False


def add_commands(sub: Any) -> None:
    """Add ``train`` and ``train-classifier`` to the subcommands ``sub``."""
    _add_train(sub)
    p = add_command(sub, "train-classifier", TrainClassifierOptions, train_classifier,
                    help="train a noise-conditional classifier on a run's dataset and SDE (for sample --class)")
    p.add_argument("--checkpoint", required=True, help="run folder, checkpoint or shipped model: its SDE and dataset")
    p.add_argument("--out", required=True, help="classifier folder (classifier.safetensors + classifier.json)")
    p.add_argument("--overwrite", action="store_true", help="replace a classifier already in --out")
    p.add_argument("--model", default="conv", help="classifier name (see `scoreflow list classifier`; default: "
                                                   "%(default)s)")
    p.add_argument("--model-options", type=json_object, default={}, help="JSON options of the classifier")
    p.add_argument("--epochs", type=positive_int, default=5, help="passes over the data (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=128, help="batch size (default: %(default)s)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--eps", type=float, default=None, help="smallest training time (default: the run's)")
    p.add_argument("--data-dir", default=None, help="the dataset's folder (default: the dataset's own location)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")


def _add_train(sub: Any) -> None:
    from scoreflow.training import TrainConfig

    p = add_command(sub, "train", TrainOptions, train, help="train a score network (denoising score matching)",
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
            kwargs["type"] = json_object
        elif isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif field.name in ("grad_clip", "class_dropout"):
            kwargs["type"] = optional_float
        elif field.name == "epochs":
            kwargs["type"] = positive_int
        elif isinstance(default, (int, float)):
            kwargs["type"] = type(default)
        p.add_argument(flag, dest=field.name, **kwargs)
    p.set_defaults(make_options=TrainOptions.from_arguments)


def train(options: TrainOptions) -> int:
    """Train (or resume) the run; flags beat the TOML file, which beats the preset, which beats the defaults."""
    from scoreflow.training import TrainConfig, Trainer

    overrides = dict(options.flags)
    if not str(options.out).strip():
        raise ValueError("--out must name a run folder, got an empty string")
    if "steps" in overrides and "epochs" not in overrides:
        overrides["epochs"] = None  # an explicit --steps beats a preset's or config's epochs (which would ignore it)
    if options.preset is not None:
        from scoreflow.training.presets import load_preset

        base = load_preset(options.preset).train
    else:
        base = {}
    if options.config:
        config = TrainConfig.from_toml(options.config, base=base, **overrides)
    else:
        config = TrainConfig.from_dict({**base, **overrides})
    ddp.init_from_env(config.device)
    if ddp.is_main():
        for line in precedence_notes(options, base, overrides):
            print(f"scoreflow: {line}", file=sys.stderr)
    result = Trainer(config, options.out, progress=not options.no_progress).run(resume=options.resume,
                                                                                overwrite=options.overwrite)
    if ddp.is_main():
        last = result.losses[-1][1] if result.losses else float("nan")
        print(f"trained {result.step} steps, last loss {last:.3f}, {result.images_per_second:.0f} images/s; "
              f"checkpoint and loss.png in {result.out}")
    return 0


def precedence_notes(options: TrainOptions, preset: dict[str, Any], flags: dict[str, Any]) -> list[str]:
    """One line per value a command-line flag takes over from the config file or the preset (flags beat the
    config file, which beats the preset, which beats the defaults)."""
    import tomllib

    layers: list[tuple[str, dict[str, Any]]] = []
    if options.preset is not None:
        layers.append((f"preset {options.preset}", preset))
    if options.config:
        data = tomllib.loads(Path(options.config).read_text())  # already read once by from_toml: readable TOML
        layers.append((f"config {options.config}", data.get("train", data)))
    notes = []
    for key, value in flags.items():
        for where, values in reversed(layers):  # the layer the flag took the value from
            if key in values and values[key] != value:
                flag = "--steps" if key == "epochs" else f"--{key.replace('_', '-')}"
                notes.append(f"{flag} overrides {where}'s {key} = {values[key]!r} (now {value!r})")
                break
    return notes


def train_classifier(options: TrainClassifierOptions) -> int:
    """Train the classifier on the run's training split, report its test accuracy by noise level, save it."""
    from scoreflow.training.classifier import accuracy_by_noise_level, save_classifier, train_noise_classifier

    resolve_device(options.device)  # before any work
    out = Path(options.out)
    if (out / "classifier.json").exists() and not options.overwrite:
        raise ValueError(f"{str(out)!r} already holds a classifier; give --overwrite to replace it")
    writable_folder(out)
    opened = open_model(options.checkpoint, device="cpu", ema=False)  # the run's SDE and dataset
    sde, cfg = opened.sde, opened.config
    if cfg is None:
        raise ValueError(f"{options.checkpoint!r} comes from a model source and records no dataset or training "
                         "eps: train the classifier on a scoreflow run")
    train, test = (dataset_for(opened, split, dataset=None, data_dir=options.data_dir) for split in ("train", "test"))
    eps = cfg.eps if options.eps is None else options.eps
    model, model_options = train_noise_classifier(
        train, sde, model=options.model, model_options=options.model_options, epochs=options.epochs,
        batch_size=options.batch_size, lr=options.lr, eps=eps, seed=options.seed, device=options.device,
        progress=not options.no_progress)
    accuracy = accuracy_by_noise_level(model.cpu(), test, seed=options.seed)
    info = {"dataset": cfg.dataset, "data_shape": list(train.sample_shape), "epochs": options.epochs,
            "sde": cfg.sde, "sde_options": cfg.sde_options, "eps": eps, "trained_from": opened.location,
            "test_accuracy_by_noise_level": accuracy}
    save_classifier(out, model, name=options.model, options=model_options, info=info)
    print(json.dumps({"test_accuracy_by_noise_level": accuracy}, indent=2))
    print(f"wrote {out / 'classifier.safetensors'} and {out / 'classifier.json'}")
    return 0
