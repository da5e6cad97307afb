"""Decomposed diffusion sampling (DDS, Chung et al. 2024), the DiffusionBlend data step:
at each level the Tweedie estimate ``D = D(x; σ_i)`` is made data-consistent by a few
conjugate-gradient steps on ``min ||A x - y||² + ρ ||x - crop(D)||²`` started at ``crop(D)``,
then the state moves to the next level DDIM-style,
``x ← D' + σ_{i+1} (η z + sqrt(1 - η²) (x - D) / σ_i)`` with ``D'`` the corrected estimate.
Works for images and volumes alike (parallel-beam CT is separable by slice, so a volume's
CG runs on all slices at once). Returns the last corrected estimate.

Second order (``order=2``, issue 16): DDIM's update with η = 0 is the exact solution of the
probability-flow ODE ``dx/dσ = (x - D)/σ`` over ``[σ_{i+1}, σ_i]`` when ``D`` is constant there; the
Heun-style step (the trapezoid rule on ``D`` in that exponential form, cf. Karras et al. 2022
Alg. 1 and DPM-Solver-2) takes the first-order step to ``x̃`` (same noise ``z``), evaluates the
estimates ``D̃, D̃'`` at ``(x̃, σ_{i+1})`` and redoes the step with the means ``(D + D̃)/2`` and
``(D' + D̃')/2`` in place of ``D`` and ``D'``. Cost: two evaluations per level, one at the last (``2n - 1`` in all).

Volumes can add TV along z to the data step (``tv_z = λ > 0``, DiffusionBlend's option):
``min ½||A x - y||² + ½ρ||x - x0||² + λ ||∂_z x||₁`` by ADMM on ``v = ∂_z x`` (penalty ``ρ``),
each x-update a few warm-started CG steps on ``(AᵀA + ρI + ρ∂_zᵀ∂_z) x = Aᵀy + ρx0 + ρ∂_zᵀ(v - u)``.

Test-time adaptation (issue 15): ``adapt(i, n, σ_i, x)`` is called before each level's
denoising, e.g. a :class:`padis3d.adapt.TestTimeAdapter` whose ``.prior`` is the ``prior``
passed here (the adapted denoiser then serves the rest of the run).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from padis3d.baselines.cg import conjugate_gradient
from padis3d.baselines.tv import gradient, gradient_adjoint
from padis3d.errors import PadisError
from padis3d.solvers.common import Callback, StatePrior, batch_norm, check_problem, noise_like, report


def data_consistency(operator: Any, y: torch.Tensor, x0: torch.Tensor, rho: float, iters: int) -> torch.Tensor:
    """``iters`` CG steps on ``(AᵀA + ρ I) x = Aᵀ y + ρ x0`` from ``x0`` (images, any batch)."""
    return conjugate_gradient(lambda v: operator.adjoint(operator(v)) + rho * v,
                              operator.adjoint(y) + rho * x0, x0=x0, iters=iters)


def data_consistency_tv_z(operator: Any, y: torch.Tensor, x0: torch.Tensor, rho: float, iters: int, tv_z: float,
                          admm_iters: int = 3) -> torch.Tensor:
    """The data step with TV along z (axis 2 of ``(B, C, D, H, W)``): ``admm_iters`` ADMM rounds of
    ``iters`` CG steps each, from ``x0``."""
    if x0.ndim != 5:
        raise PadisError(f"TV along z needs volumes (B, C, D, H, W), got shape {tuple(x0.shape)}")
    def dz(v: torch.Tensor) -> torch.Tensor:  # forward differences along z (weights: z only)
        return gradient(v, [1.0])[:, :, 0]

    def dzt(q: torch.Tensor) -> torch.Tensor:
        return gradient_adjoint(q[:, :, None], [1.0])

    rhs0 = operator.adjoint(y) + rho * x0
    x, u = x0, torch.zeros_like(x0)
    v = dz(x)
    for _ in range(admm_iters):
        x = conjugate_gradient(lambda t: operator.adjoint(operator(t)) + rho * (t + dzt(dz(t))),
                               rhs0 + rho * dzt(v - u), x0=x, iters=iters)
        g = dz(x) + u
        v = g.sign() * (g.abs() - tv_z / rho).clamp_min(0)
        u = g - v
    return x


AdaptHook = Callable[[int, int, float, torch.Tensor], None]
"""``adapt(i, n, sigma, x)``: called before level ``i`` of ``n`` denoises state ``x``."""


def check_adapt_hook(adapt: AdaptHook | None, prior: StatePrior, sampler: str) -> None:
    """PadisError if ``adapt`` adapts another prior than the one the sampler was given."""
    if adapt is not None and getattr(adapt, "prior", prior) is not prior:
        raise PadisError(f"adapt= adapts its own prior: pass {sampler}(adapt.prior, ..., adapt=adapt)")


def dds(prior: StatePrior, x: torch.Tensor, sigmas: torch.Tensor, *, operator: Any, y: torch.Tensor,
        rho: float = 1.0, cg_iters: int = 5, eta: float = 0.85, tv_z: float = 0.0, admm_iters: int = 3,
        order: int = 1, generator: torch.Generator | None = None, callback: Callback | None = None,
        adapt: AdaptHook | None = None) -> torch.Tensor:
    """x: initial state ``(B, C, *prior.state_shape)``; returns the image estimate. ``tv_z > 0``
    (volumes): TV along z in the data step, ``admm_iters`` ADMM rounds. ``order``: 1 (DDIM step)
    or 2 (Heun-style, module docstring). ``adapt``: test-time adaptation hook (module docstring);
    an adapter's ``.prior`` must be the ``prior`` given."""
    check_problem(operator, y, sigmas, x)
    check_adapt_hook(adapt, prior, "dds")
    if rho <= 0 or cg_iters < 0 or not 0 <= eta <= 1 or tv_z < 0 or admm_iters < 1 or order not in (1, 2):
        raise PadisError(f"need rho > 0, cg_iters >= 0, 0 <= eta <= 1, tv_z >= 0, admm_iters >= 1 and order 1 or 2, "
                         f"got {rho}, {cg_iters}, {eta}, {tv_z}, {admm_iters}, {order}")

    def corrected(state: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(D on the canvas, D with its image replaced by the data-consistent one, that image)."""
        d = prior.denoise(state, sigma, generator=generator)
        image = prior.crop(d)
        with torch.no_grad():
            fixed = (data_consistency_tv_z(operator, y, image, rho, cg_iters, tv_z, admm_iters) if tv_z > 0
                     else data_consistency(operator, y, image, rho, cg_iters))
        return d, d + prior.embed(fixed - image), fixed

    def step(state: torch.Tensor, d: torch.Tensor, den: torch.Tensor, sigma: float, sigma_next: float,
             z: torch.Tensor) -> torch.Tensor:  # D' + σ' (η z + sqrt(1 - η²) ε̂), ε̂ = (x - D) / σ
        return den + sigma_next * (eta * z + math.sqrt(1 - eta ** 2) * (state - d) / sigma)

    levels = [float(s) for s in sigmas]
    n, estimate = len(levels), prior.crop(x)
    for i, sigma in enumerate(levels):
        if adapt is not None:
            adapt(i, n, sigma, x)
        d, den, estimate = corrected(x, sigma)
        if i < n - 1:
            z = noise_like(x, generator)
            x_next = step(x, d, den, sigma, levels[i + 1], z)
            if order == 2:
                d2, den2, _ = corrected(x_next, levels[i + 1])
                x_next = step(x, (d + d2) / 2, (den + den2) / 2, sigma, levels[i + 1], z)
            x = x_next
        report(callback, i, n, sigma, x, d, batch_norm(operator(estimate) - y))
    return estimate
