"""The tools around the library: ``plugins``, ``list``, ``presets``, ``import-checkpoint``, ``plugin new`` and
``bench``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import attrs

from scoreflow.cli.arguments import add_command
from scoreflow.cli.loading import writable_folder


@attrs.frozen(kw_only=True)
class PluginsOptions:
    """``scoreflow plugins``."""

    json: bool = False


@attrs.frozen(kw_only=True)
class ListOptions:
    """``scoreflow list KIND``."""

    kind: str


@attrs.frozen(kw_only=True)
class ImportCheckpointOptions:
    """``scoreflow import-checkpoint PATH``."""

    path: str
    out: str
    sigma_min: float = 0.01
    sigma_max: float = 22.0
    sigma: float = 25.0
    overwrite: bool = False


@attrs.frozen(kw_only=True)
class PresetsOptions:
    """``scoreflow presets``."""

    verbose: bool = False


@attrs.frozen(kw_only=True)
class PluginNewOptions:
    """``scoreflow plugin new NAME``."""

    name: str
    out: str = "."


@attrs.frozen(kw_only=True)
class BenchOptions:
    """``scoreflow bench ARGS``: the arguments of ``python -m benchmarks``."""

    bench_args: list[str] = attrs.field(factory=list)


def add_commands(sub: Any) -> None:
    """Add the tool commands to the subcommands ``sub``."""
    import argparse

    from scoreflow.plugins import KINDS

    p = add_command(sub, "plugins", PluginsOptions, plugins,
                    help="list loaded plugins, their versions, components and failures")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p = add_command(sub, "list", ListOptions, list_components, help="list the registered components of one kind")
    p.add_argument("kind", choices=KINDS)
    p = add_command(sub, "import-checkpoint", ImportCheckpointOptions, import_checkpoint,
                    help="import a tutorial notebook's ckpt.pth (ScoreNet state_dict) as a scoreflow run (loaded "
                         "with weights_only: no code runs)")
    p.add_argument("path", help="the notebook's ckpt.pth (the seed tutorial's or Song's Colab, told apart by "
                                "its weights)")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--sigma-min", type=float, default=0.01, help="the seed tutorial's sigma_min (default: %(default)s)")
    p.add_argument("--sigma-max", type=float, default=22.0, help="the seed tutorial's sigma_max (default: %(default)s)")
    p.add_argument("--sigma", type=float, default=25.0,
                   help="Song's Colab's sigma in dx = sigma^t dw (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p = add_command(sub, "presets", PresetsOptions, presets,
                    help="list the shipped training presets (scoreflow train --preset NAME)")
    p.add_argument("-v", "--verbose", action="store_true", help="also print every option of each preset")
    p = sub.add_parser("plugin", help="plugin authoring tools")
    plugin_sub = p.add_subparsers(dest="plugin_command", required=True)
    q = add_command(plugin_sub, "new", PluginNewOptions, plugin_new,
                    help="write a ready plugin package skeleton (pyproject, component, test)")
    q.add_argument("name", help="plugin name, e.g. 'heun' (gives the distribution scoreflow-heun)")
    q.add_argument("--out", default=".", help="folder to create it in (default: %(default)s)")
    p = add_command(sub, "bench", BenchOptions, bench,
                    help="run the benchmark suites (python -m benchmarks; --help lists its options)", add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="options of python -m benchmarks")


def plugins(options: PluginsOptions) -> int:
    """Every loaded plugin with its distribution, components and failure (text or JSON)."""
    from scoreflow.plugins import get_host

    rows = get_host().plugins()
    if options.json:
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


def list_components(options: ListOptions) -> int:
    """The registered components of one kind, with their aliases and summaries."""
    from scoreflow.plugins import get_host

    for entry in get_host().registry(options.kind).entries():
        aliases = f" (aliases: {', '.join(entry.aliases)})" if entry.aliases else ""
        print(f"{entry.qualified_name}{aliases}  {entry.summary}")
    return 0


def import_checkpoint(options: ImportCheckpointOptions) -> int:
    """A tutorial notebook's checkpoint as a scoreflow run."""
    from scoreflow.pretrained.tutorial_import import import_tutorial_checkpoint

    folder = import_tutorial_checkpoint(options.path, options.out, sigma=options.sigma, sigma_min=options.sigma_min,
                                        sigma_max=options.sigma_max, overwrite=options.overwrite)
    print(f"wrote {folder}; sample it with: scoreflow sample --checkpoint {options.out} --no-ema")
    return 0


def presets(options: PresetsOptions) -> int:
    """The shipped training presets (with ``verbose``, every option of each)."""
    from scoreflow.training.presets import available_presets, load_preset

    for name in available_presets():
        preset = load_preset(name)
        print(f"{name}  {preset.description}")
        if options.verbose:
            for key, value in preset.train.items():
                print(f"    {key} = {value!r}")
    return 0


def plugin_new(options: PluginNewOptions) -> int:
    """A ready plugin package skeleton in ``out``."""
    from scoreflow.cli.plugin_template import new_plugin

    writable_folder(options.out)
    root = new_plugin(options.name, options.out)
    print(f"wrote {root}; next: pip install -e {root} && pytest {root / 'tests'}")
    return 0


def bench(options: BenchOptions) -> int:
    """``scoreflow bench ARGS`` is ``python -m benchmarks ARGS``: the importable benchmarks package, else the
    ``benchmarks/`` folder of the source checkout this scoreflow is installed from (run in a child process whose
    working folder is the checkout; this process's import path is never changed)."""
    import importlib.util
    import subprocess

    if importlib.util.find_spec("benchmarks") is not None:
        from benchmarks.__main__ import main as bench_main

        bench_main(options.bench_args)
        return 0
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "benchmarks" / "__main__.py").is_file():
        raise FileNotFoundError(
            "scoreflow bench runs the benchmarks/ folder of a scoreflow source checkout, which this "
            f"installation ({checkout}) does not have: clone the repository and pip install -e it")
    return subprocess.run([sys.executable, "-m", "benchmarks", *options.bench_args], cwd=checkout).returncode
