"""Named component registries and the rules for resolving a name.

Rules, in order:

1. Objects that are not strings pass through :meth:`Registry.resolve` unchanged.
2. Names are normalised: ``name.strip().lower().replace("-", "_")``; canonical
   names match ``[a-z][a-z0-9_]*``.
3. ``"provider:name"`` selects one provider's component (the escape hatch when
   two plugins use one name).
4. A plugin may not take a name or alias owned by the built-in provider unless it
   passes ``replace=True``; two plugins sharing a name make the bare name
   ambiguous (an error that lists the qualified names), never last-wins.
5. Unknown names raise :class:`UnknownComponentError` listing every name and the
   closest matches.
"""

from __future__ import annotations

import difflib
import inspect
import re
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import attrs

from scoreflow.errors import (
    AmbiguousComponentError,
    DroppedOptionsError,
    DuplicateComponentError,
    RegistryError,
    ScoreflowPluginWarning,
    UnknownComponentError,
    UnknownOptionError,
)

T = TypeVar("T")

BUILTIN_PROVIDER = "scoreflow"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def _base_types(base: Any) -> tuple[type, ...]:
    """The classes of ``base`` (a class, a ``"module:Class"`` name, a tuple of them, or ``None``), imported."""
    import importlib

    bases = base if isinstance(base, tuple) else (() if base is None else (base,))
    out = []
    for one in bases:
        if isinstance(one, str):
            module, _, name = one.partition(":")
            one = getattr(importlib.import_module(module), name)
        out.append(one)
    return tuple(out)


def check_instance(kind: str, obj: Any, base: Any) -> Any:
    """``obj`` itself if it is an instance of ``base`` (see :class:`Registry`'s ``base``; ``None`` accepts
    anything), else a ``TypeError`` naming the kind and the classes allowed. Needs no plugin host."""
    bases = _base_types(base)
    if bases and not isinstance(obj, bases):
        raise TypeError(f"expected a {kind} name or a {' or '.join(b.__name__ for b in bases)} instance, "
                        f"got {type(obj).__name__}")
    return obj


def normalize_name(name: str) -> str:
    """Canonical spelling of a component name: stripped, lower case, ``-`` as ``_``."""
    if not isinstance(name, str):
        raise TypeError(f"component names are strings, got {type(name).__name__}: {name!r}")
    return name.strip().lower().replace("-", "_")


def _accepted(factory: Callable[..., Any]) -> set[str] | None:
    """Keyword names a factory accepts (``None`` if unknown: not inspectable or ``**kwargs``)."""
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and not p.name.startswith("_")}


def _first_doc_line(obj: object) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


@attrs.frozen
class Entry:
    """One registered component: its canonical name, factory and provenance."""

    name: str
    factory: Callable[..., Any]
    aliases: tuple[str, ...] = ()
    provider: str = BUILTIN_PROVIDER
    summary: str = ""

    @property
    def qualified_name(self) -> str:
        """``provider:name``, unique across all plugins."""
        return f"{self.provider}:{self.name}"

    def create(self, **options: Any) -> Any:
        """Build the component with ``options`` passed to its factory."""
        return self.factory(**options)


