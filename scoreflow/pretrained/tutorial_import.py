"""Import a tutorial notebook's ``ckpt.pth`` (a ``ScoreNet`` state_dict) as a scoreflow run.

Two notebooks are recognised by their weights: the seed tutorial's (Fourier time features fed straight
to the per-level layers, ``embed.W``; VE SDE ``sigma_min = 0.01, sigma_max = 22``, preset
``mnist-tutorial``) and Song's original Colab (a dense layer after the features, ``embed.0.W`` and
``embed.1.*``; ``dx = sigma^t dw`` with ``sigma = 25``, preset ``mnist-sigma25``).

The file is read with ``torch.load(weights_only=True)``: PyTorch's restricted unpickler,
which builds only tensors and plain containers and never runs code from the file.
Anything but a flat ``{name: tensor}`` mapping is refused.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch

from scoreflow.errors import CheckpointError

#: The notebook's ``ScoreNet`` attribute -> scoreflow ``UNet`` attribute (per layer prefix).
_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^embed\.W$", "embed.0.W"),  # the seed tutorial's embedding is the Fourier projection itself
    (r"^dense([1-7])\.dense\.", "dense.{0}."),
    (r"^gnorm([1-4])\.", "gnorm.{0}."),
    (r"^tgnorm4\.", "gnorm.4."),
    (r"^tgnorm3\.", "gnorm.5."),
    (r"^tgnorm2\.", "gnorm.6."),
)


def tutorial_key(key: str) -> str:
    """scoreflow's name for the notebook's parameter ``key`` (``module.`` of DataParallel removed)."""
    key = key.removeprefix("module.")
    for pattern, target in _RENAMES:
        match = re.match(pattern, key)
        if match:
            if not match.groups():
                return target + key[match.end():]
            return target.format(int(match.group(1)) - 1) + key[match.end():]
    return key


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain ``{name: tensor}`` dict from a ``.pth`` file, loaded without running code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint file: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols; the error below says it all
            warnings.simplefilter("ignore")
            obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to parse means: not a plain tensor dict (nothing ran)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a plain PyTorch state_dict that loads without running code ({first})") \
            from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state_dict (a dict of tensors), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: expected a dict of name -> tensor; entries {bad[:5]!r} are not "
                              "(a full training checkpoint or a pickled model cannot be imported)")
    return dict(obj)


def _check_real_finite(path: str | Path, state: dict[str, torch.Tensor]) -> None:
    """The weights become a model's parameters: real, finite floating-point tensors only (each refused by name)."""
    for key, value in state.items():
        if not value.is_floating_point() or value.is_complex():
            raise CheckpointError(f"{path}: tensor {key!r} has dtype {value.dtype}; the tutorial's weights are "
                                  "real floating-point tensors")
        if not torch.isfinite(value).all():
            raise CheckpointError(f"{path}: tensor {key!r} holds NaN or infinite values")


def import_tutorial_checkpoint(path: str | Path, out: str | Path, *, sigma: float = 25.0,
                               sigma_min: float = 0.01, sigma_max: float = 22.0, overwrite: bool = False) -> Path:
    """Write a notebook's ``ScoreNet`` weights in ``path`` as a scoreflow run folder ``out``.

    The notebook is told apart by its weights (module docstring). The run's config is that notebook's
    preset with the channel widths read from the weights and its SDE: ``sigma_min``/``sigma_max`` for the
    seed tutorial's, ``sigma`` for Song's Colab. Sample or evaluate it with
    ``scoreflow sample --checkpoint OUT --no-ema``. Returns the checkpoint folder.
    """
    from scoreflow.data.base import TensorData
    from scoreflow.training.checkpoint import save_checkpoint
    from scoreflow.training.config import TrainConfig
    from scoreflow.training.presets import load_preset
    from scoreflow.training.trainer import build_components, versions

    state = {tutorial_key(k): v for k, v in read_state_dict(path).items()}
    try:
        channels = [int(state[f"conv{i}.weight"].shape[0]) for i in range(1, 5)]
        embed_dim = 2 * int(state["embed.0.W"].shape[0])
        in_channels = int(state["conv1.weight"].shape[1])
    except KeyError as exc:
        raise CheckpointError(f"{path}: not the tutorial's ScoreNet: no parameter {exc.args[0]!r}") from None
    out = Path(out)
    if (out / "checkpoints").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a run; choose another --out or pass --overwrite")
    _check_real_finite(path, state)
    if "embed.1.weight" in state:  # Song's Colab
        preset, sde_options = "mnist-sigma25", {"sigma": float(sigma)}
        model_options: dict[str, Any] = {"channels": channels, "embed_dim": embed_dim}
    else:  # the seed tutorial
        preset, sde_options = "mnist-tutorial", {"sigma_min": float(sigma_min), "sigma_max": float(sigma_max)}
        model_options = {"channels": channels, "embed_dim": embed_dim, "embed_dense": False}
    train = load_preset(preset).train
    values = {**train, "sde_options": sde_options, "epochs": None, "steps": 1,
              "model_options": {**train.get("model_options", {}), **model_options}}
    config = TrainConfig.from_dict(values)
    fake = TensorData(torch.zeros(1, in_channels, 28, 28), None, "image")
    with torch.device("meta"):  # the layout and shapes first, allocating nothing: widths come from the file
        _, probe = build_components(config, fake)
    own = probe.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{path}: does not match the tutorial ScoreNet layout (missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]})")
    shapes = [k for k in own if own[k].shape != state[k].shape]
    if shapes:
        raise CheckpointError(f"{path}: parameter shapes differ from the U-Net's for {shapes[:5]}")
    sde, model = build_components(config, fake)  # now as large as the file's own tensors
    model.load_state_dict(state)
    meta = {"config": config.to_dict(), "sde": repr(sde), "versions": versions(), "losses": [],
            "data_shape": [in_channels, 28, 28], "data_kind": "image", "imported_from": Path(path).name,
            "notebook": preset}
    from scoreflow.training.run_folder import RunLock, prepare_run_folder

    with RunLock(out):  # a live trainer on this folder is refused, never repointed under it
        prepare_run_folder(out, resume=False, overwrite=overwrite)  # removes the old run's checkpoints and artefacts
        return save_checkpoint(out, 0, model=model, ema=None, optimizer=None, rng={}, meta=meta)
