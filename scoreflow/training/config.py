"""Training configuration: one attrs object, loadable from TOML or CLI options."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs

from scoreflow.models.preconditioning import PRECONDITIONINGS
from scoreflow.training.losses import WEIGHTINGS

OPTIMIZERS = ("adam", "adamw")

_INT_FIELDS = ("steps", "batch_size", "warmup", "seed", "checkpoint_every", "log_every", "keep_last")
_FLOAT_FIELDS = ("lr", "weight_decay", "ema_decay", "eps", "sigma_data", "p_mean", "p_std")
_BOOL_FIELDS = ("importance_sampling", "amp", "dequantize")
_STR_FIELDS = ("dataset", "model", "sde", "weighting", "optimizer", "device", "preconditioning")
_DICT_FIELDS = ("dataset_options", "model_options", "sde_options", "weighting_options")


def _type_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be training option ``name`` (``None`` if its type is right)."""
    if name in _INT_FIELDS and (isinstance(value, bool) or not isinstance(value, int)):
        return "an integer"
    if name in _FLOAT_FIELDS + ("grad_clip",):
        if value is None and name == "grad_clip":
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return "a finite number" + (" or 'none'" if name == "grad_clip" else "")
    if name in _BOOL_FIELDS and not isinstance(value, bool):
        return "true or false"
    if name in _STR_FIELDS and not isinstance(value, str):
        return "a string"
    if name in _DICT_FIELDS and not isinstance(value, dict):
        return "a table (JSON object)"
    if name in ("data_dir", "init_from") and value is not None and not isinstance(value, str):
        return "a path string"
    return None


def _check_type(name: str, value: Any) -> None:
    expected = _type_problem(name, value)
    if expected:
        raise ValueError(f"training option {name} must be {expected}, got {value!r} ({type(value).__name__})")


