"""The documentation site builds with ``mkdocs build --strict`` and holds what the issue promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import scoreflow
import scoreflow.tensor
from docs._hooks import tutorial_runner

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
pytest.importorskip("mkdocstrings", reason="the docs extra is not installed: pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1", **os.environ},
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def test_every_public_name_is_in_the_api_reference(site):
    html = (site / "reference" / "api" / "index.html").read_text()
    ids = set(re.findall(r'id="([^"]+)"', html))
    public = [f"scoreflow.{name}" for name in scoreflow.__all__]
    public += [f"scoreflow.tensor.{name}" for name in scoreflow.tensor.__all__]  # plugin authors' helpers
    missing = [name for name in public if name not in ids]
    assert not missing, f"public names without an API entry: {missing}"


def test_tutorial_pictures_are_in_the_site(site):
    for page in tutorial_runner.pages():
        html = (site / "tutorial" / page.stem / "index.html").read_text()
        for figure in tutorial_runner.figures(page.read_text()):
            assert (site / "tutorial" / figure).is_file(), f"{figure} missing from the built site"
            assert f"../{figure}" in html, f"{page.name}'s built page does not show {figure}"


def test_cli_reference_is_generated_from_the_parser(site):
    from scoreflow.cli import build_parser

    html = (site / "reference" / "cli" / "index.html").read_text()
    assert "cli-help" not in html, "the hook did not replace the marker"
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for command in sub.choices:
        assert f"usage: scoreflow {command}" in html, f"scoreflow {command} is missing from the CLI reference"
