"""What the commands share: opening a checkpoint (a run, a shipped model or a model source), its dataset, output
folders, and the conversion between a model's data range and the ``[0, 1]`` of pictures and metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import torch


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
    from a model source such as ``diffusers:DIR`` (``config`` None).

    Attributes:
        given: The checkpoint as the user named it.
        location: Where it was loaded from: the verified run or checkpoint folder (a shipped model's folder), or
            the model source's text.
    """

    model: Any
    sde: Any
    data_shape: tuple[int, ...]
    eps: float
    config: Any = None
    given: str = ""
    location: str = ""


def open_model(checkpoint: str, *, device: str, ema: bool = True) -> OpenedModel:
    """``checkpoint`` loaded: ``NAME:LOCATION`` for a registered model source, else a run folder, checkpoint
    folder or shipped model (verified)."""
    from scoreflow.pretrained import split_source
    from scoreflow.training import load_trained
    from scoreflow.training.checkpoint import read_meta

    sourced = split_source(checkpoint)
    if sourced is not None:
        if not ema:
            raise ValueError(f"--no-ema applies to scoreflow checkpoints; {checkpoint!r} comes from a model "
                             "source, which has one set of weights")
        source, location = sourced
        model, sde, info = source.load(location, device=device)
        return OpenedModel(model, sde, tuple(info.data_shape), float(info.eps), given=checkpoint,
                           location=checkpoint)
    location = checkpoint_location(checkpoint)
    model, sde, config = load_trained(location, ema=ema, device=device)
    shape = tuple(read_meta(location)[1]["data_shape"])  # load_trained has checked it
    return OpenedModel(model, sde, shape, config.eps, config, given=checkpoint, location=location)


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


def write_json(path: str | None, data: dict) -> None:
    """``data`` as indented JSON at ``path`` (nothing when ``path`` is None)."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2) + "\n")


def dataset_for(opened: OpenedModel, split: str, *, dataset: str | None, data_dir: str | None) -> Any:
    """The dataset ``dataset`` names (``--dataset``), else the one the run was trained on, in memory; its
    samples must have the model's shape."""
    from scoreflow.data.streamed import ImageFiles
    from scoreflow.plugins import get_host

    if dataset is not None:
        data = get_host().create("dataset", dataset, split=split, data_dir=data_dir)
    else:
        data = _trained_dataset(opened, split, data_dir)
    if isinstance(data, ImageFiles):  # a streamed folder: the commands that measure a split read it into memory
        data = data.load()
    if tuple(data.sample_shape) != tuple(opened.data_shape):
        raise ValueError(f"dataset {data.name!r} holds samples of shape {tuple(data.sample_shape)}, but "
                         f"{opened.given!r} models shape {tuple(opened.data_shape)}: pass --dataset with data of "
                         "the model's shape")
    return data


def _trained_dataset(opened: OpenedModel, split: str, data_dir: str | None) -> Any:
    from scoreflow.plugins import get_host

    if opened.config is None:
        raise ValueError(f"{opened.given!r} comes from a model source and records no dataset: pass --dataset NAME "
                         "(see `scoreflow list dataset`)")
    cfg = opened.config
    # Data locations come from the user (--data-dir) or the dataset's default, never from the checkpoint file:
    # a crafted meta.json must not choose a folder to scan, create or download into. It may only be named.
    try:
        return get_host().create("dataset", cfg.dataset, split=split, data_dir=data_dir, **cfg.dataset_options)
    except FileNotFoundError as exc:
        if data_dir is None and cfg.data_dir:
            raise FileNotFoundError(f"{exc} (the run was trained with --data-dir {cfg.data_dir!r}; pass --data-dir "
                                    "again: a checkpoint never chooses a folder to read)") from exc
        raise