class Registry(Generic[T]):
    """Components of one kind (``"predictor"``, ``"sde"``, ...) keyed by name.

    Args:
        kind: The registry kind, used in error messages.
        base: If given, :meth:`resolve` passes instances of this class (or of any of these classes, or of
            the classes named ``"module:Class"``, imported on first use) through.
        notes: Called when composing an unknown-name error; returns extra lines
            (for example plugins that failed to load).
    """

    def __init__(
        self,
        kind: str,
        *,
        base: type | str | tuple[type | str, ...] | None = None,
        notes: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        self.kind = kind
        self.base = base
        self.current_provider = BUILTIN_PROVIDER
        self._notes = notes
        self._entries: list[Entry] = []
        self._keys: dict[str, list[Entry]] = {}

    # -- adding -------------------------------------------------------------
    def add(
        self,
        name: str,
        factory: Callable[..., T],
        *,
        aliases: Iterable[str] = (),
        replace: bool = False,
        summary: str | None = None,
    ) -> Entry:
        """Register ``factory`` under ``name`` (and ``aliases``) for the current provider.

        Raises:
            RegistryError: the name is malformed or the factory is not callable.
            DuplicateComponentError: the name or an alias belongs to a built-in
                component (or to this provider already) and ``replace`` is false.
        """
        canonical = self._check_key(name)
        alias_keys = tuple(dict.fromkeys(self._check_key(a) for a in aliases if normalize_name(a) != canonical))
        if not callable(factory):
            raise RegistryError(f"{self.kind} {canonical!r}: factory must be callable, got {factory!r}")
        provider = self.current_provider
        for key in (canonical, *alias_keys):
            for other in self._keys.get(key, []):
                protected = other.provider == BUILTIN_PROVIDER or other.provider == provider
                if protected and not replace:
                    raise DuplicateComponentError(
                        f"{self.kind} name {key!r} from {provider!r} is already registered by "
                        f"{other.provider!r} (as {other.qualified_name}); choose another name, "
                        "or pass replace=True to override it on purpose"
                    )
        inherited: list[str] = []
        if replace:
            for key in (canonical, *alias_keys):
                for other in list(self._keys.get(key, [])):
                    # the replacement answers to every name the replaced entry had (its aliases included)
                    inherited += [k for k in (other.name, *other.aliases)
                                  if k != canonical and k not in alias_keys and k not in inherited]
                    warnings.warn(
                        f"{provider!r} replaces {self.kind} {other.qualified_name} as {key!r}",
                        ScoreflowPluginWarning,
                        stacklevel=2,
                    )
                    self._drop(other)
        entry = Entry(
            name=canonical,
            factory=factory,
            aliases=(*alias_keys, *inherited),
            provider=provider,
            summary=summary if summary is not None else _first_doc_line(factory),
        )
        self._entries.append(entry)
        for key in (canonical, *entry.aliases):
            self._keys.setdefault(key, []).append(entry)
        return entry

    def remove_provider(self, provider: str) -> None:
        """Forget every component added by ``provider`` (used when its hook fails)."""
        for entry in [e for e in self._entries if e.provider == provider]:
            self._drop(entry)

    def _drop(self, entry: Entry) -> None:
        self._entries.remove(entry)
        for key in (entry.name, *entry.aliases):
            remaining = [e for e in self._keys.get(key, []) if e is not entry]
            if remaining:
                self._keys[key] = remaining
            else:
                self._keys.pop(key, None)

    def _check_key(self, name: str) -> str:
        key = normalize_name(name)
        if not _NAME_RE.match(key):
            raise RegistryError(
                f"invalid {self.kind} name {name!r}: names start with a letter and use only "
                "letters, digits, '_' or '-'"
            )
        return key

    # -- lookup -------------------------------------------------------------
    def get(self, name: str) -> Entry:
        """Resolve ``name`` (canonical, alias or ``provider:name``) to its entry."""
        key = normalize_name(name)
        if ":" in key:
            provider, _, bare = key.partition(":")
            matches = [e for e in self._keys.get(bare, []) if normalize_name(e.provider) == provider]
        else:
            matches = self._keys.get(key, [])
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            listed = ", ".join(sorted(e.qualified_name for e in matches))
            raise AmbiguousComponentError(
                f"{self.kind} name {name!r} is provided by several plugins: {listed}. "
                "Use a qualified name such as "
                f"{sorted(e.qualified_name for e in matches)[0]!r}"
            )
        raise UnknownComponentError(self._unknown_message(name, key))

    def _unknown_message(self, name: str, key: str) -> str:
        msg = f"Unknown {self.kind} {name!r}. Available: {self.describe_names() or '(none)'}."
        close = difflib.get_close_matches(key.partition(":")[2] or key, sorted(self._keys), n=3, cutoff=0.6)
        if close:
            msg += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
        for line in self._notes() if self._notes else ():
            msg += f"\nnote: {line}"
        return msg

    def describe_names(self) -> str:
        """``"a (aliases: x, y), b"``: every canonical name with its aliases."""
        parts = []
        for entry in sorted(self._entries, key=lambda e: (e.name, e.provider)):
            label = entry.name if len(self._keys[entry.name]) == 1 else entry.qualified_name
            if entry.aliases:
                label += f" (aliases: {', '.join(sorted(entry.aliases))})"
            parts.append(label)
        return ", ".join(parts)

    def create(self, name: str, /, **options: Any) -> T:
        """Build the component registered as ``name`` with ``options``.

        An option the factory does not take raises :class:`UnknownOptionError` (a ``TypeError``)
        naming it and the options the factory accepts.
        """
        entry = self.get(name)
        try:
            return entry.create(**options)
        except TypeError as exc:
            accepted = _accepted(entry.factory)
            unknown = [k for k in options if accepted is not None and k not in accepted]
            if unknown and "unexpected keyword" in str(exc):
                raise UnknownOptionError(
                    f"{self.kind} {entry.name!r} does not take option(s) {', '.join(map(repr, unknown))}. "
                    f"Allowed: {', '.join(sorted(accepted)) or '(none)'}."
                ) from exc
            raise

    def resolve(self, obj: str | T, /, **options: Any) -> T:
        """Return ``obj`` itself if it is an instance (which carries its own options: any given here raise
        :class:`~scoreflow.errors.DroppedOptionsError`), else build it by name with ``options``."""
        if isinstance(obj, str):
            return self.create(obj, **options)
        if options:
            raise DroppedOptionsError(f"options {sorted(options)} cannot apply to the {self.kind} instance "
                                      f"{type(obj).__name__}; set them on it")
        return check_instance(self.kind, obj, self.base)

    def names(self) -> list[str]:
        """Sorted canonical names (each once, even if several providers use it)."""
        return sorted({e.name for e in self._entries})

    def entries(self) -> list[Entry]:
        """Every entry, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.get(name)
        except RegistryError:
            return False
        return True

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry(kind={self.kind!r}, names={self.names()!r})"
