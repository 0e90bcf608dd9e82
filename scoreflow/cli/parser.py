"""The ``scoreflow`` command line (also ``python -m scoreflow``): the global options, the subcommands of each
command group's module, and the one place where parsed arguments become a command's typed options."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import attrs


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from scoreflow.cli import (
        demo_commands,
        evaluation_commands,
        image_commands,
        sampling_commands,
        tool_commands,
        training_commands,
    )

    parser = argparse.ArgumentParser(prog="scoreflow", description="Score-based generative modeling through SDEs.")
    parser.add_argument("--no-plugins", action="store_true",
                        help="load no third-party plugins (also: SCOREFLOW_DISABLE_PLUGIN_AUTOLOAD=1)")
    parser.add_argument("--block-plugin", action="append", default=[], metavar="NAME",
                        help="skip this plugin; repeatable (also: SCOREFLOW_BLOCKED_PLUGINS=a,b)")
    parser.add_argument("--strict-plugins", action="store_true",
                        help="a plugin that fails to load is an error (also: SCOREFLOW_STRICT_PLUGINS=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (tool_commands, training_commands, sampling_commands, image_commands, evaluation_commands,
                  demo_commands):
        group.add_commands(sub)
    return parser


def parse_command(argv: Sequence[str] | None = None) -> tuple[Callable[[Any], int], Any, argparse.Namespace]:
    """``(run, options, args)`` of a command line: the command's function, its typed options and the global
    options (a usage error exits with status 2, as argparse does)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    options = args.make_options(args)
    if args.command == "bench":  # its options belong to python -m benchmarks, --help included
        options = attrs.evolve(options, bench_args=[*extra, *options.bench_args])
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args.run, options, args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scoreflow`` console script."""
    import signal
    import threading

    from scoreflow.errors import SamplingInterrupted, ScoreflowError, TrainingInterrupted
    from scoreflow.training import distributed as ddp

    run, options, args = parse_command(argv)

    class Terminated(KeyboardInterrupt):
        """SIGTERM, turned into an exception so that every command stops the way Ctrl-C stops it."""

    def terminate(signum, frame):
        raise Terminated()

    previous_term = None
    if threading.current_thread() is threading.main_thread():
        previous_term = signal.signal(signal.SIGTERM, terminate)
    try:
        _choose_plugins(args)
        code = int(run(options))
        ddp.shutdown(wait=True)
        return code
    except (TrainingInterrupted, SamplingInterrupted) as exc:
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank stops; one line says so
            print(f"scoreflow: {exc}", file=sys.stderr)
        return exc.exit_code
    except (ScoreflowError, ValueError, OSError) as exc:  # OSError: a path that cannot be read or written
        print(f"scoreflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM in a command without its own handling: one line, no traceback
        name, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("SIGINT", 130)
        if os.environ.get("RANK", "0") == "0":
            print(f"scoreflow: {args.command} stopped by {name}; its results were not written", file=sys.stderr)
        return code
    except MemoryError:
        print(f"scoreflow: error: {args.command} ran out of memory; ask for less (--num-samples, --batch-size, "
              "--max-samples or the network's size)", file=sys.stderr)
        return 2
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)


def _choose_plugins(args: argparse.Namespace) -> None:
    """The plugin host the global options ask for (``--no-plugins``, ``--block-plugin``, ``--strict-plugins``)."""
    if args.no_plugins or args.block_plugin or args.strict_plugins:
        from scoreflow.plugins import PluginHost, _env_list, set_host

        set_host(PluginHost(autoload=False if args.no_plugins else None,
                            blocked=(*_env_list("SCOREFLOW_BLOCKED_PLUGINS"), *args.block_plugin),
                            strict=True if args.strict_plugins else None))


if __name__ == "__main__":
    sys.exit(main())
