"""`scoreflow plugin new` writes a package that passes its own tests; plugin-control flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import pytest

from scoreflow import plugins as plugins_mod
from scoreflow.cli import main


def test_generated_package_passes_its_own_tests(tmp_path, capsys):
    assert main(["plugin", "new", "scoreflow-my-heun", "--out", str(tmp_path)]) == 0
    root = tmp_path / "scoreflow-my-heun"
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "scoreflow-my-heun"
    assert meta["project"]["entry-points"]["scoreflow"] == {"my_heun": "scoreflow_my_heun"}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "2 passed" in proc.stdout


def test_plugin_new_refuses_bad_names_and_existing_folders(tmp_path, capsys):
    assert main(["plugin", "new", "9bad", "--out", str(tmp_path)]) == 2
    assert "invalid plugin name '9bad'" in capsys.readouterr().err
    (tmp_path / "scoreflow-taken").mkdir()
    (tmp_path / "scoreflow-taken" / "keep.txt").write_text("mine")
    assert main(["plugin", "new", "taken", "--out", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "scoreflow-taken" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(("flags", "autoload", "blocked", "strict"), [
    (["--no-plugins"], False, set(), False),
    (["--block-plugin", "vp", "--block-plugin", "fast"], True, {"vp", "fast"}, False),
    (["--strict-plugins"], True, set(), True),
])
def test_plugin_control_flags(flags, autoload, blocked, strict, monkeypatch, capsys):
    monkeypatch.delenv("SCOREFLOW_BLOCKED_PLUGINS", raising=False)
    monkeypatch.delenv("SCOREFLOW_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("SCOREFLOW_STRICT_PLUGINS", raising=False)
    monkeypatch.setattr(plugins_mod, "_default_host", None)
    assert main([*flags, "plugins", "--json"]) == 0
    host = plugins_mod.get_host()
    assert (host.autoload, set(host.blocked), host.strict) == (autoload, blocked, strict)
    names = {row["name"] for row in json.loads(capsys.readouterr().out)}
    assert "scoreflow" in names and not (names & blocked)
    plugins_mod.set_host(None)
