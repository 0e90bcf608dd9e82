"""MkDocs hook: show under each ```python block of a tutorial page what it printed when last run.

The outputs come from ``docs/tutorial/outputs/<page>.json``, written by
``python docs/_hooks/tutorial_runner.py`` (the same run that draws the pictures), so building the
site never executes the tutorial.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

_BLOCK = re.compile(r"^```python[^\n]*\n.*?^```[ \t]*$", re.S | re.M)
OUTPUTS = Path(__file__).resolve().parents[1] / "tutorial" / "outputs"


def with_outputs(markdown: str, outputs: list[str]) -> str:
    """``markdown`` with each python block followed by a ``text`` block of its output (when it printed)."""
    blocks = iter(outputs)

    def add(match: re.Match) -> str:
        printed = next(blocks, "").rstrip("\n")
        if not printed:
            return match.group(0)
        return f'{match.group(0)}\n\n```text title="printed"\n{printed}\n```'

    return _BLOCK.sub(add, markdown)


def on_page_markdown(markdown: str, page, **kwargs) -> str:
    src = page.file.src_path.replace("\\", "/")
    if not src.startswith("tutorial/"):
        return markdown
    recorded = OUTPUTS / f"{Path(src).stem}.json"
    if not recorded.is_file():
        return markdown
    return with_outputs(markdown, json.loads(recorded.read_text())["outputs"])
