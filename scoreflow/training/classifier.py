"""Train, evaluate, save and load noise-conditional classifiers (for classifier guidance).

A classifier folder holds ``classifier.safetensors`` (weights) and ``classifier.json`` (the registered
classifier name, its options, the data it was trained on and its accuracy per noise level). Loading reads
only these two files, checks every tensor's shape against a model built on the ``meta`` device before any
memory is allocated, and never runs code from them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from scoreflow.data.base import TensorData
from scoreflow.errors import CheckpointError
from scoreflow.models.classifier import NoiseConditionalClassifier
from scoreflow.validators import MAX_PARAMETERS

FORMAT = "scoreflow-classifier"
FORMAT_VERSION = 1
#: Noise levels (data units) the accuracy is reported at.
REPORT_NOISE_LEVELS = (0.0, 0.1, 0.5, 1.0, 2.0, 5.0)
#: The smallest noise level classifiers are trained at (and the built-ins clamp their noise input to).
MIN_NOISE_LEVEL = 1e-3


def _host(host: Any):
    if host is not None:
        return host
    from scoreflow.plugins import get_host

    return get_host()


def train_noise_classifier(
    data: TensorData,
    sde: Any,
    *,
    model: str = "conv",
    model_options: dict[str, Any] | None = None,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 2e-3,
    eps: float = 1e-5,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    host: Any = None,
) -> tuple[NoiseConditionalClassifier, dict[str, Any]]:
    """Fit a registered classifier to ``p(y | x + noise_level * z)`` for every noise level sampling will show it:
    each example gets a level drawn log-uniformly between :data:`MIN_NOISE_LEVEL` and ``sde.noise_level(T)``
    (uniform ``t`` would almost never show the small levels where guidance decides the details: under the
    tutorial's SDE fewer than 1 % of uniform times have a level below 0.1), cross-entropy on the labels, Adam
    with cosine decay. (``eps`` is checked for compatibility with the run; the levels cover it.)

    Returns the model (eval mode) and the full options it was built with (for :func:`save_classifier`)."""
    from tqdm.auto import tqdm

    if data.labels is None:
        raise ValueError(f"dataset {data.name!r} has no labels; a classifier needs them")
    if epochs < 1 or batch_size < 1 or not (lr > 0 and math.isfinite(lr)) or not 0 < eps < sde.T:
        raise ValueError(f"need epochs >= 1, batch_size >= 1, 0 < lr < inf and 0 < eps < T; got {epochs}, "
                         f"{batch_size}, {lr}, {eps}")
    torch.manual_seed(seed)
    n_classes = int(data.labels.max()) + 1
    options = {"n_classes": n_classes, **_shape_options(model, data.sample_shape), **(model_options or {})}
    net = _host(host).classifiers.create(model, **options).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * math.ceil(len(data) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    log_lo = math.log(MIN_NOISE_LEVEL)
    log_hi = math.log(float(sde.noise_level(torch.tensor([sde.T], dtype=torch.float64))[0]))
    bar = tqdm(total=steps, desc="classifier", disable=not progress, leave=False)
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=g)
        for i in range(0, len(data), batch_size):
            idx = order[i:i + batch_size]
            x0, y = data.x[idx].to(device), data.labels[idx].to(device)
            u = torch.rand(len(idx), generator=g, dtype=torch.float64)
            level = torch.exp(log_lo + (log_hi - log_lo) * u).to(device=device, dtype=x0.dtype)
            noisy = x0 + level.reshape(-1, *[1] * (x0.dim() - 1)) * torch.randn(x0.shape, generator=g).to(device)
            loss = nn.functional.cross_entropy(net(noisy, level), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return net.eval(), options


def _shape_options(model: str, shape: tuple[int, ...]) -> dict[str, int]:
    if model in ("conv",) and len(shape) == 3:
        return {"in_channels": shape[0]}
    if model in ("mlp",):
        return {"dim": int(torch.Size(shape).numel())}
    return {}


@torch.no_grad()
def accuracy_by_noise_level(model: NoiseConditionalClassifier, data: TensorData,
                            noise_levels: tuple[float, ...] = REPORT_NOISE_LEVELS, *, seed: int = 0,
                            batch_size: int = 500) -> dict[str, float]:
    """Accuracy on ``data`` with Gaussian noise of each standard deviation added (keys: the levels as text)."""
    if data.labels is None:
        raise ValueError(f"dataset {data.name!r} has no labels")
    device = next(model.parameters()).device
    out = {}
    for level in noise_levels:
        g = torch.Generator().manual_seed(seed)
        correct = 0
        for i in range(0, len(data), batch_size):
            x0 = data.x[i:i + batch_size]
            x = x0 + level * torch.randn(x0.shape, generator=g)
            s = torch.full((len(x),), max(level, 1e-6))
            correct += int((model(x.to(device), s.to(device)).argmax(1).cpu() == data.labels[i:i + batch_size]).sum())
        out[f"{level:g}"] = correct / len(data)
    return out


def save_classifier(folder: str | Path, model: NoiseConditionalClassifier, *, name: str, options: dict[str, Any],
                    info: dict[str, Any] | None = None) -> Path:
    """Write ``classifier.safetensors`` and ``classifier.json`` into ``folder``."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "classifier.safetensors"))
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "classifier": name, "options": options,
            **(info or {})}
    (out / "classifier.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def load_classifier(folder: str | Path, *, device: str = "cpu", host: Any = None
                    ) -> tuple[NoiseConditionalClassifier, dict[str, Any]]:
    """Read a classifier folder written by :func:`save_classifier`: ``(model in eval mode, its json)``."""
    from safetensors import safe_open

    folder = Path(folder)
    meta_path, weights = folder / "classifier.json", folder / "classifier.safetensors"
    if not meta_path.is_file() or not weights.is_file():
        raise CheckpointError(f"no classifier at {str(folder)!r} (expected classifier.json and "
                              "classifier.safetensors, written by `scoreflow train-classifier`)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{meta_path}: unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{meta_path}: not a scoreflow classifier (format {FORMAT!r} version {FORMAT_VERSION})")
    name, options = meta.get("classifier"), meta.get("options")
    if not isinstance(name, str) or not isinstance(options, dict):
        raise CheckpointError(f"{meta_path}: 'classifier' must be a name and 'options' an object")
    registry = _host(host).classifiers
    try:
        with torch.device("meta"):  # shapes only: hostile options cannot allocate memory here
            shapes = {k: tuple(v.shape) for k, v in registry.create(name, **options).state_dict().items()}
        with safe_open(str(weights), framework="pt") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001  (unknown name or option, bad values, a corrupt safetensors header)
        raise CheckpointError(f"{folder}: cannot build classifier {name!r} with options {options!r}: {exc}") from None
    n_params = sum(math.prod(shape) for shape in shapes.values())
    if n_params > MAX_PARAMETERS:
        raise CheckpointError(f"{folder}: options ask for {n_params:,} parameters, more than {MAX_PARAMETERS:,}")
    if shapes != stored:
        diff = sorted(set(shapes.items()) ^ set(stored.items()))[:4]
        raise CheckpointError(f"{weights}: tensors do not match classifier {name!r} with its options (first "
                              f"differences: {diff})")
    from safetensors.torch import load_file

    model = registry.create(name, **options)
    model.load_state_dict(load_file(str(weights)))
    return model.to(device).eval(), meta
