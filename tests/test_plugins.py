"""Plugin host: inline plugins, entry-point discovery, broken plugins, controls and listing."""

from __future__ import annotations

import importlib.metadata
import sys
import types

import pytest

import scoreflow as sf
from scoreflow import plugins as plugins_mod


class DoubleEuler(sf.EulerMaruyama):
    """A test predictor."""


class InlinePlugin:
    @sf.hookimpl
    def scoreflow_register_predictors(self, registry):
        registry.add("double_euler", DoubleEuler, aliases=("deuler",))


def test_inline_plugin_registers_through_hooks(host):
    host.register(InlinePlugin(), name="inline")
    entry = host.predictors.get("deuler")
    assert entry.factory is DoubleEuler and entry.provider == "inline"
    assert "double_euler" in host.available("predictor")
    sampler = sf.Sampler(predictor="double_euler", num_steps=3, host=host)
    assert isinstance(sampler.predictor_obj, DoubleEuler)


def test_builtins_are_an_ordinary_plugin(host):
    assert host.pm.get_plugin("scoreflow") is None  # loading is lazy
    host.predictors
    assert host.pm.get_plugin("scoreflow") is not None
    assert {e.provider for e in host.predictors.entries()} == {"scoreflow"}
    bare = sf.PluginHost(autoload=False, builtins=False)
    assert bare.available("predictor") == []


def test_plugin_clashing_with_builtin_fails_without_breaking_others():
    class Clash:
        @sf.hookimpl
        def scoreflow_register_predictors(self, registry):
            registry.add("euler", DoubleEuler)

    host = sf.PluginHost(autoload=False, strict=False)
    host.register(Clash(), name="clash")
    with pytest.warns(sf.ScoreflowPluginWarning, match="plugin 'clash'.*already registered by 'scoreflow'"):
        entry = host.predictors.get("euler")
    assert entry.provider == "scoreflow"
    strict = sf.PluginHost(autoload=False, strict=True)
    strict.register(Clash(), name="clash")
    with pytest.raises(sf.PluginError, match="clash"):
        strict.predictors


def test_hook_that_raises_is_rolled_back():
    class Half:
        @sf.hookimpl
        def scoreflow_register_predictors(self, registry):
            registry.add("half_done", DoubleEuler)
            raise RuntimeError("boom")

    host = sf.PluginHost(autoload=False, strict=False)
    host.register(Half(), name="half")
    with pytest.warns(sf.ScoreflowPluginWarning, match="boom"):
        assert "half_done" not in host.available("predictor")
    assert any(f.name == "half" for f in host.failures)


def _adds(name):
    class Adds:
        @sf.hookimpl
        def scoreflow_register_predictors(self, registry):
            registry.add(name, DoubleEuler)

    return Adds()


def test_hooks_are_called_through_pluggy_so_tryfirst_and_wrappers_keep_their_meaning():
    """Built-ins first; then pluggy's order (last registered first, tryfirst before); a wrapper sees the others."""
    seen: list[list[str]] = []

    class Early:
        @sf.hookimpl(tryfirst=True)
        def scoreflow_register_predictors(self, registry):
            registry.add("early", DoubleEuler)

    class Wrapper:
        @sf.hookimpl(wrapper=True)
        def scoreflow_register_predictors(self, registry):
            seen.append(registry.names())  # before: only the built-ins
            result = yield
            seen.append(registry.names())  # after: every plugin's names
            return result

    host = sf.PluginHost(autoload=False, strict=True)
    host.register(Early(), name="early_plugin")
    host.register(_adds("first"), name="first_plugin")
    host.register(_adds("second"), name="second_plugin")
    host.register(Wrapper(), name="wrapper_plugin")
    order = [e.name for e in host.predictors.entries() if e.provider != "scoreflow"]
    assert order == ["early", "second", "first"]
    assert host.predictors.entries()[0].provider == "scoreflow"
    assert "early" not in seen[0] and "euler" in seen[0]
    assert {"early", "first", "second"} <= set(seen[1])
    assert host.predictors.get("early").provider == "early_plugin"


def test_misspelt_hook_is_reported():
    class Typo:
        @sf.hookimpl
        def scoreflow_register_predictor(self, registry):  # missing "s"
            registry.add("x", DoubleEuler)

    host = sf.PluginHost(autoload=False, strict=True)
    with pytest.raises(sf.PluginError, match="scoreflow_register_predictor"):
        host.register(Typo(), name="typo")


