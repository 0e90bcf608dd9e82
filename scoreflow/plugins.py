"""The plugin host: a pluggy manager, entry-point discovery and the registries.

Built-in components are an ordinary plugin (:mod:`scoreflow.builtin`) registered
first; third-party distributions are found through the ``scoreflow`` entry-point
group.  Loading is lazy (on first registry access) and happens once.

Environment controls (each also a constructor argument):

* ``SCOREFLOW_DISABLE_PLUGIN_AUTOLOAD=1``: do not load entry points.
* ``SCOREFLOW_BLOCKED_PLUGINS=a,b``: skip these entry-point names.
* ``SCOREFLOW_STRICT_PLUGINS=1``: a broken plugin raises instead of warning.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
import warnings
from collections.abc import Iterable
from typing import Any

import attrs
import pluggy

from scoreflow import hookspecs
from scoreflow.errors import PluginError, PluginLoadError, ScoreflowPluginWarning
from scoreflow.registry import BUILTIN_PROVIDER, Registry

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
KINDS: tuple[str, ...] = tuple(hookspecs.HOOKS_BY_KIND)


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def _env_flag(name: str) -> bool:
    """A boolean environment variable; anything but the allowed spellings is an error naming them (a typo such
    as 'ture' must not silently mean false)."""
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"environment variable {name}={os.environ[name]!r} is not a boolean; allowed: "
                     f"{', '.join(_TRUE)} (true) or {', '.join(repr(v) for v in _FALSE)} (false)")


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in os.environ.get(name, "").split(",") if p.strip())


@attrs.frozen
class PluginFailure:
    """A plugin that could not be loaded or whose hook failed."""

    name: str
    distribution: str | None
    error: str

    def describe(self) -> str:
        """One line: ``plugin 'x' (dist 1.0) failed to load: ImportError: ...``."""
        where = f" ({self.distribution})" if self.distribution else ""
        return f"plugin {self.name!r}{where} failed: {self.error}"


@attrs.frozen
class PluginInfo:
    """One row of the plugin listing."""

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    components: dict[str, tuple[str, ...]]
    failure: str | None = None


class PluginHost:
    """Owns the pluggy manager, the loaded plugins and one registry per kind.

    Args:
        autoload: load ``scoreflow`` entry points (default: unless
            ``SCOREFLOW_DISABLE_PLUGIN_AUTOLOAD`` is set).
        blocked: entry-point names to skip (default: ``SCOREFLOW_BLOCKED_PLUGINS``).
        strict: raise on a broken plugin instead of warning (default:
            ``SCOREFLOW_STRICT_PLUGINS``).
        builtins: register the built-in components (tests may turn this off).
    """

    def __init__(
        self,
        *,
        autoload: bool | None = None,
        blocked: Iterable[str] | None = None,
        strict: bool | None = None,
        builtins: bool = True,
    ) -> None:
        self.autoload = (not _env_flag("SCOREFLOW_DISABLE_PLUGIN_AUTOLOAD")) if autoload is None else autoload
        self.blocked = frozenset(_env_list("SCOREFLOW_BLOCKED_PLUGINS") if blocked is None else blocked)
        self.strict = _env_flag("SCOREFLOW_STRICT_PLUGINS") if strict is None else strict
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self._order: list[str] = []
        self._dists: dict[str, importlib.metadata.Distribution | None] = {}
        self._registries: dict[str, Registry] | None = None
        self._filling: dict[str, Registry] | None = None
        self._failed_now: set[str] = set()
        self._loaded = False
        self._builtins = builtins

    # -- registration -------------------------------------------------------
    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin object or module; registries are rebuilt on next use."""
        self._ensure_loaded()
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__.lower()
        return self._add_plugin(plugin, name, dist=None)

    def _add_plugin(self, plugin: object, name: str | None, dist: Any) -> str:
        if any(getattr(p, "plugin", None) is plugin for p in self.pm.get_plugins()):
            raise ValueError(f"plugin {plugin!r} is already registered")
        guarded = _GuardedPlugin(plugin, self)
        plugin_name = self.pm.register(guarded, name=name)
        if plugin_name is None:  # blocked inside pluggy
            return name or ""
        guarded.name = plugin_name
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(guarded)
            failure = PluginFailure(plugin_name, _dist_label(dist),
                                    f"{type(exc).__name__}: {exc}{_hook_name_hint(plugin)}")
            self._fail(failure, exc, PluginError)
            return plugin_name
        self._order.append(plugin_name)
        self._dists[plugin_name] = dist
        self._registries = None
        return plugin_name

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._builtins:  # by name, as entry points are: the plugin layer does not import the components
            builtin = importlib.import_module(hookspecs.BUILTIN_MODULE)
            self._add_plugin(builtin, BUILTIN_PROVIDER, dist=_own_distribution())
        if self.autoload:
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        eps = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
        blocked = {_normal(b) for b in self.blocked}
        known: set[str] = set()
        for ep in eps:
            dist_name = _dist_name(getattr(ep, "dist", None))
            known |= {_normal(ep.name)} | ({_normal(dist_name)} if dist_name else set())
            if _normal(ep.name) in blocked or (dist_name and _normal(dist_name) in blocked):
                self.pm.set_blocked(ep.name)  # by plugin name or by distribution name
                continue
            if self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
                continue
            dist = getattr(ep, "dist", None)
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not break scoreflow
                failure = PluginFailure(ep.name, _dist_label(dist), f"{type(exc).__name__}: {exc}")
                self._fail(failure, exc, PluginLoadError)
                continue
            self._add_plugin(plugin, ep.name, dist)
        unmatched = sorted(b for b in self.blocked if _normal(b) not in known)
        if unmatched:
            warnings.warn(f"blocked plugin name(s) {unmatched} match no installed plugin or distribution "
                          f"(installed plugins: {', '.join(sorted(ep.name for ep in eps)) or 'none'})",
                          ScoreflowPluginWarning, stacklevel=3)

    def _fail(self, failure: PluginFailure, exc: BaseException, error: type[Exception]) -> None:
        """Record a broken plugin; warn, or raise ``error`` in strict mode."""
        self.failures.append(failure)
        if self.strict:
            where = f" ({failure.distribution})" if failure.distribution else ""
            raise error(f"Error in scoreflow plugin {failure.name!r}{where}: {failure.error}") from exc
        warnings.warn(failure.describe(), ScoreflowPluginWarning, stacklevel=3)

    # -- registries ---------------------------------------------------------
    def registry(self, kind: str) -> Registry:
        """The registry of ``kind`` (one of :data:`KINDS`), filled on first use."""
        self._ensure_loaded()
        if self._registries is None:
            self._registries = self._fill_registries()
        try:
            return self._registries[kind]
        except KeyError:
            from scoreflow.errors import UnknownComponentError

            raise UnknownComponentError(
                f"Unknown component kind {kind!r}. Available: {', '.join(self._registries)}."
            ) from None

    def _notes(self) -> list[str]:
        """Extra lines for unknown-name errors: broken plugins, and the plugins blocked on purpose."""
        lines = [f.describe() for f in self.failures]
        if self.blocked:
            lines.append(f"blocked plugins (not loaded): {', '.join(sorted(self.blocked))}")
        return lines

    def _fill_registries(self) -> dict[str, Registry]:
        """Call each kind's hook through pluggy: the built-ins first (plugins may replace their names), then every
        other plugin in one hook call, so pluggy's ``tryfirst``/``trylast`` and hook wrappers keep their meaning.
        Each implementation runs guarded (see :class:`_GuardedPlugin`): a failing plugin loses every component it
        added, in every kind, and the others load."""
        registries = {
            kind: Registry(kind, base=hookspecs.BASES_BY_KIND.get(kind), notes=self._notes)
            for kind in KINDS
        }
        self._filling = registries
        self._failed_now = set()
        builtin = self.pm.get_plugin(BUILTIN_PROVIDER)
        others = [p for p in self.pm.get_plugins() if p is not builtin]
        try:
            for kind, hook_name in hookspecs.HOOKS_BY_KIND.items():
                if builtin is not None:
                    self.pm.subset_hook_caller(hook_name, remove_plugins=others)(registry=registries[kind])
                self.pm.subset_hook_caller(hook_name, remove_plugins=[builtin] if builtin else [])(
                    registry=registries[kind])
        finally:
            self._filling = None
        return registries

    def _call_guarded(self, plugin_name: str, hook_name: str, function: Any, args: tuple, kwargs: dict) -> Any:
        """Run one plugin's hook implementation with the registry credited to it; on an exception, roll back what
        the plugin added to every registry and record the failure (raised in strict mode)."""
        registries = self._filling
        if registries is None:  # called outside a registry fill (a user calling the hook): nothing to credit
            return function(*args, **kwargs)
        if plugin_name in self._failed_now:
            return None
        reg = registries[hookspecs.KIND_BY_HOOK[hook_name]]
        reg.current_provider = plugin_name
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            self._failed_now.add(plugin_name)
            for filled in registries.values():  # all or nothing: roll back its other hooks too
                filled.remove_provider(plugin_name)
            dist = _dist_label(self._dists.get(plugin_name))
            self._fail(PluginFailure(plugin_name, dist, f"{hook_name}: {type(exc).__name__}: {exc}"), exc,
                       PluginError)
            return None
        finally:
            reg.current_provider = BUILTIN_PROVIDER

    @property
    def sdes(self) -> Registry:
        """Registry of SDEs."""
        return self.registry("sde")

    @property
    def score_nets(self) -> Registry:
        """Registry of score networks."""
        return self.registry("score_net")

    @property
    def predictors(self) -> Registry:
        """Registry of predictors."""
        return self.registry("predictor")

    @property
    def trajectory_solvers(self) -> Registry:
        """Registry of whole-trajectory solvers."""
        return self.registry("trajectory_solver")

    @property
    def correctors(self) -> Registry:
        """Registry of correctors."""
        return self.registry("corrector")

    @property
    def ode_solvers(self) -> Registry:
        """Registry of ODE solvers."""
        return self.registry("ode_solver")

    @property
    def datasets(self) -> Registry:
        """Registry of datasets."""
        return self.registry("dataset")

    @property
    def schedules(self) -> Registry:
        """Registry of time schedules."""
        return self.registry("schedule")

    @property
    def pretrained(self) -> Registry:
        """Registry of pretrained models."""
        return self.registry("pretrained")

    @property
    def conditions(self) -> Registry:
        """Registry of sampling conditions (inpainting, guidance)."""
        return self.registry("condition")

    @property
    def classifiers(self) -> Registry:
        """Registry of noise-conditional classifiers."""
        return self.registry("classifier")

    @property
    def feature_extractors(self) -> Registry:
        """Registry of sample-quality feature extractors."""
        return self.registry("feature_extractor")

    def available(self, kind: str) -> list[str]:
        """Canonical names registered for ``kind``."""
        return self.registry(kind).names()

    def create(self, kind: str, name: str, /, **options: Any) -> Any:
        """Build the ``kind`` component called ``name`` with ``options``."""
        return self.registry(kind).create(name, **options)

    # -- listing ------------------------------------------------------------
    def plugins(self) -> list[PluginInfo]:
        """Every plugin: name, distribution, version, hooks, components and failures."""
        regs = {kind: self.registry(kind) for kind in KINDS}
        rows = []
        for name in self._order:
            plugin = self.pm.get_plugin(name)
            dist = self._dists.get(name)
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or ()))
            components = {
                kind: tuple(e.name for e in reg.entries() if e.provider == name) for kind, reg in regs.items()
            }
            failure = next((f.error for f in self.failures if f.name == name), None)
            rows.append(PluginInfo(name, _dist_name(dist), _dist_version(dist), hooks,
                                   {k: v for k, v in components.items() if v}, failure))
        for f in self.failures:
            if f.name not in self._order:
                rows.append(PluginInfo(f.name, f.distribution, None, (), {}, f.error))
        return rows


