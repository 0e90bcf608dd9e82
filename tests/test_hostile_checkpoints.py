"""A checkpoint's meta.json is validated before anything is built, allocated, read or created from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import scoreflow as sf
from scoreflow.cli import main
from scoreflow.training import TrainConfig, Trainer, load_checkpoint, load_trained

TINY = dict(dataset="digits", model_options={"channels": [8, 16, 16, 16], "embed_dim": 16}, batch_size=16)


@pytest.fixture
def run(tmp_path) -> Path:
    Trainer(TrainConfig(steps=1, **TINY), tmp_path / "run", progress=False).run()
    return tmp_path / "run"


def _edit_meta(run: Path, change) -> None:
    path = load_checkpoint(run).path / "meta.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("change, match", [
    (lambda m: m.update(data_shape=[2**62]), "data_shape must be 3 integer"),
    (lambda m: m.update(data_shape=[3, 4096, 4096]), "at most 16777216 elements"),
    (lambda m: m.update(data_shape="1,8,8"), "data_shape must be"),
    (lambda m: m.update(data_kind="audio"), "data_kind must be 'image' or 'vector'"),
    (lambda m: m["config"].update(model_options={"channels": [4096, 4096, 4096, 4096], "embed_dim": 4096}),
     "parameters, more than"),
    (lambda m: m["config"].update(model_options={"channels": [8, 16]}), "does not build a network"),
    (lambda m: m["config"].update(steps="many"), "invalid metadata .*steps must be an integer"),
    (lambda m: m.update(data_shape=[1, 1024, 1024]), r"data_shape \[1, 1024, 1024\] does not fit the run's dataset "
                                                     r"'digits', whose samples have shape \[1, 8, 8\]"),
])
def test_crafted_metadata_is_refused_before_allocation(run, change, match):
    _edit_meta(run, change)
    with pytest.raises(sf.CheckpointError, match=match):
        load_trained(run, ema=False)


def test_a_checkpoint_never_chooses_the_data_folder(run, tmp_path, capsys, monkeypatch):
    target = tmp_path / "chosen-by-the-file" / ".." / "elsewhere"
    _edit_meta(run, lambda m: (m["config"].update(dataset="mnist", data_dir=str(target)),
                               m.update(data_shape=[1, 28, 28])))
    monkeypatch.setattr("scoreflow.data.sources.DEFAULT_DATA_DIR", tmp_path / "default-cache")
    monkeypatch.setattr("scoreflow.data.idx.urllib.request.urlopen",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("no network in this test")))
    code = main(["likelihood", "--checkpoint", str(run), "--no-progress", "--no-ema"])
    assert code == 2
    assert not (tmp_path / "chosen-by-the-file").exists() and not (tmp_path / "elsewhere").exists()


def test_missing_ema_is_an_error_not_a_silent_fallback(run):
    folder = load_checkpoint(run).path
    (folder / "ema.safetensors").unlink()
    with pytest.raises(sf.CheckpointError, match="has no EMA weights.*--no-ema"):
        load_trained(run)
    load_trained(run, ema=False)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_checkpoint_files_honour_the_umask(tmp_path, umask):
    import os
    import stat

    old = os.umask(umask)
    try:
        Trainer(TrainConfig(steps=1, **TINY), tmp_path, progress=False).run()
    finally:
        os.umask(old)
    folder = load_checkpoint(tmp_path).path
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
    for file in [*folder.iterdir(), tmp_path / "checkpoints" / "latest"]:
        assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~umask, file.name


def test_a_malformed_optimizer_field_stops_only_resuming(tmp_path):
    import json

    from scoreflow.training import CheckpointError, TrainConfig, Trainer, load_trained
    from scoreflow.training.checkpoint import resolve_checkpoint

    config = TrainConfig(dataset="ring", model="mlp", model_options={"hidden": 16, "depth": 2}, steps=2)
    Trainer(config, tmp_path, progress=False).run()
    meta_path = resolve_checkpoint(tmp_path) / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["optimizer"] = {"state": {"0": {"exp_avg": {"tensor": "no.such.tensor"}}}, "param_groups": 7}
    meta_path.write_text(json.dumps(meta))
    model, _, _ = load_trained(tmp_path)  # sampling and evaluation do not need the optimizer
    assert model is not None
    with pytest.raises(CheckpointError, match="cannot resume: .*malformed optimizer state"):
        Trainer(TrainConfig(**{**config.to_dict(), "steps": 4}), tmp_path, progress=False).run(resume=True)


@pytest.mark.parametrize("content", ["[" * 200_000 + "]" * 200_000, " " * (65 * 2**20) + "{}"])
def test_a_meta_json_too_deep_or_too_large_is_refused(tmp_path, content):
    from scoreflow.training import CheckpointError, load_checkpoint

    (tmp_path / "meta.json").write_text(content)
    with pytest.raises(CheckpointError, match="meta.json: (unreadable|.* bytes, more than)"):
        load_checkpoint(tmp_path)
