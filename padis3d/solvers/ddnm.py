"""VE-DDNM (Wang et al. 2023, in the VE form of the PaDIS ablation): at each level the
denoised estimate is projected onto the measurement set, ``x0 = A†y + D - A†A D``, and the
state is moved to the next level DDIM-style,
``x ← x0 + σ_{i+1} (η z + sqrt(1 - η²) (x - D) / σ_i)``. ``A†`` is ``operator.pinv`` when it
is exact (an exact pseudo-inverse gives ``A x0 = y`` exactly for noiseless data); for operators
whose ``pinv`` is only a stand-in (CT: FBP, marked ``pinv_is_exact = False``) it is the
minimum-norm least-squares solution by ``cg_iters`` CG steps on ``AᵀA z = Aᵀ r`` from 0 — with
sparse views, FBP in place of ``A†`` puts its streaks back at every level and the chain diverges."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from padis3d.baselines.cg import conjugate_gradient
from padis3d.errors import PadisError
from padis3d.solvers.common import Callback, StatePrior, batch_norm, check_problem, noise_like, report


def ve_ddnm(prior: StatePrior, x: torch.Tensor, sigmas: torch.Tensor, *, operator: Any, y: torch.Tensor,
            eta: float = 0.85, cg_iters: int = 20, generator: torch.Generator | None = None,
            callback: Callback | None = None) -> torch.Tensor:
    """Returns the last projected estimate ``x0`` (image)."""
    check_problem(operator, y, sigmas, x)
    if not hasattr(operator, "pinv"):
        raise PadisError(f"VE-DDNM needs an operator with a pseudo-inverse; {type(operator).__name__} has none")
    if not 0 <= eta <= 1:
        raise PadisError(f"eta must be in [0, 1], got {eta}")
    pinv = operator.pinv if getattr(operator, "pinv_is_exact", True) else _least_squares(operator, cg_iters)
    levels = [float(s) for s in sigmas]
    n = len(levels)
    x0 = prior.crop(x)
    for i, sigma in enumerate(levels):
        d = prior.denoise(x, sigma, generator=generator)
        image = prior.crop(d)
        x0 = image - pinv(operator(image) - y)
        if i < n - 1:
            direction = (x - d) / sigma
            x = d + prior.embed(x0 - image) + levels[i + 1] * (
                eta * noise_like(x, generator) + math.sqrt(1 - eta ** 2) * direction)
        report(callback, i, n, sigma, x, d, batch_norm(operator(x0) - y))
    return x0


def _least_squares(operator: Any, iters: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``r -> argmin ||A z - r||`` of minimum norm, approximated by ``iters`` CG steps from 0."""
    if iters < 1:
        raise PadisError(f"cg_iters must be >= 1 for an operator without an exact pseudo-inverse, got {iters}")

    def solve(r: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return conjugate_gradient(lambda z: operator.adjoint(operator(z)), operator.adjoint(r), iters=iters)
    return solve
