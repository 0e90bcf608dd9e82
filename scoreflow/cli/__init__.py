"""The command line and the demos: the top layer, which only users and ``python -m scoreflow`` import.

- :mod:`scoreflow.cli.parser`: the ``scoreflow`` argument parser and :func:`main`;
- :mod:`scoreflow.cli.commands` and :mod:`scoreflow.cli.conditional_commands`: what each subcommand does
  (:mod:`scoreflow.cli.guidance`: the guidance of `sample --class`);
- :mod:`scoreflow.cli.mnist_demo` (``scoreflow demo``), :mod:`scoreflow.cli.digits_demo` (``digits-demo``),
  :mod:`scoreflow.cli.oracle_demo` (``oracle-demo``), :mod:`scoreflow.cli.plugin_template` (``plugin new``).
"""

from scoreflow.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