# -- entry points, faked through importlib.metadata ---------------------------------


class FakeDist:
    def __init__(self, name: str, version: str) -> None:
        self.metadata = {"Name": name}
        self.version = version


class FakeEntryPoint:
    def __init__(self, name: str, module: str, dist: FakeDist) -> None:
        self.name, self.value, self.dist, self.group = name, module, dist, "scoreflow"

    def load(self):
        __import__(self.value)
        return sys.modules[self.value]


@pytest.fixture
def fake_eps(monkeypatch):
    """Install fake modules and entry points; returns a function adding one."""
    eps: list[FakeEntryPoint] = []

    def entry_points(*, group=None, **_):
        return [ep for ep in eps if group in (None, ep.group)]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)

    def add(name: str, body: str | None, version: str = "1.0") -> None:
        module = f"fake_scoreflow_plugin_{name}"
        if body is not None:
            mod = types.ModuleType(module)
            exec(body, mod.__dict__)  # test-only: defines the fake plugin's hooks
            monkeypatch.setitem(sys.modules, module, mod)
        else:
            monkeypatch.delitem(sys.modules, module, raising=False)
        eps.append(FakeEntryPoint(name, module, FakeDist(f"scoreflow-{name}", version)))

    return add


GOOD = """
import scoreflow as sf
class Anneal(sf.Langevin):
    '''A fake annealed corrector.'''
@sf.hookimpl
def scoreflow_register_correctors(registry):
    registry.add("anneal", Anneal)
"""


def test_entry_point_plugin_is_discovered(fake_eps):
    fake_eps("good", GOOD, "2.3")
    host = sf.PluginHost(autoload=True, strict=True)
    entry = host.correctors.get("anneal")
    assert entry.provider == "good"
    row = next(r for r in host.plugins() if r.name == "good")
    assert (row.distribution, row.version, row.components) == ("scoreflow-good", "2.3", {"corrector": ("anneal",)})
    assert row.hooks == ("scoreflow_register_correctors",)


def test_broken_plugin_warns_and_the_rest_works(fake_eps):
    fake_eps("broken", None)  # module missing: ImportError on load
    fake_eps("good", GOOD)
    with pytest.warns(sf.ScoreflowPluginWarning, match=r"plugin 'broken' \(scoreflow-broken 1.0\) failed"):
        host = sf.PluginHost(autoload=True, strict=False)
        host.registry("corrector")
    assert "anneal" in host.available("corrector")
    row = next(r for r in host.plugins() if r.name == "broken")
    assert "ModuleNotFoundError" in row.failure
    with pytest.raises(sf.UnknownComponentError, match=r"note: plugin 'broken'"):
        host.correctors.get("missing")


def test_broken_plugin_raises_in_strict_mode(fake_eps, monkeypatch):
    fake_eps("broken", None)
    monkeypatch.setenv("SCOREFLOW_STRICT_PLUGINS", "1")
    with pytest.raises(sf.PluginLoadError, match=r"'broken' \(scoreflow-broken 1.0\)") as info:
        sf.PluginHost().registry("sde")
    assert isinstance(info.value.__cause__, ImportError)


