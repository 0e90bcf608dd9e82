"""Pretrained models shipped inside packages, loaded offline by name and verified by sha256.

A pretrained model is a checkpoint folder (``meta.json``, ``model.safetensors`` and
optionally ``ema.safetensors``, as :func:`scoreflow.training.save_checkpoint` writes
them) plus the sha256 of each file, given when it is registered. Packages register
theirs through the ``scoreflow_register_pretrained`` hook::

    registry.add("mnist-tutorial", PretrainedModel.shipped("scoreflow.pretrained", "mnist-tutorial", SHA256))

and :func:`load_pretrained` rebuilds the network and its SDE from it.

Models trained with other libraries come in through a :class:`ModelSource` registered under the same kind and
addressed as ``NAME:LOCATION``: ``sf.load_pretrained("diffusers:path/to/folder")`` asks the source ``diffusers``
(the ``scoreflow-diffusers`` plugin) to load that folder.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from scoreflow.data.idx import sha256
from scoreflow.errors import CheckpointError

def _manifest() -> dict[str, dict[str, str]]:
    import json

    path = resources.files(__name__) / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


#: sha256 of every file of the models this package ships (manifest.json; checked on every load).
SHIPPED_SHA256: dict[str, dict[str, str]] = _manifest()

#: One line about each shipped model (``scoreflow list pretrained``).
SHIPPED_SUMMARIES: dict[str, str] = {
    "mnist": "scoreflow's default MNIST model (preset mnist: EDM preconditioning and weighting on the resunet network, "
             "VE(0.001, 50), dequantized, 16,000 steps of 32 on one CPU core); raw and EMA weights.",
    "mnist-density": "The mnist model fine-tuned for test bits/dim (preset mnist-density: likelihood weighting with "
                     "importance-sampled time, 6,000 steps of 32 from the shipped mnist weights); raw and EMA weights.",
    "mnist-cfg": "The mnist model fine-tuned into a class-conditional one for classifier-free guidance (preset "
                 "mnist-cfg: labels with dropout 0.1, adaptive_norm, 8,000 steps of 32); sample with "
                 "--class K [--guidance-scale W].",
    "mnist-tutorial": "The seed tutorial's MNIST run (preset mnist-tutorial: VE(0.01, 22), 50 epochs on CPU); raw and "
                      "EMA weights.",
    "mnist-sigma25": "Song's original Colab MNIST run (preset mnist-sigma25: dx = 25^t dw, 50 epochs on CPU); raw and "
                     "EMA weights; the model behind the controllable-generation and few-step figures.",
    "mnist-likelihood": "Song's Colab network and SDE (sigma 25) trained for likelihood (preset mnist-likelihood: "
                        "dequantization, likelihood weighting, importance-sampled t, 30 epochs); sample with EMA.",
}


file_sha256 = sha256  # the one file hash scoreflow uses (also for the IDX downloads)


@attrs.frozen
class PretrainedModel:
    """A checkpoint folder of a trained model and the sha256 of each of its files.

    Attributes:
        name: The registered name.
        folder: The checkpoint folder (``meta.json`` + ``*.safetensors``).
        sha256: File name -> expected hex digest; every listed file must match, and
            every ``.safetensors``/``.json`` file in the folder must be listed.
    """

    name: str
    folder: Path = attrs.field(converter=Path)
    sha256: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def shipped(cls, package: str, name: str, sha256: Mapping[str, str]) -> PretrainedModel:
        """The model in folder ``name`` of the importable package ``package``."""
        return cls(name, Path(str(resources.files(package) / name)), dict(sha256))

    def verify(self) -> Path:
        """Check every file's sha256; return the folder. Raises :class:`CheckpointError` naming a bad file."""
        if not self.folder.is_dir():
            raise CheckpointError(f"pretrained model {self.name!r}: folder {self.folder} is missing")
        if "meta.json" not in self.sha256 or "model.safetensors" not in self.sha256:
            raise CheckpointError(f"pretrained model {self.name!r}: its registration lists no sha256 for "
                                  "meta.json and model.safetensors")
        present = {p.name for p in self.folder.iterdir() if p.suffix in (".json", ".safetensors")}
        unlisted = sorted(present - set(self.sha256))
        if unlisted:
            raise CheckpointError(f"pretrained model {self.name!r}: unexpected file(s) {unlisted} in {self.folder}")
        for file, expected in self.sha256.items():
            path = self.folder / file
            if not path.is_file():
                raise CheckpointError(f"pretrained model {self.name!r}: missing {path}")
            actual = file_sha256(path)
            if actual != expected:
                raise CheckpointError(f"pretrained model {self.name!r}: {path} has sha256 {actual}, expected "
                                      f"{expected}; the file is corrupt or was changed (reinstall the package)")
        return self.folder


@attrs.frozen
class SourceInfo:
    """What a :class:`ModelSource` knows about a model it loaded (a scoreflow run has its ``TrainConfig``).

    Attributes:
        source: The source's registered name and the location, ``"NAME:LOCATION"``.
        data_shape: Shape of one sample, e.g. ``(3, 32, 32)``.
        eps: The smallest time the model was trained for (samplers and likelihoods should stop there).
        description: One line for reports (the model's class, prediction type, schedule).
    """

    source: str
    data_shape: tuple[int, ...]
    eps: float
    description: str = ""


