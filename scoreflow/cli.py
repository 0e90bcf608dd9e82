"""The ``scoreflow`` command line (also ``python -m scoreflow``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs


def _cmd_plugins(args: argparse.Namespace) -> int:
    from scoreflow.plugins import get_host

    rows = get_host().plugins()
    if args.json:
        print(json.dumps([attrs.asdict(r) for r in rows], indent=2))
        return 0
    for r in rows:
        version = f" {r.version}" if r.version else ""
        dist = f" [{r.distribution}{version}]" if r.distribution else ""
        print(f"{r.name}{dist}")
        for kind, names in r.components.items():
            print(f"  {kind}: {', '.join(names)}")
        if r.failure:
            print(f"  FAILED: {r.failure}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from scoreflow.plugins import get_host

    registry = get_host().registry(args.kind)
    for entry in registry.entries():
        aliases = f" (aliases: {', '.join(entry.aliases)})" if entry.aliases else ""
        print(f"{entry.qualified_name}{aliases}  {entry.summary}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from scoreflow.demo import run_demo

    rows = run_demo(Path(args.out), num_samples=args.num_samples, num_steps=args.num_steps, seed=args.seed)
    print((Path(args.out) / "report.md").read_text())
    print(f"wrote {Path(args.out) / 'samples.png'} and {Path(args.out) / 'report.md'}")
    return 0 if rows else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from scoreflow.plugins import KINDS

    parser = argparse.ArgumentParser(prog="scoreflow", description="Score-based generative modeling through SDEs.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plugins", help="list loaded plugins, their versions, components and failures")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_plugins)
    p = sub.add_parser("list", help="list the registered components of one kind")
    p.add_argument("kind", choices=KINDS)
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("demo", help="sample a 2-D Gaussian mixture with every sampler; write samples.png and report.md")
    p.add_argument("--out", default="scoreflow-demo", help="output folder (default: %(default)s)")
    p.add_argument("--num-samples", type=_positive_int, default=2000, help="samples per sampler")
    p.add_argument("--num-steps", type=_positive_int, default=500, help="predictor steps")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scoreflow`` console script."""
    from scoreflow.errors import ScoreflowError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ScoreflowError as exc:
        print(f"scoreflow: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
