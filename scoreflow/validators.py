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


#: The most parameters a network built from a file's metadata may have (checkpoints, classifiers); counted on
#: PyTorch's ``meta`` device before anything is allocated.
MAX_PARAMETERS = 1_000_000_000


def check_eps(eps: float, T: float) -> None:
    """The smallest time of a sampler or an integral must lie strictly inside ``(0, T)``."""
    if not 0 < eps < T:
        raise ValueError(f"eps must lie in (0, T={T}), got {eps!r}")


def positive_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """The value must be an integer (not a bool) above zero."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive integer, got {value!r}")


def positive_number(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """The value must be a finite number (not a bool) above zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < float(value) < float("inf"):
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


def sde_time(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """A time on an SDE's interval: a finite number above zero (not a bool). Where it lies against the SDE's end
    time ``T`` (``eps`` below it, a start time at most it) is checked when the SDE is known (:func:`check_eps`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < float(value) < float("inf"):
        where = "below" if attribute.name == "eps" else "at most"
        raise ValueError(f"{attribute.name} must be a positive number {where} the SDE's end time T, got {value!r}")


def boolean(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """The value must be ``True`` or ``False`` (not 1 or "yes")."""
    if not isinstance(value, bool):
        raise ValueError(f"{attribute.name} must be true or false, got {value!r}")


def non_negative_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """The value must be an integer (not a bool) of at least zero."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be a non-negative integer, got {value!r}")


#: The most memory one request (a sample batch, probe vectors, warm-up draws) may ask for before any allocation;
#: ``SCOREFLOW_MAX_REQUEST_BYTES`` overrides it.
DEFAULT_MAX_REQUEST_BYTES = 8 * 2**30
#: The most steps one sampling grid (moves included) may take: a grid is a tensor and a list of that length.
MAX_GRID_STEPS = 10_000_000


def max_request_bytes() -> int:
    """The memory limit of one request (``SCOREFLOW_MAX_REQUEST_BYTES`` or 8 GiB)."""
    import os

    text = os.environ.get("SCOREFLOW_MAX_REQUEST_BYTES", "").strip()
    if not text:
        return DEFAULT_MAX_REQUEST_BYTES
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"SCOREFLOW_MAX_REQUEST_BYTES must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"SCOREFLOW_MAX_REQUEST_BYTES must be a positive integer, got {text!r}")
    return value


def check_request(what: str, count: int, item_shape: Iterable[int], bytes_per_value: int = 4) -> None:
    """Refuse, before allocating, ``count`` items of ``item_shape`` whose values need more than the limit."""
    import math

    need = count * math.prod(int(d) for d in item_shape) * bytes_per_value
    limit = max_request_bytes()
    if need > limit:
        raise ValueError(f"{what} would need {need / 2**30:.3g} GiB, more than the limit of {limit / 2**30:.3g} GiB "
                         "(SCOREFLOW_MAX_REQUEST_BYTES); ask for fewer")


def check_grid_steps(what: str, steps: int) -> None:
    """Refuse a grid of more than :data:`MAX_GRID_STEPS` steps before building it."""
    if steps > MAX_GRID_STEPS:
        raise ValueError(f"{what} asks for {steps:,} steps, more than the limit of {MAX_GRID_STEPS:,}")
