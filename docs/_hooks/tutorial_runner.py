"""Execute the ```python blocks of the tutorial pages, in order, one namespace per page.

The test suite (``tests/test_docs_tutorial.py``) runs every page in a scratch folder and checks
that each picture the page shows was written by that run, so the tutorial cannot rot. What each
block prints is recorded in ``docs/tutorial/outputs/<page>.json``; the site shows it under the block
(``docs/_hooks/tutorial_outputs.py``). To refresh the committed pictures and outputs after changing a page:

    python docs/_hooks/tutorial_runner.py            # all pages, figures into docs/tutorial/figures
    python docs/_hooks/tutorial_runner.py 04-training.md
"""

from __future__ import annotations

import io
import json
import re
import sys
import time
from contextlib import chdir, redirect_stdout
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorial"
OUTPUTS = TUTORIAL / "outputs"
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


class _Tee(io.StringIO):
    """Keeps what a block prints and still shows it."""

    def __init__(self, stream) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(text)
        return super().write(text)


def outputs_file(page: Path) -> Path:
    """Where the printed output of ``page``'s blocks is recorded."""
    return OUTPUTS / f"{Path(page).stem}.json"


def run_page(page: Path, workdir: Path, *, record: bool = False) -> dict:
    """Run the page's blocks with ``workdir`` as the current folder (figures land in ``workdir/figures``).

    The namespace gets ``__outputs__``: what each block printed; ``record`` also writes it to
    :func:`outputs_file`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    page, workdir = Path(page).resolve(), Path(workdir).resolve()
    (workdir / "figures").mkdir(parents=True, exist_ok=True)
    namespace: dict = {"__name__": f"tutorial_{page.stem.replace('-', '_')}"}
    printed = []
    with chdir(workdir):
        for i, source in enumerate(code_blocks(page.read_text()), start=1):
            tee = _Tee(sys.stdout)
            with redirect_stdout(tee):
                exec(compile(source, f"{page.name} (block {i})", "exec"), namespace)
            printed.append(tee.getvalue())
    plt.close("all")
    namespace["__outputs__"] = printed
    if record:
        OUTPUTS.mkdir(exist_ok=True)
        outputs_file(page).write_text(json.dumps({"page": page.name, "outputs": printed}, indent=1) + "\n")
    return namespace


def main(argv: list[str]) -> int:
    chosen = [p for p in pages() if not argv or p.name in argv]
    if not chosen:
        print(f"no page named {argv}; pages: {[p.name for p in pages()]}", file=sys.stderr)
        return 2
    for page in chosen:
        start = time.perf_counter()
        run_page(page, TUTORIAL, record=True)
        print(f"{page.name}: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