def _normal(name: str) -> str:
    """Plugin and distribution names compare case-insensitively, with '-' and '_' alike."""
    return name.strip().lower().replace("-", "_")


class _GuardedPlugin:
    """A plugin as pluggy sees it: the plugin's hook implementations, with their pluggy options (``tryfirst``,
    ``trylast``, ``wrapper``, ...) untouched, each run through :meth:`PluginHost._call_guarded` (wrappers run as
    they are). ``plugin`` is the plugin object itself."""

    def __init__(self, plugin: object, host: PluginHost) -> None:
        self.plugin = plugin
        self.name = ""
        marker = f"{hookspecs.PROJECT_NAME}_impl"
        for attr in dir(plugin):
            try:
                value = getattr(plugin, attr)
            except Exception:  # noqa: S112 - a property that fails is not a hook implementation
                continue
            opts = getattr(value, marker, None)
            if not isinstance(opts, dict) or not callable(value):
                continue
            if opts.get("wrapper") or opts.get("hookwrapper"):
                setattr(self, attr, value)
            else:
                setattr(self, attr, self._guard(attr, value, host))

    def _guard(self, hook_name: str, function: Any, host: PluginHost) -> Any:
        @functools.wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            return host._call_guarded(self.name, hook_name, function, args, kwargs)

        return guarded

    def __repr__(self) -> str:
        return f"<scoreflow plugin {self.name!r}: {self.plugin!r}>"


