"""Every code block of the tutorial pages runs, and each page's run writes the pictures it shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docs._hooks import tutorial_runner as runner  # the repository root is on pytest's pythonpath

PAGES = runner.pages()
SLOW_PAGES = {"04-training.md"}  # trains a network for about 30 s
MNIST_PAGES = {"07-mnist.md"}  # reads the MNIST IDX files
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_every_step_of_the_notebook_has_a_page():
    names = [p.name for p in PAGES]
    assert names == ["01-score.md", "02-perturbing.md", "03-reverse-sde.md", "04-training.md",
                     "05-sampling.md", "06-likelihood.md", "07-mnist.md", "08-controllable.md"]
    for page in PAGES:
        assert runner.code_blocks(page.read_text()), f"{page.name} has no python block"
        assert runner.figures(page.read_text()), f"{page.name} shows no picture"


def test_block_extraction_keeps_order_and_ignores_other_languages():
    text = "a\n```python\nx = 1\n```\n```bash\nrm -rf /\n```\n```python\ny = x + 1\n```\n![p](figures/p.png)\n"
    assert runner.code_blocks(text) == ["x = 1\n", "y = x + 1\n"]
    assert runner.figures(text) == ["figures/p.png"]


@pytest.mark.parametrize(
    "page", [pytest.param(p, id=p.name, marks=[pytest.mark.slow] if p.name in SLOW_PAGES else []) for p in PAGES]
)
def test_tutorial_page_runs_and_draws_its_pictures(page, tmp_path, monkeypatch):
    if page.name in MNIST_PAGES:
        if not (SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
            pytest.skip("MNIST IDX files not in ../shared/data/mnist")
        monkeypatch.setattr("scoreflow.data.sources.DEFAULT_DATA_DIR", SHARED_DATA)
    namespace = runner.run_page(page, tmp_path)  # the pages assert their own numbers against exact answers
    recorded = json.loads(runner.outputs_file(page).read_text())["outputs"]
    assert len(recorded) == len(namespace["__outputs__"]), f"{page.name}: rerun docs/_hooks/tutorial_runner.py"
    assert [bool(o) for o in recorded] == [bool(o) for o in namespace["__outputs__"]]
    for figure in runner.figures(page.read_text()):
        written = tmp_path / figure
        assert written.is_file() and written.stat().st_size > 1000, f"{page.name}: the run did not write {figure}"
        committed = page.parent / figure
        assert committed.is_file(), f"{figure} is not committed: run python docs/_hooks/tutorial_runner.py {page.name}"


def test_site_shows_each_blocks_output_under_it():
    from docs._hooks.tutorial_outputs import with_outputs

    text = "intro\n```python\nprint(1)\n```\nmiddle\n```python\nx = 2\n```\n```python\nprint(x)\n```\n"
    shown = with_outputs(text, ["1\n", "", "2\n"])
    assert shown.count('```text title="printed"') == 2
    assert shown.index("print(1)") < shown.index("1\n```\nmiddle") < shown.index("print(x)")