def _positive(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    _check_type(attribute.name, value)
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _non_negative(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    _check_type(attribute.name, value)
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _choice(options: tuple[str, ...]):
    def check(instance: Any, attribute: attrs.Attribute, value: str) -> None:
        _check_type(attribute.name, value)
        if value not in options:
            raise ValueError(f"Unknown {attribute.name} {value!r}. Available: {', '.join(options)}.")

    return check


def _weighting_name(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    """A built-in weighting, or one a plugin registered (the plugin host is consulted only for other names)."""
    _check_type(attribute.name, value)
    if value in WEIGHTINGS:
        return
    from scoreflow.plugins import get_host

    available = get_host().available("weighting")
    if value not in available:
        raise ValueError(f"Unknown weighting {value!r}. Available: {', '.join(available)}.")


@attrs.define(kw_only=True)
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint).

    With ``epochs`` set, training runs ``epochs`` passes over the data, each batch
    drawn without replacement from a per-epoch permutation (a PyTorch ``DataLoader``
    with ``shuffle=True, drop_last=True``), and ``steps`` is ignored; otherwise
    ``steps`` batches are drawn with replacement. ``keep_last`` > 0 keeps only the
    newest that many checkpoints.

    Component fields (``dataset``, ``model``, ``sde``) are registry names; their
    ``*_options`` are passed to the factories. Score-net factories also receive
    ``sde`` and, filled from the data unless given, ``image_size``/``in_channels``
    (images) or ``dim`` (vectors).

    ``init_from`` starts the network (and its EMA) from another run's weights (fine-tuning): a checkpoint or
    run folder, or ``pretrained:NAME`` for a shipped model; the EMA weights are taken where the source has them.
    The optimizer, step count and data order start afresh; a resumed run continues from its own checkpoint.

    ``class_dropout`` (a rate in ``[0, 1)``) trains a class-conditional network for classifier-free guidance
    (Ho & Salimans 2022): the dataset's labels are fed to the network (its ``num_classes`` is filled from the
    labels into ``model_options``), each replaced by "no class" with this probability so the same network also
    learns the unconditional score. ``None`` (the default) trains an unconditional network.

    ``preconditioning = "edm"`` wraps the network in
    :class:`~scoreflow.models.preconditioning.EDMPreconditioner` with ``sigma_data``; ``weighting = "edm"``
    draws noise levels with ``ln s ~ N(p_mean, p_std^2)``.
    """

    dataset: str = "digits"
    data_dir: str | None = None
    dataset_options: dict[str, Any] = attrs.field(factory=dict)
    init_from: str | None = None
    model: str = "unet"
    model_options: dict[str, Any] = attrs.field(factory=dict)
    sde: str = "ve"
    sde_options: dict[str, Any] = attrs.field(factory=dict)
    preconditioning: str = attrs.field(default="none", validator=_choice(PRECONDITIONINGS))
    sigma_data: float = attrs.field(default=0.5, validator=_positive)
    weighting: str = attrs.field(default="sigma2", validator=_weighting_name)
    weighting_options: dict[str, Any] = attrs.field(factory=dict)
    importance_sampling: bool = True
    p_mean: float = -1.2
    p_std: float = attrs.field(default=1.2, validator=_positive)
    steps: int = attrs.field(default=1000, validator=_positive)
    epochs: int | None = None
    batch_size: int = attrs.field(default=64, validator=_positive)
    lr: float = attrs.field(default=2e-4, validator=_positive)
    optimizer: str = attrs.field(default="adam", validator=_choice(OPTIMIZERS))
    weight_decay: float = attrs.field(default=0.0, validator=_non_negative)
    warmup: int = attrs.field(default=0, validator=_non_negative)
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    amp: bool = False
    seed: int = 0
    eps: float = attrs.field(default=1e-5, validator=_positive)
    dequantize: bool = False
    device: str = "cpu"
    checkpoint_every: int = attrs.field(default=0, validator=_non_negative)
    log_every: int = attrs.field(default=10, validator=_positive)
    keep_last: int = attrs.field(default=0, validator=_non_negative)
    class_dropout: float | None = None

    def __attrs_post_init__(self) -> None:
        for field in attrs.fields(type(self)):
            value = getattr(self, field.name)
            _check_type(field.name, value)
            if field.name in _FLOAT_FIELDS and isinstance(value, int):
                setattr(self, field.name, float(value))
        if not 0 < self.eps < 1:
            raise ValueError(f"eps (the smallest training time) must lie in (0, 1), got {self.eps!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay!r}")
        if self.epochs is not None and (isinstance(self.epochs, bool) or not isinstance(self.epochs, int)
                                        or self.epochs <= 0):
            raise ValueError(f"epochs must be a positive integer or None, got {self.epochs!r}")
        if self.init_from is not None and not self.init_from.strip():
            raise ValueError("init_from must name a checkpoint, a run folder or pretrained:NAME, got an empty string")
        if self.class_dropout is not None and (isinstance(self.class_dropout, bool) or not isinstance(
                self.class_dropout, (int, float)) or not 0 <= self.class_dropout < 1):
            raise ValueError(f"class_dropout must be a rate in [0, 1) (or none for an unconditional network), got "
                             f"{self.class_dropout!r}")
        if self.class_dropout is not None:
            self.class_dropout = float(self.class_dropout)
        if "num_classes" in self.model_options and self.class_dropout is None:
            raise ValueError("model_options num_classes makes a class-conditional network, which trains with labels: "
                             "set class_dropout (e.g. 0.1) too")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a mapping, naming any unknown key and the allowed ones."""
        allowed = {f.name for f in attrs.fields(cls)}
        for key in ("grad_clip", "class_dropout"):  # TOML has no null: "none" disables clipping / class labels
            if isinstance(values.get(key), str) and values[key].lower() == "none":
                values = {**values, key: None}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ValueError(f"Unknown training option(s) {', '.join(map(repr, unknown))}. "
                             f"Allowed: {', '.join(sorted(allowed))}.")
        return cls(**values)

    @classmethod
    def from_toml(cls, path: str | Path, *, base: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
        """Read a TOML file (keys as in this class, optionally under ``[train]``) over ``base``, then ``overrides``."""
        import tomllib

        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{path}: cannot read TOML config ({exc})") from exc
        data = data.get("train", data)
        return cls.from_dict({**(base or {}), **data, **overrides})

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON/TOML friendly)."""
        return attrs.asdict(self)
