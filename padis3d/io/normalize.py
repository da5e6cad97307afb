"""Intensity normalisation to [0, 1]: a HU window for CT, min-max for other images."""

from __future__ import annotations

import numpy as np

from padis3d.errors import PadisError

HU_WINDOW: tuple[float, float] = (-1000.0, 1000.0)


def hu_window(x: np.ndarray, window: tuple[float, float] = HU_WINDOW) -> np.ndarray:
    """HU clipped to ``window = (lo, hi)`` and mapped linearly to [0, 1] (float32)."""
    lo, hi = float(window[0]), float(window[1])
    if not hi > lo:
        raise PadisError(f"HU window {window} must have lo < hi, e.g. --window -1000 1000")
    return np.clip((np.asarray(x, dtype=np.float32) - lo) / (hi - lo), 0.0, 1.0)


def min_max(x: np.ndarray, name: str = "image") -> np.ndarray:
    """Linear map of ``x``'s range to [0, 1] (float32); a constant or non-finite input is an error."""
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise PadisError(f"{name} contains NaN or infinite values: clean or mask the data first")
    lo, hi = float(x.min()), float(x.max())
    if not hi > lo:
        raise PadisError(f"{name} is constant (all values {lo}): it carries no training signal; remove it")
    return (x - lo) / (hi - lo)
