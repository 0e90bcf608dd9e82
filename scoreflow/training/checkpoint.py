"""Checkpoints: safetensors for tensors, JSON for everything else, written atomically.

Layout of a run folder::

    run/checkpoints/step_000100/{model,ema,optimizer,rng}.safetensors + meta.json
    run/checkpoints/latest          # the name of the newest complete checkpoint

A checkpoint folder is written under a temporary name and renamed into place,
then ``latest`` is replaced atomically, so a crash never leaves a corrupt
"latest". Loading reads only safetensors and JSON: no pickle, no code executed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import attrs
import torch

from scoreflow.errors import CheckpointError

FORMAT = "scoreflow-checkpoint"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, meta_state = {}, {}
    for pid, entries in state["state"].items():
        meta_state[str(pid)] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{key}"] = value.detach().cpu().contiguous()
                meta_state[str(pid)][key] = {"tensor": f"state.{pid}.{key}"}
            else:
                meta_state[str(pid)][key] = {"value": value}
    return tensors, {"state": meta_state, "param_groups": state["param_groups"]}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state = {}
    for pid, entries in meta["state"].items():
        state[int(pid)] = {k: tensors[v["tensor"]] if "tensor" in v else v["value"] for k, v in entries.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run_dir: Path, step: int, *, model: torch.nn.Module, ema: torch.nn.Module | None,
                    optimizer: torch.optim.Optimizer | None, rng: dict[str, torch.Tensor],
                    meta: dict[str, Any], keep_last: int = 0) -> Path:
    """Write a complete checkpoint for ``step`` and point ``latest`` at it.

    Re-saving an existing step never leaves ``latest`` without a complete folder: the new
    one is written under a fresh name (``step_N.1``, ...), ``latest`` is pointed at it, and
    only then are the older saves of that step removed. ``keep_last`` > 0 then deletes all but the newest ``keep_last`` checkpoints.
    """
    from safetensors.torch import save_file

    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:07d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        save_file(_cpu(model.state_dict()), str(tmp / "model.safetensors"))
        if ema is not None:
            save_file(_cpu(ema.state_dict()), str(tmp / "ema.safetensors"))
        opt_meta = None
        if optimizer is not None:
            opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
            save_file(opt_tensors or {"_empty": torch.zeros(0)}, str(tmp / "optimizer.safetensors"))
        save_file({k: v.cpu().contiguous() for k, v in rng.items()}, str(tmp / "rng.safetensors"))
        full_meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "step": step, "optimizer": opt_meta, **meta}
        _write_json(tmp / "meta.json", full_meta)
        honour_umask(tmp)
        previous = sorted(p for p in root.iterdir() if p.name == name or p.name.startswith(name + "."))
        final = root / name
        version = 0
        while final.exists():  # a re-save of this step: a new name, so `latest` never points at a gap
            version += 1
            final = root / f"{name}.{version}"
        os.replace(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        from safetensors import SafetensorError

        if isinstance(exc, (OSError, SafetensorError)):  # a full disk shows up as either, depending on the file
            raise CheckpointError(f"could not write the checkpoint of step {step} into {root} ({exc}); the disk may "
                                  "be full or read-only. Nothing was replaced: 'latest' still names the previous "
                                  "checkpoint") from exc
        raise
    _atomic_write_text(root / "latest", final.name + "\n")
    for stale in previous:  # older saves of this step, now superseded
        if checkpoint_step(stale) is not None:
            remove_checkpoint(stale)
    if keep_last > 0:
        others = sorted((entry for entry in (_ordered_checkpoint(p) for p in root.iterdir() if p != final)
                         if entry is not None), key=lambda entry: entry[:2])
        for *_, stale in others[:max(0, len(others) + 1 - keep_last)]:
            remove_checkpoint(stale)
    return final


#: The files :func:`save_checkpoint` writes into a checkpoint folder (nothing else is ever deleted there).
CHECKPOINT_FILES = frozenset({"meta.json", "model.safetensors", "ema.safetensors", "optimizer.safetensors",
                              "rng.safetensors"})
#: A checkpoint's meta.json larger than this is not read (crafted or corrupt).
MAX_META_BYTES = 64 << 20


def checkpoint_step(folder: Path) -> int | None:
    """The step a scoreflow checkpoint folder records in its ``meta.json``; ``None`` for anything else (a folder
    scoreflow did not write, a symlink, unreadable or foreign metadata)."""
    meta = folder / "meta.json"
    try:
        if folder.is_symlink() or not folder.is_dir() or meta.is_symlink() or not meta.is_file() \
                or meta.stat().st_size > MAX_META_BYTES:
            return None
        data = json.loads(meta.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    step = data.get("step") if isinstance(data, dict) and data.get("format") == FORMAT else None
    return step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else None


def _ordered_checkpoint(folder: Path) -> tuple[int, int, Path] | None:
    """``(recorded step, re-save number, folder)`` of a checkpoint folder, for ordering by step, never by name."""
    step = checkpoint_step(folder) if folder.name.startswith("step_") else None
    if step is None:
        return None
    suffix = folder.name.partition(".")[2]
    return step, int(suffix) if suffix.isdigit() else 0, folder


def remove_checkpoint(folder: Path) -> None:
    """Delete the files scoreflow writes in a checkpoint folder, and the folder if nothing else is left in it
    (a file scoreflow did not write keeps its folder)."""
    for path in folder.iterdir():
        if path.name in CHECKPOINT_FILES and not path.is_symlink() and path.is_file():
            path.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def honour_umask(path: Path) -> None:
    """Give ``path`` (a file, or a folder and the files in it) the permissions the umask allows.

    ``tempfile`` creates 0600 files and 0700 folders whatever the umask, which would hide runs from
    the other users of a shared disk; plain ``open`` and ``mkdir`` honour it, and so do checkpoints.
    """
    mask = _umask()
    if path.is_dir():
        os.chmod(path, 0o777 & ~mask)
        for child in path.iterdir():
            if child.is_file():
                os.chmod(child, 0o666 & ~mask)
    else:
        os.chmod(path, 0o666 & ~mask)


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _write_json(path: Path, data: Any) -> None:
    _atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder from a run folder, a ``checkpoints`` folder or a checkpoint folder."""
    path = given = Path(path)
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES or _looks_like_pickle(path):
            raise CheckpointError(
                f"refusing to load {path}: it is a pickle file, which can execute code when loaded. "
                "scoreflow checkpoints are folders of .safetensors files plus meta.json"
            )
        path = path.parent
    for candidate in (path, path / "checkpoints"):
        latest = candidate / "latest"
        if latest.is_file():
            name = latest.read_text().strip()
            if "/" in name or "\\" in name or name.startswith("."):
                raise CheckpointError(f"{latest}: invalid checkpoint name {name!r}")
            return candidate / name
    if (path / "meta.json").is_file():
        return path
    raise CheckpointError(f"no scoreflow checkpoint at {given} (expected meta.json or checkpoints/latest)")


