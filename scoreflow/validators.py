"""attrs validators whose errors read as one sentence naming the option, the value and what is allowed.

(attrs' own ``in_`` and ``instance_of`` raise with a tuple of internals as the message.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs


def one_of(options: Iterable[str]):
    """The value must be one of ``options``."""
    allowed = tuple(options)

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in allowed:
            raise ValueError(f"Unknown {attribute.name} {value!r}. Available: {', '.join(allowed)}.")

    return check


def check_eps(eps: float, T: float) -> None:
    """The smallest time of a sampler or an integral must lie strictly inside ``(0, T)``."""
    if not 0 < eps < T:
        raise ValueError(f"eps must lie in (0, T={T}), got {eps!r}")


def positive_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """The value must be an integer (not a bool) above zero."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive integer, got {value!r}")


def non_negative_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """The value must be an integer (not a bool) of at least zero."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be a non-negative integer, got {value!r}")
