"""Direct (non-iterative) baselines: FBP for CT, pseudo-inverse, interpolating upsampling."""

from __future__ import annotations

import torch

from padis3d.operators.base import LinearOperator
from padis3d.operators.resample import upsample


def fbp(A: LinearOperator, y: torch.Tensor, filter: str = "hann") -> torch.Tensor:
    """FBP of a CT operator (``'hann'`` or ``'ram-lak'``), clipped to [0, 1]."""
    return A.fbp(y, filter).clamp(0, 1)


def pseudo_inverse(A: LinearOperator, y: torch.Tensor) -> torch.Tensor:
    """``A.pinv(y)`` clipped to [0, 1] (PadisError for operators without one)."""
    return A.pinv(y).clamp(0, 1)


def upsample_baseline(y: torch.Tensor, factor: int = 4, mode: str = "bicubic") -> torch.Tensor:
    """Bicubic (default) upsampling of a low-resolution image, clipped to [0, 1]."""
    return upsample(y, factor, mode)
