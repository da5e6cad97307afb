"""VE-DDNM, the PaDIS ablation's form (paper App. A.5; Wang et al. 2023's range-null-space
decomposition in a variance-exploding Langevin sampler).

Per level σ, ``inner`` times: ``D = D(x; σ)``; the range-null-space estimate
``x̂0 = A†y + (I - A†A) D = D - A†(A D - y)`` (measured part from the data, null-space part
from the prior); the score with ``x̂0`` in place of ``D``, ``s = (x̂0 - x)/σ²``; a Langevin step
``x ← x + α/2 s + sqrt(α) z`` with ``α = ε σ²`` (no noise at the last level). Returns the last
``x̂0``. ``A†`` is ``operator.pinv`` when it is exact (then ``A x̂0 = y`` exactly for full-row-rank
``A``); where ``pinv`` is only a stand-in (CT: FBP, ``pinv_is_exact = False``) it is the
least-squares solution by ``cg_iters`` CG steps on ``AᵀA z = Aᵀ r`` from 0.

Unlike DDS (``padis3d.solvers.dds``) there is no proximal weight ρ and no DDIM jump: the
projected estimate drives a Langevin chain at every level.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from padis3d.baselines.cg import conjugate_gradient
from padis3d.errors import PadisError
from padis3d.solvers.common import Callback, StatePrior, batch_norm, check_problem, noise_like, report


def range_null_space(prior: StatePrior, d: torch.Tensor, operator: Any, y: torch.Tensor,
                     pinv: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂0 on the state, x̂0 as an image): ``D - A†(A crop(D) - y)``; ``d`` is ``(B, C, *state)``."""
    image = prior.crop(d)
    x0 = image - pinv(operator(image) - y)
    return d + prior.embed(x0 - image), x0


def ve_ddnm(prior: StatePrior, x: torch.Tensor, sigmas: torch.Tensor, *, operator: Any, y: torch.Tensor,
            inner: int = 10, epsilon: float = 0.5, cg_iters: int = 20, generator: torch.Generator | None = None,
            callback: Callback | None = None) -> torch.Tensor:
    """x: initial state ``(B, C, *prior.state_shape)``; returns the last ``x̂0`` ``(B, C, *image)``."""
    check_problem(operator, y, sigmas, x)
    if not hasattr(operator, "pinv"):
        raise PadisError(f"VE-DDNM needs an operator with a pseudo-inverse; {type(operator).__name__} has none")
    pinv = operator.pinv if getattr(operator, "pinv_is_exact", True) else least_squares(operator, cg_iters)
    n, x0 = len(sigmas), prior.crop(x)
    for i, sigma in enumerate(float(s) for s in sigmas):
        alpha = epsilon * sigma ** 2
        for _ in range(inner):
            d = prior.denoise(x, sigma, generator=generator)
            with torch.no_grad():
                state0, x0 = range_null_space(prior, d, operator, y, pinv)
            x = x + alpha / 2 * (state0 - x) / sigma ** 2
            if i < n - 1:
                x = x + math.sqrt(alpha) * noise_like(x, generator)
        report(callback, i, n, sigma, x, d, batch_norm(operator(x0) - y))
    return x0


def least_squares(operator: Any, iters: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``r -> argmin ||A z - r||`` of minimum norm, approximated by ``iters`` CG steps from 0."""
    if iters < 1:
        raise PadisError(f"cg_iters must be >= 1 for an operator without an exact pseudo-inverse, got {iters}")

    def solve(r: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return conjugate_gradient(lambda z: operator.adjoint(operator(z)), operator.adjoint(r), iters=iters)
    return solve
