"""Execute the ```python blocks of the tutorial pages, in order, one namespace per page.

The test suite (``tests/test_docs_tutorial.py``) runs every page in a scratch folder and checks
that each picture the page shows was written by that run, so the tutorial cannot rot. To refresh
the committed pictures after changing a page:

    python docs/_hooks/tutorial_runner.py            # all pages, figures into docs/tutorial/figures
    python docs/_hooks/tutorial_runner.py 04-training.md
"""

from __future__ import annotations

import re
import sys
import time
from contextlib import chdir
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorial"
_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
_FIGURE = re.compile(r"!\[[^\]]*\]\((figures/[^)\s]+)\)")


def pages() -> list[Path]:
    """The executable tutorial pages, in reading order."""
    return sorted(p for p in TUTORIAL.glob("[0-9][0-9]-*.md"))


def code_blocks(markdown: str) -> list[str]:
    """The source of every ```python fenced block, in order."""
    return [m.group(1) for m in _BLOCK.finditer(markdown)]


def figures(markdown: str) -> list[str]:
    """Relative paths of the pictures under ``figures/`` that the page shows."""
    return _FIGURE.findall(markdown)


def run_page(page: Path, workdir: Path) -> dict:
    """Run the page's blocks with ``workdir`` as the current folder (figures land in ``workdir/figures``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    page, workdir = Path(page).resolve(), Path(workdir).resolve()
    (workdir / "figures").mkdir(parents=True, exist_ok=True)
    namespace: dict = {"__name__": f"tutorial_{page.stem.replace('-', '_')}"}
    with chdir(workdir):
        for i, source in enumerate(code_blocks(page.read_text()), start=1):
            exec(compile(source, f"{page.name} (block {i})", "exec"), namespace)
    plt.close("all")
    return namespace


def main(argv: list[str]) -> int:
    chosen = [p for p in pages() if not argv or p.name in argv]
    if not chosen:
        print(f"no page named {argv}; pages: {[p.name for p in pages()]}", file=sys.stderr)
        return 2
    for page in chosen:
        start = time.perf_counter()
        run_page(page, TUTORIAL)
        print(f"{page.name}: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
