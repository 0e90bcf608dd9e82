"""MkDocs hook: fill ``reference/cli.md`` with the CLI's own ``--help`` output at build time.

The page holds the marker ``<!-- cli-help -->``; this hook replaces it with the help of
``scoreflow`` and of every subcommand, taken from :func:`scoreflow.cli.build_parser`, so the
reference cannot drift from the program.
"""

from __future__ import annotations

import argparse
import os

MARKER = "<!-- cli-help -->"


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:  # argparse keeps subcommands only here
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _walk(parser: argparse.ArgumentParser, prefix: str):
    yield prefix, parser
    for name, sub in _subparsers(parser):
        yield from _walk(sub, f"{prefix} {name}")


def cli_reference_markdown() -> str:
    """Markdown with one section per command, each holding that command's ``--help``."""
    from scoreflow.cli import build_parser

    os.environ.setdefault("COLUMNS", "100")  # argparse wraps to the terminal width; fix it
    parts = []
    for command, parser in _walk(build_parser(), "scoreflow"):
        parts.append(f"## `{command}`\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, cli_reference_markdown())
    return markdown
