"""The paper's 2D test problems as (operator, measurement, direct baseline, TV settings):
CT 20 / 8 / 60 views and 90° limited angle (parallel beam, noiseless by default),
deblurring (9x9 uniform, circular, σ = 0.01) and super-resolution (4x4 average, σ = 0.01).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from padis3d.errors import PadisError
from padis3d.operators import (CT_TASKS, BlockAverage, Blur, ParallelBeam2D, chest_ct_attenuation_scale,
                               gaussian_noise, poisson_photon_noise, upsample)
from padis3d.operators.base import LinearOperator

TASKS = ("ct20", "ct8", "ct60", "la90", "deblur", "sr4")


@dataclass
class Task:
    """One inverse problem: ``op``, Gaussian noise level, direct baseline, TV iterations and
    PDHG step ratio."""

    name: str
    op: LinearOperator
    sigma: float
    baseline_name: str
    baseline: Callable[[torch.Tensor], torch.Tensor]
    tv_iters: int
    incident_count: float | None = None
    tv_step_ratio: float = 1000.0

    def measure(self, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """``A x`` with Poisson photon noise (CT, if ``incident_count``) then ``+ σ ε``, seeded."""
        y = self.op(x)
        gen = torch.Generator().manual_seed(seed)
        if self.incident_count:
            scale = chest_ct_attenuation_scale(self.op.in_shape[-1])
            y = poisson_photon_noise(y.clamp_min(0), self.incident_count, scale, gen)
        return gaussian_noise(y, self.sigma, gen) if self.sigma > 0 else y


def make_task(name: str, size: int, ct_sigma: float = 0.0, sigma: float = 0.01,
              incident_count: float | None = None) -> Task:
    """Task ``name`` (one of :data:`TASKS`) on ``size x size`` images.  CT: ``ct_sigma`` is
    Gaussian sinogram noise and ``incident_count`` the photons per bin for Poisson noise
    (both off by default: noiseless, as in the reference numbers).  Deblur / SR: ``sigma``."""
    if name in CT_TASKS:
        op = ParallelBeam2D(size, **CT_TASKS[name])
        # limited angle converges slowly: a larger primal step (checked on training slice 99:
        # 23.9 dB vs 23.0 dB at 1000 iterations) -- see admm_tv's step_ratio
        la = name == "la90"
        return Task(name, op, ct_sigma, "FBP-Hann", lambda y: op.fbp(y, "hann").clamp(0, 1),
                    1000 if la else 500, incident_count, 1e4 if la else 1e3)
    if name == "deblur":
        return Task(name, Blur((size, size)), sigma, "blurred", lambda y: y.clamp(0, 1), 500)
    if name == "sr4":
        return Task(name, BlockAverage((size, size), 4), sigma, "bicubic", lambda y: upsample(y, 4), 500)
    raise PadisError(f"unknown task {name!r}; choose one of {TASKS}")
