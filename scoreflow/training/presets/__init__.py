"""Named training presets: TOML files shipped with the package (``scoreflow presets``).

A preset file holds a ``[preset]`` table (``description``, optional ``reference``) and a
``[train]`` table of :class:`~scoreflow.training.TrainConfig` fields. Options given on the
command line or in ``--config`` override the preset's.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

import attrs

from scoreflow.errors import UnknownPresetError

__all__ = ["Preset", "UnknownPresetError", "available_presets", "load_preset"]


@attrs.frozen
class Preset:
    """One shipped training preset."""

    name: str
    description: str
    reference: str
    train: dict[str, Any]


def _files() -> dict[str, Any]:
    folder = resources.files(__name__)
    return {f.name.removesuffix(".toml"): f for f in folder.iterdir() if f.name.endswith(".toml")}


def available_presets() -> list[str]:
    """Names of the shipped presets, sorted."""
    return sorted(_files())


def load_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name raises :class:`UnknownPresetError` listing the known ones."""
    files = _files()
    if name not in files:
        raise UnknownPresetError(f"Unknown preset {name!r}. Available: {', '.join(sorted(files))}.")
    data = tomllib.loads(files[name].read_text())
    header = data.get("preset", {})
    return Preset(name, header.get("description", ""), header.get("reference", ""), dict(data.get("train", {})))
