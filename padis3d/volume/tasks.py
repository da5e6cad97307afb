"""The forward models of the volume tasks: what is measured from the windowed, resized volume and
which baseline is reconstructed from it directly.

* ``ct3d-parallel``: parallel-beam CT slice by slice (:class:`padis3d.operators.ParallelBeam2D`,
  sparse view or limited angle), baseline FBP with a Hann filter;
* ``denoise``: the slices themselves plus Gaussian noise, baseline the noisy volume;
* ``ct3d-cone``: cone-beam CT of the whole volume (astra CUDA only), baseline CGLS. It is not
  separable by slice: the projections, the baseline and the data step hold the volume in memory;
* any other operator: one that maps a slice ``(n, 1, S, S)`` (separable, like ``ct3d-parallel``)
  or the whole volume ``(1, 1, Z, S, S)`` (like ``ct3d-cone``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from padis3d.errors import PadisError

VOLUME_TASKS = ("ct3d-parallel", "ct3d-cone", "denoise")
CGLS_ITERS = 20
"""The whole-volume baseline: least squares by CG on the normal equations, from zero."""

Tensor = torch.Tensor


class IdentitySlices:
    """The denoising 'operator' for the slice-separable data step: ``y = x`` on ``(n, 1, *shape)``."""

    def __init__(self, shape: tuple[int, int]):
        self.in_shape = self.out_shape = shape

    def __call__(self, x: Tensor) -> Tensor:
        return x

    adjoint = __call__


def cone_operator(shape: tuple[int, int, int], views: int, span: float) -> Any:
    """The cone-beam operator of ``ct3d-cone`` on a ``(z, y, x)`` volume, ``span`` in radians (a
    PadisError without astra CUDA)."""
    from padis3d.operators import ConeBeam3D

    return ConeBeam3D(shape, views=views, span=span)


def whole_volume_measurements(op: Any, truth: np.ndarray, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Projections ``op(truth)`` of a whole ``(z, y, x)`` volume in [0, 1] (plus Gaussian noise of std
    ``noise``, seed ``seed + 1``) and the CGLS baseline ``(z, y, x)`` clipped to [0, 1]."""
    from padis3d.baselines.cg import conjugate_gradient

    with torch.no_grad():
        y = op(torch.from_numpy(np.ascontiguousarray(truth, dtype=np.float32))[None, None])
        if noise:
            y = y + noise * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed + 1))
        base = conjugate_gradient(op.normal, op.adjoint(y), iters=CGLS_ITERS)
    return y[0, 0].numpy(), base[0, 0].clamp(0, 1).numpy()


@dataclass(frozen=True)
class VolumeTask:
    """A task on a ``(z, S, S)`` volume. ``slice_operator`` maps slices ``(n, 1, S, S) -> (n, 1, *out)``
    and is what the preparation applies (``forward``) and the runner's data step inverts;
    ``whole_operator`` (cone beam, not separable): the volume ``(1, 1, z, S, S) -> (1, 1, *out)``,
    measured after preparation, with :data:`IdentitySlices` as the slice operator. ``baseline``
    maps noisy slice measurements to slices in [0, 1]. ``noise``: std of the Gaussian noise on the
    measurements. ``geometry``: views and span in degrees for the report (None for denoising)."""

    name: str
    slice_operator: Any
    forward: Callable[[Tensor], Tensor]
    baseline: Callable[[Tensor], Tensor]
    baseline_name: str
    noise: float
    whole_operator: Any = None
    geometry: dict | None = None


def _identity(x: Tensor) -> Tensor:
    return x


def _clip(y: Tensor) -> Tensor:
    return y.clamp(0, 1)


def default_noise(task: str) -> float:
    """The measurement noise std when none is given: 0.05 for ``denoise``, else 0 (CT)."""
    return 0.05 if task == "denoise" else 0.0


def volume_task(task: str | Any, shape: tuple[int, int, int], *, views: int = 20, span_deg: float | None = None,
                noise: float | None = None) -> VolumeTask:
    """The :class:`VolumeTask` ``task`` (a name of :data:`VOLUME_TASKS` or an operator, see the module
    docstring) on volumes of ``shape = (z, S, S)``; ``span_deg`` defaults to 180 (parallel) or 360
    (cone). Fails here, before any data, without astra CUDA for ``ct3d-cone``."""
    size = shape[1]
    noise = float(noise if noise is not None else default_noise(task if isinstance(task, str) else ""))
    if not isinstance(task, str):
        return _operator_task(task, shape, noise)
    if task not in VOLUME_TASKS:
        raise PadisError(f"unknown volume task {task!r}; choose one of {', '.join(VOLUME_TASKS)} or pass an operator")
    if task == "denoise":
        return VolumeTask(task, IdentitySlices((size, size)), _identity, _clip, "noisy", noise)
    span_default = 180.0 if task == "ct3d-parallel" else 360.0
    geometry = {"views": views, "span_deg": span_deg if span_deg is not None else span_default}
    span = math.radians(geometry["span_deg"])
    if task == "ct3d-cone":
        import padis3d.volume.tasks as this  # looked up at call time: tests stand a CPU operator in for astra's

        cone = this.cone_operator(shape, views, span)
        return VolumeTask(task, IdentitySlices((size, size)), _identity, _clip, f"CGLS-{CGLS_ITERS}", noise,
                          whole_operator=cone, geometry=geometry)
    from padis3d.operators import ParallelBeam2D

    op = ParallelBeam2D(size, views=views, span=span)

    def fbp(y: Tensor) -> Tensor:
        return op.fbp(y[:, None], "hann")[:, 0].clamp(0, 1)
    return VolumeTask(task, op, op, fbp, "FBP-Hann", noise, geometry=geometry)


def _operator_task(op: Any, shape: tuple[int, int, int], noise: float) -> VolumeTask:
    """A user's operator: per slice when it takes ``(S, S)`` images, whole volume when it takes ``shape``."""
    takes = tuple(getattr(op, "in_shape", ()))
    if takes == tuple(shape):
        return VolumeTask("operator", IdentitySlices(tuple(shape[1:])), _identity, _clip, f"CGLS-{CGLS_ITERS}",
                          noise, whole_operator=op)
    if takes != tuple(shape[1:]):
        raise PadisError(f"the operator takes {takes} (in_shape): a volume of {shape} needs one that takes its "
                         f"slices {tuple(shape[1:])} or the whole volume")
    if not hasattr(op, "out_shape") or not hasattr(op, "adjoint"):
        raise PadisError("a slice operator needs out_shape and adjoint (see padis3d.operators.base)")

    def baseline(y: Tensor) -> Tensor:
        return op.pinv(y[:, None])[:, 0].clamp(0, 1)
    return VolumeTask("operator", op, op, baseline, "pseudo-inverse", noise)
