"""Intensity normalisation to [0, 1]: a HU window for CT, min-max for other images; and the
checks every reader applies to what it returns (not empty, finite)."""

from __future__ import annotations

import numpy as np

from padis3d.errors import PadisError

HU_WINDOW: tuple[float, float] = (-1000.0, 1000.0)


def require_nonempty(shape: tuple[int, ...], name: str) -> None:
    """PadisError when an array read from ``name`` has a zero-length axis (an empty store or file)."""
    if any(int(n) == 0 for n in shape):
        raise PadisError(f"{name} holds an empty array of shape {tuple(shape)}: it has no voxels to use")


def require_finite(x: np.ndarray, name: str = "image") -> None:
    """PadisError when ``x`` has NaN or infinite values."""
    if not np.isfinite(x).all():
        raise PadisError(f"{name} contains NaN or infinite values: clean or mask the data first")


def hu_window(x: np.ndarray, window: tuple[float, float] = HU_WINDOW, name: str = "image") -> np.ndarray:
    """HU clipped to ``window = (lo, hi)`` and mapped linearly to [0, 1] (float32); NaN or
    infinite input is an error (clipping would hide an infinity and keep a NaN)."""
    lo, hi = float(window[0]), float(window[1])
    if not hi > lo:
        raise PadisError(f"HU window {window} must have lo < hi, e.g. --window -1000 1000")
    x = np.asarray(x, dtype=np.float32)
    require_finite(x, name)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def min_max_range(x: np.ndarray, name: str = "image") -> tuple[float, float]:
    """``(min, max)`` of ``x``, the range :func:`min_max` maps to [0, 1]; a constant or
    non-finite input is an error."""
    x = np.asarray(x, dtype=np.float32)
    require_finite(x, name)
    lo, hi = float(x.min()), float(x.max())
    if not hi > lo:
        raise PadisError(f"{name} is constant (all values {lo}): it carries no training signal; remove it")
    return lo, hi


def min_max(x: np.ndarray, name: str = "image") -> np.ndarray:
    """Linear map of ``x``'s range to [0, 1] (float32); a constant or non-finite input is an error."""
    x = np.asarray(x, dtype=np.float32)
    lo, hi = min_max_range(x, name)
    return (x - lo) / (hi - lo)
