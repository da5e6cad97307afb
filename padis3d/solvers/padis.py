"""PaDIS (Hu et al. 2024, Algorithm 1): VE diffusion posterior sampling with Langevin inner
steps and the data-misfit gradient taken THROUGH the patch denoiser.

For each level σ_t, ``inner`` times: draw a shift, ``D = D(x; σ_t)``;
``x ← x - ζ_t ∇_x ||A crop(D) - y||`` (``ζ_t = ζ``, or ``ζ / ||A crop(D) - y||`` with
``normalize_step``, as in the reference code); then with ``α = ε σ_t²``
``x ← x + α/2 (D - x)/σ_t² + sqrt(α) z`` (no noise at the last level). Returns ``crop(D)``.
The state is detached every iteration, so memory stays flat.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from padis3d.solvers.common import Callback, StatePrior, batch_norm, check_problem, noise_like, report


def padis_dps(prior: StatePrior, x: torch.Tensor, sigmas: torch.Tensor, *, operator: Any, y: torch.Tensor,
              zeta: float = 0.1, normalize_step: bool = False, inner: int = 10, epsilon: float = 0.5,
              generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
    """x: initial state ``(B, C, *prior.state_shape)``; sigmas: decreasing levels; operator: a
    linear operator on images with ``adjoint``; y: measurements. Returns the image estimate."""
    check_problem(operator, y, sigmas, x)
    n = len(sigmas)
    d = x
    for i, sigma in enumerate(float(s) for s in sigmas):
        for _ in range(inner):
            residual: dict[str, torch.Tensor] = {}

            def cotangent(den: torch.Tensor) -> torch.Tensor:
                r = operator(prior.crop(den)) - y
                norm = batch_norm(r).clamp_min(1e-12)
                residual["norm"] = norm
                step = zeta / norm if normalize_step else zeta
                return prior.embed(operator.adjoint(r * (step / norm)))

            d, grad = prior.denoise_vjp(x, sigma, cotangent, generator=generator)
            alpha = epsilon * sigma ** 2
            x = x - grad + alpha / 2 * (d - x) / sigma ** 2
            if i < n - 1:
                x = x + math.sqrt(alpha) * noise_like(x, generator)
        report(callback, i, n, sigma, x, d, residual["norm"])
    return prior.crop(d)
