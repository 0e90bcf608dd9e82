"""Reading a diffusers model folder written by ``save_pretrained``, offline and without pickles."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
from typing import Any

import scoreflow
from scoreflow.pretrained import ModelSource, SourceInfo
from scoreflow_diffusers.bridge import VE_SCHEDULERS, VP_SCHEDULERS, bridge

#: The network classes the bridge reads.
MODEL_CLASSES = ("UNet2DModel",)
WEIGHTS = "diffusion_pytorch_model.safetensors"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def model_folders(folder: str | Path) -> tuple[Path, Path]:
    """``(unet folder, scheduler folder)`` of a pipeline folder (``model_index.json``, ``unet/``,
    ``scheduler/``), a ``unet/`` + ``scheduler/`` pair, or one folder holding both configs."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"no diffusers model folder at {root}")
    for unet, scheduler in ((root / "unet", root / "scheduler"), (root, root)):
        if (unet / "config.json").is_file() and (scheduler / "scheduler_config.json").is_file():
            return unet, scheduler
    raise ValueError(f"{root} is not a diffusers model folder: expected model_index.json with unet/ and "
                     "scheduler/ (a pipeline's save_pretrained), unet/config.json and scheduler/"
                     "scheduler_config.json, or config.json beside scheduler_config.json")


def load_diffusers(folder: str | Path, *, device: str = "cpu") -> tuple[scoreflow.ScoreNet, scoreflow.SDE,
                                                                          SourceInfo]:
    """``(model, sde, info)`` of the diffusers model saved in ``folder`` (see :func:`model_folders`). Only
    safetensors weights are read (no pickle runs); nothing is downloaded."""
    import diffusers

    unet_dir, scheduler_dir = model_folders(folder)
    unet_config = _read_json(unet_dir / "config.json")
    model_class = unet_config.get("_class_name")
    if model_class not in MODEL_CLASSES:
        raise ValueError(f"{unet_dir / 'config.json'}: unsupported model class {model_class!r}; supported: "
                         f"{', '.join(MODEL_CLASSES)}")
    if not (unet_dir / WEIGHTS).is_file():
        raise FileNotFoundError(f"{unet_dir}: missing {WEIGHTS} (only safetensors weights are read; re-save the "
                                "model with save_pretrained(..., safe_serialization=True))")
    scheduler_config = _read_json(scheduler_dir / "scheduler_config.json")
    scheduler_class = scheduler_config.get("_class_name")
    if scheduler_class not in VP_SCHEDULERS + VE_SCHEDULERS:
        raise ValueError(f"{scheduler_dir / 'scheduler_config.json'}: unsupported scheduler {scheduler_class!r}; "
                         f"supported: {', '.join(VP_SCHEDULERS + VE_SCHEDULERS)}")
    scheduler = getattr(diffusers, scheduler_class).from_config(scheduler_config)
    unet = diffusers.UNet2DModel.from_pretrained(str(unet_dir), use_safetensors=True, local_files_only=True)
    model, sde = bridge(unet.to(device).eval(), scheduler)
    size = unet.config.sample_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    info = SourceInfo(source=f"diffusers:{folder}", data_shape=(int(unet.config.in_channels), int(height), int(width)),
                      eps=float(sde.default_eps),
                      description=f"{model_class} with {scheduler_class} "
                                  f"({scheduler_config.get('prediction_type', 'score')}, "
                                  f"{scheduler_config.get('beta_schedule', 'VE')})")
    return model, sde, info


#: Models shipped with the plugin (``diffusers:NAME``): folder name -> sha256 of each file, checked on every load.
SHIPPED_FOLDER = Path(__file__).resolve().parent / "models"


def shipped_models() -> dict[str, dict[str, str]]:
    """``{name: {relative file: sha256}}`` of the models shipped with the plugin."""
    manifest = SHIPPED_FOLDER / "manifest.json"
    return _read_json(manifest) if manifest.is_file() else {}


def shipped_model_folder(name: str) -> Path:
    """The folder of the shipped model ``name`` after every file's sha256 is checked against the manifest."""
    import hashlib

    models = shipped_models()
    if name not in models:
        raise ValueError(f"no shipped diffusers model {name!r}; shipped: {', '.join(sorted(models)) or 'none'}")
    folder = SHIPPED_FOLDER / name
    for relative, digest in models[name].items():
        path = folder / relative
        actual = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
        if actual != digest:
            raise ValueError(f"{path}: sha256 {actual} does not match the manifest's {digest}; reinstall "
                             "scoreflow-diffusers")
    return folder


class DiffusersSource(ModelSource):
    """``diffusers:DIR``: a folder written by diffusers' ``save_pretrained`` (see :func:`load_diffusers`), or
    ``diffusers:NAME`` for a model shipped with the plugin (:func:`shipped_models`) when no folder ``NAME``
    exists."""

    def load(self, location: str, *, device: str = "cpu"):
        if not Path(location).expanduser().exists() and location in shipped_models():
            model, sde, info = load_diffusers(shipped_model_folder(location), device=device)
            return model, sde, attrs.evolve(info, source=f"diffusers:{location}")
        return load_diffusers(location, device=device)