def _looks_like_pickle(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(2)
    return len(head) == 2 and head[0] == 0x80 and head[1] <= 5


def read_meta(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """``(checkpoint folder, its checked meta.json)`` without reading any tensor (for a run's config and data
    shape)."""
    folder = resolve_checkpoint(path)
    meta_file = folder / "meta.json"
    try:
        size = meta_file.stat().st_size
        if size > MAX_META_BYTES:
            raise CheckpointError(f"{meta_file}: {size:,} bytes, more than the {MAX_META_BYTES:,} a checkpoint's "
                                  "metadata may have; refusing to read it")
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep to parse
        raise CheckpointError(f"{meta_file}: unreadable ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{folder}: not a scoreflow checkpoint (meta.json format is {meta.get('format')!r})"
                              if isinstance(meta, dict) else f"{folder}: meta.json is not an object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{folder}: format_version {meta.get('format_version')!r}, supported: {FORMAT_VERSION}")
    return folder, meta


@attrs.frozen
class Checkpoint:
    """A checkpoint as read from its folder (tensors on CPU).

    Attributes:
        meta: Its meta.json: step, config, data shape, losses, optimizer layout, ...
        model: The network's weights.
        ema: The weights' exponential moving average (``None`` for an EMA-less checkpoint).
        optimizer: The optimizer's state (``None`` where none was saved or it could not be read).
        optimizer_error: Why the saved optimizer state could not be read (only resuming needs it), else ``None``.
        rng: The generators' states to resume from (empty where none were saved).
        path: The checkpoint folder.
    """

    meta: dict[str, Any]
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
    optimizer: dict[str, Any] | None
    optimizer_error: str | None
    rng: dict[str, torch.Tensor]
    path: Path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read the checkpoint ``path`` names (a checkpoint folder, or a run folder: its latest checkpoint)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder, meta = read_meta(path)

    def tensors(name: str, required: bool) -> dict[str, torch.Tensor] | None:
        file = folder / f"{name}.safetensors"
        if not file.exists():
            if required:
                raise CheckpointError(f"{folder}: missing {file.name}")
            return None
        try:
            return load_file(str(file))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{file}: corrupt safetensors file ({exc})") from exc

    opt = tensors("optimizer", False)
    optimizer, optimizer_error = None, None
    if opt is not None and meta.get("optimizer") is not None:
        try:  # only resuming needs it: a malformed optimizer field must not stop sampling or evaluation
            optimizer = _unflatten_optimizer(opt, meta["optimizer"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            optimizer_error = f"{folder / 'meta.json'}: malformed optimizer state ({type(exc).__name__}: {exc})"
    return Checkpoint(meta=meta, model=tensors("model", True), ema=tensors("ema", False), optimizer=optimizer,
                      optimizer_error=optimizer_error, rng=tensors("rng", False) or {}, path=folder)
