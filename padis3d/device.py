"""Compute-device resolution with a clear error where CUDA is asked for but absent."""

from __future__ import annotations

import torch

from padis3d.errors import PadisError


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` -> CUDA if available else CPU; ``"cuda"`` without CUDA -> PadisError."""
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise PadisError(f"unknown device {name!r}: use 'cpu', 'cuda', 'cuda:N' or 'auto'") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise PadisError(f"device {name!r} requested but CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise PadisError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type != "cpu":
        raise PadisError(f"device type {device.type!r} is not supported: use 'cpu' or 'cuda'")
    return device
