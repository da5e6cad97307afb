"""TV weights λ per task and image size, tuned on training slices 80, 90, 99 (mean PSNR,
grid search) with ``benchmarks/tune_tv.py`` -- never on test slices."""

from __future__ import annotations

from padis3d.errors import PadisError

TV_WEIGHTS: dict[int, dict[str, float]] = {}


def tv_weight(task: str, size: int) -> float:
    """Tuned λ for ``task`` at ``size x size``."""
    try:
        return TV_WEIGHTS[int(size)][task]
    except KeyError:
        raise PadisError(f"no tuned TV weight for task {task!r} at size {size}; run benchmarks/tune_tv.py") from None