class ModelSource(abc.ABC):
    """Loads models trained elsewhere as a scoreflow model and SDE; registered under the ``"pretrained"`` kind
    (hook ``scoreflow_register_pretrained``) and addressed as ``NAME:LOCATION``."""

    @abc.abstractmethod
    def load(self, location: str, *, device: str = "cpu") -> tuple[Any, Any, SourceInfo]:
        """``(model, sde, info)`` for ``location`` (a folder, for example); errors name what is wrong there."""


def split_source(name: str, host: Any = None) -> tuple[ModelSource, str] | None:
    """``(source, location)`` if ``name`` is ``NAME:LOCATION`` for a registered :class:`ModelSource`, else None."""
    from scoreflow.plugins import get_host

    prefix, sep, location = name.partition(":")
    if not sep or not location:
        return None
    host = host or get_host()
    if prefix not in host.available("pretrained"):
        return None
    source = host.create("pretrained", prefix)
    return (source, location) if isinstance(source, ModelSource) else None


def export_pretrained(run: str | Path, out: str | Path) -> dict[str, str]:
    """Copy a run's latest checkpoint into ``out`` as a shippable pretrained folder.

    Keeps the weights (raw and EMA) and the metadata (config, per-epoch losses), drops
    the optimizer and RNG state, and clears ``data_dir`` (a shipped model never names a
    folder of the machine it was trained on). Returns the sha256 of each written file.
    """
    import json
    import shutil

    from scoreflow.training.checkpoint import resolve_checkpoint

    src = resolve_checkpoint(run)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((src / "meta.json").read_text())
    meta["config"]["data_dir"] = None
    meta["optimizer"] = None
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    for name in ("model.safetensors", "ema.safetensors"):
        if (src / name).exists():
            shutil.copyfile(src / name, out / name)
    return {p.name: file_sha256(p) for p in sorted(out.iterdir()) if p.suffix in (".json", ".safetensors")}


def ship_pretrained(run: str | Path, name: str, package_folder: str | Path | None = None) -> dict[str, str]:
    """Export ``run`` as the shipped model ``name`` of this package and record its sha256 in manifest.json."""
    import json

    folder = Path(package_folder) if package_folder else Path(__file__).resolve().parent
    digests = export_pretrained(run, folder / name)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest[name] = digests
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return digests


def resolve_pretrained(name: str, *, host: Any = None) -> Path:
    """The verified folder of the registered pretrained model ``name``."""
    from scoreflow.plugins import get_host

    model = (host or get_host()).create("pretrained", name)
    return model.verify()


def load_pretrained(name: str, *, ema: bool = True, device: str = "cpu", host: Any = None) -> tuple[Any, Any, Any]:
    """``(model, sde, config)`` (a :class:`~scoreflow.training.LoadedModel`) of a registered pretrained model,
    offline, after its sha256 check; for
    ``NAME:LOCATION`` with a registered :class:`ModelSource` ``NAME``, ``(model, sde, info)`` from that source
    (``info`` a :class:`SourceInfo`; ``ema`` does not apply).

    Example: ``net, sde, cfg = sf.load_pretrained("mnist-tutorial")``.
    """
    from scoreflow.training.trainer import load_trained

    sourced = split_source(name, host)
    if sourced is not None:
        source, location = sourced
        return source.load(location, device=device)
    return load_trained(resolve_pretrained(name, host=host), ema=ema, device=device, host=host)


#: Folder (inside this package) of the shipped noise-conditional classifiers, with their own manifest.json.
NOISE_CLASSIFIERS = "noise-classifiers"


def _classifier_manifest() -> dict[str, dict[str, str]]:
    import json

    path = resources.files(__name__) / NOISE_CLASSIFIERS / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def shipped_classifier(name: str) -> Path:
    """The verified folder of the shipped noise-conditional classifier ``name`` (e.g. ``"mnist"``, for
    classifier guidance of the MNIST models): every file's sha256 is checked against the manifest."""
    manifest = _classifier_manifest()
    if name not in manifest:
        raise CheckpointError(f"no classifier folder or shipped noise-conditional classifier called {name!r}. "
                              f"Shipped: {', '.join(sorted(manifest)) or '(none)'}.")
    folder = Path(str(resources.files(__name__) / NOISE_CLASSIFIERS / name))
    for file, expected in manifest[name].items():
        path = folder / file
        if not path.is_file() or file_sha256(path) != expected:
            raise CheckpointError(f"shipped classifier {name!r}: {path} is missing or does not match its sha256 "
                                  "(reinstall the package)")
    return folder


def ship_classifier(folder: str | Path, name: str) -> dict[str, str]:
    """Copy a classifier folder (``scoreflow train-classifier --out``) into this package as ``name`` and record
    its sha256 (the machine-specific ``trained_from`` path is dropped from its json)."""
    import json

    src, package = Path(folder), Path(__file__).resolve().parent / NOISE_CLASSIFIERS
    out = package / name
    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((src / "classifier.json").read_text())
    meta.pop("trained_from", None)
    (out / "classifier.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    (out / "classifier.safetensors").write_bytes((src / "classifier.safetensors").read_bytes())
    digests = {p.name: file_sha256(p) for p in sorted(out.iterdir())}
    manifest_path = package / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest[name] = digests
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return digests
