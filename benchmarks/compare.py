"""Compare the quality rows (suite 1) of two benchmark records, row by row.

    python -m benchmarks.compare benchmarks/results/2026-11-28-full.json bench-quality/results.json

Rows are matched by (oracle, sampler, budget). A row is 'equal' when every figure agrees within
``10**-decimals``, absolute or relative to the figure (default 4: the records print 4 decimals, and the
standard errors of the gaps are about 100 times larger); the others are listed with both values, so a change in
a sampler shows up as exactly the rows it moved.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

FIGURES = ("nfe", "weight_tv", "spread_ratio", "logp_gap")


def _rows(path: str) -> dict[tuple, dict[str, Any]]:
    return {(r["oracle"], r["sampler"], r["budget"]): r for r in json.loads(Path(path).read_text())["quality"]
            if "logp_gap" in r}


def compare(old: str, new: str, decimals: int = 4) -> dict[str, Any]:
    """``{"equal": n, "changed": [(key, {figure: (old, new)})], "only_old": [...], "only_new": [...]}``."""
    a, b = _rows(old), _rows(new)
    changed = []
    equal = 0
    for key in sorted(set(a) & set(b), key=str):
        tol = 10.0 ** -decimals
        diffs = {f: (a[key][f], b[key][f]) for f in FIGURES
                 if not math.isclose(float(a[key][f]), float(b[key][f]), rel_tol=tol, abs_tol=tol)}
        if diffs:
            changed.append((key, diffs))
        else:
            equal += 1
    return {"equal": equal, "changed": changed, "only_old": sorted(set(a) - set(b), key=str),
            "only_new": sorted(set(b) - set(a), key=str)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--decimals", type=int, default=4)
    args = p.parse_args(argv)
    result = compare(args.old, args.new, args.decimals)
    print(f"{result['equal'] + len(result['changed'])} rows in both: {result['equal']} equal to {args.decimals} "
          f"decimals, {len(result['changed'])} changed; {len(result['only_old'])} only in {args.old}, "
          f"{len(result['only_new'])} only in {args.new}")
    for key, diffs in result["changed"]:
        print(" ".join(map(str, key)) + ": " + ", ".join(f"{f} {x:.4g} -> {y:.4g}" for f, (x, y) in diffs.items()))


if __name__ == "__main__":
    main()
