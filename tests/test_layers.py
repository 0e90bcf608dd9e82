"""The package's layer contract (pyproject.toml, [tool.importlinter]) holds: no module imports a layer above it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> str | None:
    """The lint-imports program of this environment (beside its python, also when not activated)."""
    beside = Path(sys.executable).parent / "lint-imports"
    return str(beside) if beside.exists() else shutil.which("lint-imports")


def test_no_module_imports_a_higher_layer():
    exe = _lint_imports()
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    proc = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_a_module_importing_a_higher_layer_is_caught(tmp_path):
    """The contract is not vacuous: a stray import from a low layer into the CLI breaks it."""
    exe = _lint_imports()
    if exe is None:
        pytest.skip("import-linter is not installed")
    package = tmp_path / "scoreflow"
    shutil.copytree(ROOT / "scoreflow", package, ignore=shutil.ignore_patterns("*.safetensors", "__pycache__"))
    (package / "tensor.py").write_text((package / "tensor.py").read_text() + "\nfrom scoreflow import cli  # noqa\n")
    proc = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(tmp_path), "PATH": str(Path(exe).parent)})
    assert proc.returncode != 0 and "scoreflow.tensor is not allowed to import scoreflow.cli" in proc.stdout, (
        proc.stdout[-2000:] + proc.stderr[-2000:])


def test_components_given_as_instances_need_no_plugin_host(monkeypatch):
    """Names are resolved at the edges: ode_sample, log_likelihood and the Sampler, given instances (and an explicit
    grid), never ask for the plugin host."""
    import torch

    import scoreflow as sf
    from scoreflow import plugins

    def no_host(*args, **kwargs):
        raise AssertionError("get_host() called although every component was given as an instance")

    monkeypatch.setattr(plugins, "get_host", no_host)
    from scoreflow.testing import ring_oracle

    gm = ring_oracle()
    sde = sf.VESDE(sigma_min=0.01, sigma_max=10.0)
    solver = sf.TorchdiffeqSolver(method="rk4", num_steps=8)
    g = torch.Generator().manual_seed(0)
    assert sf.ode_sample(gm.score_model(sde), sde, (4, 2), sampler=sf.ProbabilityFlowSampler(solver=solver),
                         generator=g).samples.shape == (4, 2)
    result = sf.log_likelihood(gm.score_model(sde), sde, torch.zeros(3, 2), method=sf.ODELikelihood(solver=solver),
                              generator=g)
    assert torch.isfinite(result.logp).all()
    sampler = sf.Sampler(predictor=sf.ReverseDiffusion(), corrector=sf.Langevin(snr=0.16),
                         times=torch.linspace(1.0, 1e-3, 11, dtype=torch.float64),
                         condition=sf.Inpaint(torch.zeros(2), torch.tensor([True, False])))
    assert sampler.sample(gm.score_model(sde), sde, (4, 2), generator=g).nfe == 20
    trajectory = sf.Sampler(predictor=sf.TorchsdeSolver(method="euler"), num_steps=5, eps=1e-2)
    assert trajectory.sample(gm.score_model(sde), sde, (4, 2), generator=g).nfe > 0
    with pytest.raises(TypeError, match="expected a corrector name or a Corrector instance, got ReverseDiffusion"):
        sf.Sampler(predictor=sf.ReverseDiffusion(), corrector=sf.ReverseDiffusion())
    with pytest.raises(sf.errors.DroppedOptionsError, match="rtol"):
        from scoreflow.flow.probability_flow import resolve_solver

        resolve_solver(solver, rtol=1e-3)


def _runtime_imports(tree) -> list[str]:
    """Modules a module imports when it runs (at the top or inside functions), not those under TYPE_CHECKING."""
    import ast

    found: list[str] = []

    def visit(node) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_no_import_cycle_between_modules():
    """Lazy imports included: two modules that import each other (even inside a function) are one room in two
    files; the shared part belongs in a module of its own."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    modules = {}
    for path in (root / "scoreflow").rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {m: {t for t in _runtime_imports(ast.parse(p.read_text())) if t in modules and t != m
                 and not m.startswith(t + ".")} for m, p in modules.items()}  # a package's __init__ is its parent

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(graph[node])
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a)})
    assert not cycles, f"modules that import each other (directly or through others): {cycles}"


def test_the_public_names_are_listed_once_in_sorted_groups():
    """``scoreflow.__all__`` is curated: a comment heads each group, each group is sorted case-insensitively, no name
    is listed twice, and every listed name exists."""
    import re
    from pathlib import Path

    import scoreflow

    source = (Path(scoreflow.__file__).parent / "__init__.py").read_text()
    body = source[source.index("__all__ = [") + len("__all__ = ["):]
    body = body[:body.index("\n]")]
    groups: list[list[str]] = []
    for line in filter(str.strip, body.splitlines()):
        if line.strip().startswith("#"):
            groups.append([])
        else:
            groups[-1].extend(re.findall(r'"([^"]+)"', line))
    assert len(groups) >= 5 and all(groups)
    for group in groups:
        assert group == sorted(group, key=str.lower), group
    listed = [name for group in groups for name in group]
    assert listed == list(scoreflow.__all__) and len(set(listed)) == len(listed)
    assert all(hasattr(scoreflow, name) for name in listed)


def test_no_function_in_the_package_is_over_60_lines():
    import ast
    from pathlib import Path

    import scoreflow

    root = Path(scoreflow.__file__).parent
    long = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.add(f"scoreflow/{path.relative_to(root).as_posix()}:{node.name}")
    assert not long, f"over 60 lines: {sorted(long)}"


def test_command_modules_import_no_private_names_from_each_other():
    """What the command groups share is public (scoreflow.cli.loading, arguments, sampler_options)."""
    import ast
    from pathlib import Path

    import scoreflow.cli

    private = []
    for path in Path(scoreflow.cli.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("scoreflow.cli"):
                private += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert not private, private


def test_every_command_parses_into_a_frozen_typed_options_object():
    """No argparse Namespace reaches a command: each gets its attrs options, which cannot be changed on the way."""
    import argparse

    import attrs

    from scoreflow.cli.parser import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    minimal = {"list": ["sde"], "import-checkpoint": ["ckpt.pth", "--out", "o"], "plugin": ["new", "x"],
               "train": ["--out", "o"], "train-classifier": ["--checkpoint", "c", "--out", "o"],
               "inpaint": ["--checkpoint", "c", "--images", "test", "--mask", "center"],
               "img2img": ["--checkpoint", "c", "--images", "test"], "encode": ["--checkpoint", "c", "--images", "test"],
               "interpolate": ["--checkpoint", "c", "--images", "test"],
               "tune-schedule": ["--checkpoint", "c", "--nfe", "5"]}
    from scoreflow.cli.parser import parse_command

    for name in commands:
        args = [name, *minimal.get(name, ["--checkpoint", "c"] if name in ("sample", "likelihood", "evaluate",
                                                                                "calibrate") else [])]
        run, options, _ = parse_command(args)
        assert attrs.has(type(options)) and not isinstance(options, argparse.Namespace), name
        field = attrs.fields(type(options))[0].name
        try:
            setattr(options, field, None)
        except attrs.exceptions.FrozenInstanceError:
            pass
        else:
            raise AssertionError(f"{name}'s options can be changed")
        assert callable(run)
