"""The forward models of the 2D tasks of ``padis3d.reconstruct_image``: the operator, the direct
baseline reconstructed from its measurements, the grid an input is reconstructed on, and the row of
the sampler defaults table (:mod:`padis3d.solvers.defaults`) each task takes.

* ``ct``: parallel-beam CT (``views`` over ``span_deg``, default 180), baseline FBP-Hann;
* ``ct-fan``: fan-beam CT (default 360), baseline CG least squares;
* ``deblur``: a uniform ``kernel`` x ``kernel`` blur, baseline the blurred image;
* ``sr``: ``factor`` x super-resolution (``sr_mode`` block average or nearest sample), baseline bicubic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from padis3d.errors import PadisError
from padis3d.limits import MIN_SIDE

IMAGE_TASKS = ("ct", "ct-fan", "deblur", "sr")
SQUARE_TASKS = ("ct", "ct-fan")  # ParallelBeam2D / FanBeam2D image a square field of view


def default_noise(task: str) -> float:
    """The measurement noise std when none is given: 0 for CT, 0.01 for deblur and sr ([0, 1] units)."""
    return 0.0 if task.startswith("ct") else 0.01


def table_task(task: str, views: int | None = None) -> str:
    """The defaults table's task for a 2D task (CT: ``ct8`` up to 8 views, else ``ct20``)."""
    if task in ("ct", "ct-fan"):
        return "ct8" if views is not None and views <= 8 else "ct20"
    return {"deblur": "deblur", "sr": "sr4"}.get(task, task)


def reconstruction_shape(shape: tuple[int, int], size: int, task: str, factor: int = 1) -> tuple[int, int]:
    """The 2D grid a ``(H, W)`` input is reconstructed on: ``size x size`` for a square input;
    otherwise the aspect is kept, the longer side becomes ``size`` and the shorter one is rounded
    (to a multiple of ``factor`` for ``sr``). The CT tasks refuse non-square inputs (their
    scanner geometry images a square field of view), as does a shorter side below MIN_SIDE."""
    h, w = int(shape[0]), int(shape[1])
    if h == w:
        return size, size
    if task in SQUARE_TASKS:
        raise PadisError(f"the input is {h}x{w} pixels, not square: the {task} task's scanner geometry images a "
                         f"square field of view; crop or pad the image to a square (deblur and sr reconstruct "
                         f"non-square images at their own aspect)")
    m = factor if task == "sr" else 1
    scale = size / max(h, w)
    out = tuple(max(m, int(round(n * scale / m)) * m) for n in (h, w))
    if min(out) < MIN_SIDE:
        raise PadisError(f"the {h}x{w} input resized to --size {size} on its longer side is {out[0]}x{out[1]}: both "
                         f"sides need >= {MIN_SIDE} pixels (the SSIM window of the report); raise --size")
    return out  # type: ignore[return-value]


def image_operator(task: str, shape: int | tuple[int, int], *, views: int = 20, span_deg: float | None = None,
                   kernel: int = 9, factor: int = 4, sr_mode: str = "average"
                   ) -> tuple[Any, Callable[[torch.Tensor], torch.Tensor], str]:
    """``(operator, baseline, baseline name)`` of ``task`` on images of ``shape`` (an int: square):
    the operator maps ``(B, C, H, W)`` to measurements, the baseline maps them back to ``(B, C, H, W)``
    in [0, 1]. The CT tasks need a square shape, ``sr`` sides that are multiples of ``factor``."""
    from padis3d.operators import BlockAverage, Blur, FanBeam2D, NearestSample, ParallelBeam2D, uniform_kernel, upsample

    shape = (shape, shape) if isinstance(shape, int) else (int(shape[0]), int(shape[1]))
    size = shape[0]
    if task not in IMAGE_TASKS:
        raise PadisError(f"unknown 2D task {task!r}; choose one of {', '.join(IMAGE_TASKS)} or pass an operator")
    if task in SQUARE_TASKS and shape[0] != shape[1]:
        raise PadisError(f"the {task} task needs a square image, got {shape[0]}x{shape[1]}")
    if task in ("ct", "ct-fan"):
        span = math.radians(span_deg) if span_deg is not None else (math.pi if task == "ct" else 2 * math.pi)
        op = (ParallelBeam2D if task == "ct" else FanBeam2D)(size, views=views, span=span)
        return op, lambda y: op.pinv(y).clamp(0, 1), "FBP-Hann" if task == "ct" else "CG least squares"
    if task == "deblur":
        op = Blur(shape, uniform_kernel(kernel))
        return op, lambda y: y.clamp(0, 1), "blurred"
    if any(n % factor for n in shape):
        raise PadisError(f"--size {max(shape)} must be a multiple of --factor {factor}")
    op = (BlockAverage if sr_mode == "average" else NearestSample)(shape, factor)
    return op, lambda y: upsample(y, factor).clamp(0, 1), "bicubic"
