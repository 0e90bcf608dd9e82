"""The package's layer contract (pyproject.toml, [tool.importlinter]) holds: no module imports a layer above it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> str | None:
    """The lint-imports program of this environment (beside its python, also when not activated)."""
    beside = Path(sys.executable).parent / "lint-imports"
    return str(beside) if beside.exists() else shutil.which("lint-imports")


def test_no_module_imports_a_higher_layer():
    exe = _lint_imports()
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    proc = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_a_module_importing_a_higher_layer_is_caught(tmp_path):
    """The contract is not vacuous: a stray import from a low layer into the CLI breaks it."""
    exe = _lint_imports()
    if exe is None:
        pytest.skip("import-linter is not installed")
    package = tmp_path / "scoreflow"
    shutil.copytree(ROOT / "scoreflow", package, ignore=shutil.ignore_patterns("*.safetensors", "__pycache__"))
    (package / "tensor.py").write_text((package / "tensor.py").read_text() + "\nfrom scoreflow import cli  # noqa\n")
    proc = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(tmp_path), "PATH": str(Path(exe).parent)})
    assert proc.returncode != 0 and "scoreflow.tensor is not allowed to import scoreflow.cli" in proc.stdout, (
        proc.stdout[-2000:] + proc.stderr[-2000:])