def test_blocked_and_autoload_controls(fake_eps, monkeypatch):
    fake_eps("good", GOOD)
    monkeypatch.setenv("SCOREFLOW_BLOCKED_PLUGINS", "good, other")
    with pytest.warns(sf.ScoreflowPluginWarning, match=r"blocked plugin name\(s\) \['other'\] match no installed"):
        assert "anneal" not in sf.PluginHost(strict=True).available("corrector")
    monkeypatch.delenv("SCOREFLOW_BLOCKED_PLUGINS")
    monkeypatch.setenv("SCOREFLOW_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "anneal" not in sf.PluginHost(strict=True).available("corrector")
    assert "anneal" in sf.PluginHost(strict=True, autoload=True).available("corrector")


def test_two_plugins_same_name_ambiguous_and_qualified(fake_eps):
    fake_eps("one", GOOD)
    fake_eps("two", GOOD)
    host = sf.PluginHost(autoload=True, strict=True)
    with pytest.raises(sf.AmbiguousComponentError, match="one:anneal, two:anneal"):
        sf.Sampler(corrector="anneal", host=host)
    assert sf.Sampler(corrector="two:anneal", host=host).corrector_obj.snr == 0.15


def test_default_host_helpers(monkeypatch):
    host = sf.PluginHost(autoload=False)
    monkeypatch.setattr(plugins_mod, "_default_host", host)
    assert sf.get_host() is host
    assert "euler" in sf.available("predictor")
    assert isinstance(sf.create("predictor", "em"), sf.EulerMaruyama)
    with pytest.raises(sf.UnknownComponentError, match="Unknown component kind 'predictors'"):
        sf.available("predictors")


def _private_scoreflow_uses(source: str) -> list[str]:
    """Names under ``scoreflow`` that start with ``_`` (private), imported or used as attributes."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in {"scoreflow", "sf"}:
            modules = [f"scoreflow.{node.attr}"]
        for name in modules:
            parts = name.split(".")
            if parts[0] == "scoreflow" and any(p.startswith("_") and not p.startswith("__") for p in parts[1:]):
                found.append(name)
    return found


def test_private_use_detector_finds_private_names():
    assert _private_scoreflow_uses("from scoreflow._x import y\nimport scoreflow.sde._b\nscoreflow._c") == [
        "scoreflow._x", "scoreflow._x.y", "scoreflow.sde._b", "scoreflow._c"]
    assert _private_scoreflow_uses("from scoreflow.tensor import batch_broadcast\nscoreflow.__version__") == []


def test_bundled_plugins_use_only_scoreflows_public_api():
    """The issue's rule for plugins/: nothing reaches into scoreflow's private modules."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "plugins"
    sources = sorted(root.glob("*/src/**/*.py")) + sorted(root.glob("*/tests/*.py"))
    assert len(sources) >= 6
    offenders = {str(p.relative_to(root)): uses for p in sources if (uses := _private_scoreflow_uses(p.read_text()))}
    assert not offenders, offenders


def test_a_plugin_whose_second_hook_raises_loses_its_first_hooks_components_too():
    class Partial:
        @sf.hookimpl
        def scoreflow_register_predictors(self, registry):
            registry.add("partial_euler", DoubleEuler)

        @sf.hookimpl
        def scoreflow_register_correctors(self, registry):
            raise RuntimeError("second hook broken")

    host = sf.PluginHost(autoload=False, strict=False)
    host.register(Partial(), name="partial")
    host.register(_adds("neighbour"), name="neighbour_plugin")
    with pytest.warns(sf.ScoreflowPluginWarning, match="second hook broken"):
        assert "partial_euler" not in host.available("predictor")
    assert "euler" in host.available("predictor") and "neighbour" in host.available("predictor")
    with pytest.raises(ValueError, match="already registered"):
        host.register(host.pm.get_plugin("neighbour_plugin").plugin, name="again")


def test_replacing_a_builtin_keeps_its_aliases_and_leaves_the_defaults_alone():
    class Replacer:
        @sf.hookimpl
        def scoreflow_register_predictors(self, registry):
            registry.add("euler", DoubleEuler, replace=True)

    host = sf.PluginHost(autoload=False, strict=False)
    host.register(Replacer(), name="replacer")
    with pytest.warns(sf.ScoreflowPluginWarning, match="replaces predictor"):
        named = sf.Sampler(predictor="euler_maruyama", host=host)  # an alias of the replaced name
    assert type(named.predictor_obj) is DoubleEuler
    assert type(host.create("predictor", "em")) is DoubleEuler
    # a default is a built-in instance: a plugin changes only the samplers that ask for the name
    assert type(sf.Sampler(host=host).predictor_obj) is sf.EulerMaruyama


def test_misspelt_hook_name_gets_a_did_you_mean():
    class Typo:
        @sf.hookimpl
        def scoreflow_register_schedule(self, registry):  # missing "s"
            pass

    host = sf.PluginHost(autoload=False, strict=True)
    with pytest.raises(sf.PluginError, match="did you mean 'scoreflow_register_schedules'"):
        host.register(Typo(), name="typo")


def test_blocking_by_distribution_name_and_the_unknown_name_error_mentions_blocked_plugins(fake_eps):
    fake_eps("good", GOOD)  # distribution scoreflow-good
    host = sf.PluginHost(strict=True, blocked=["Scoreflow_Good"])
    assert "anneal" not in host.available("corrector")
    with pytest.raises(sf.UnknownComponentError, match=r"blocked plugins \(not loaded\): Scoreflow_Good"):
        host.create("corrector", "good:anneal")
