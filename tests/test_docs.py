"""Docs stay in step with the code: every hook is documented, the README example runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scoreflow import hookspecs

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("hook", sorted(hookspecs.HOOKS_BY_KIND.values()))
def test_every_hook_is_documented(hook):
    text = (ROOT / "docs" / "hooks.md").read_text()
    assert f"## {hook}(registry)" in text


def test_every_spec_is_in_the_kind_table():
    specs = {name for name in dir(hookspecs) if name.startswith("scoreflow_register_")}
    assert specs == set(hookspecs.HOOKS_BY_KIND.values())


def test_readme_python_example_runs():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README has a python example"
    exec(compile(blocks[0], "README.md", "exec"), {})  # runs the project's own README example