def _hook_name_hint(plugin: object) -> str:
    """'; did you mean ...' for hook implementations whose names are not scoreflow hooks."""
    import difflib

    known = list(hookspecs.HOOKS_BY_KIND.values())
    hints = []
    for name in dir(plugin):
        if name.startswith("scoreflow_") and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hints.append(f"{name!r} is not a scoreflow hook" + (f"; did you mean {close[0]!r}?" if close else ""))
    return (" (" + "; ".join(hints) + ")") if hints else ""


def _own_distribution() -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution("scoreflow")
    except importlib.metadata.PackageNotFoundError:
        return None


def _dist_name(dist: Any) -> str | None:
    return None if dist is None else dist.metadata["Name"]


def _dist_version(dist: Any) -> str | None:
    return None if dist is None else dist.version


def _dist_label(dist: Any) -> str | None:
    return None if dist is None else f"{_dist_name(dist)} {_dist_version(dist)}"


_default_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide default host, created on first use."""
    global _default_host
    if _default_host is None:
        _default_host = PluginHost()
    return _default_host


def set_host(host: PluginHost | None) -> None:
    """Replace the default host (``None`` makes the next :func:`get_host` build a fresh one)."""
    global _default_host
    _default_host = host


def available(kind: str, *, host: PluginHost | None = None) -> list[str]:
    """Names of the registered components of ``kind`` (built-ins and installed plugins)."""
    return (host or get_host()).available(kind)


def create(kind: str, name: str, /, *, host: PluginHost | None = None, **options: Any) -> Any:
    """Build a registered component: ``create("predictor", "euler")``."""
    return (host or get_host()).create(kind, name, **options)
