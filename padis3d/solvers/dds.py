"""Decomposed diffusion sampling (DDS, Chung et al. 2024), the DiffusionBlend data step:
at each level the Tweedie estimate ``D = D(x; σ_i)`` is made data-consistent by a few
conjugate-gradient steps on ``min ||A x - y||² + ρ ||x - crop(D)||²`` started at ``crop(D)``,
then the state moves to the next level DDIM-style,
``x ← D' + σ_{i+1} (η z + sqrt(1 - η²) (x - D) / σ_i)`` with ``D'`` the corrected estimate.
Works for images and volumes alike (parallel-beam CT is separable by slice, so a volume's
CG runs on all slices at once). Returns the last corrected estimate.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from padis3d.baselines.cg import conjugate_gradient
from padis3d.errors import PadisError
from padis3d.solvers.common import Callback, StatePrior, batch_norm, check_problem, noise_like, report


def data_consistency(operator: Any, y: torch.Tensor, x0: torch.Tensor, rho: float, iters: int) -> torch.Tensor:
    """``iters`` CG steps on ``(AᵀA + ρ I) x = Aᵀ y + ρ x0`` from ``x0`` (images, any batch)."""
    return conjugate_gradient(lambda v: operator.adjoint(operator(v)) + rho * v,
                              operator.adjoint(y) + rho * x0, x0=x0, iters=iters)


def dds(prior: StatePrior, x: torch.Tensor, sigmas: torch.Tensor, *, operator: Any, y: torch.Tensor,
        rho: float = 1.0, cg_iters: int = 5, eta: float = 0.85, generator: torch.Generator | None = None,
        callback: Callback | None = None) -> torch.Tensor:
    """x: initial state ``(B, C, *prior.state_shape)``; returns the image estimate."""
    check_problem(operator, y, sigmas, x)
    if rho <= 0 or cg_iters < 0 or not 0 <= eta <= 1:
        raise PadisError(f"need rho > 0, cg_iters >= 0 and 0 <= eta <= 1, got {rho}, {cg_iters}, {eta}")
    levels = [float(s) for s in sigmas]
    n, estimate = len(levels), prior.crop(x)
    for i, sigma in enumerate(levels):
        d = prior.denoise(x, sigma, generator=generator)
        image = prior.crop(d)
        with torch.no_grad():
            estimate = data_consistency(operator, y, image, rho, cg_iters)
        if i < n - 1:
            x = d + prior.embed(estimate - image) + levels[i + 1] * (
                eta * noise_like(x, generator) + math.sqrt(1 - eta ** 2) * (x - d) / sigma)
        report(callback, i, n, sigma, x, d, batch_norm(operator(estimate) - y))
    return estimate
