"""Checking a device name before anything is allocated on it."""

from __future__ import annotations

import torch

ALLOWED = "cpu, cuda, cuda:N or mps"


def resolve_device(name: str | torch.device) -> torch.device:
    """``torch.device(name)``, refusing names torch does not know and devices this machine lacks."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"Unknown device {name!r}. Allowed: {ALLOWED}.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested, but CUDA is not available here (torch "
                             f"{torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} requested, but this machine has {torch.cuda.device_count()} CUDA "
                             f"device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} requested, but MPS is not available here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"Unsupported device {name!r}. Allowed: {ALLOWED}.")
    return device
