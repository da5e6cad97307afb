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

TV in the data step (issue 28 §4, :mod:`padis3d.solvers.tv_data_step`, equation (TV-DC)):
``min ½||A x - y||² + ½ρ||x - x0||² + λ TV(x)`` by a few ADMM rounds on ``v = ∇x``, each x-update a few
warm-started CG steps on ``(AᵀA + ρI + β∇ᵀ∇) x = Aᵀy + ρx0 + β∇ᵀ(v - u)``. ``tv = λ > 0``: isotropic
in-plane TV (images; volumes slice by slice); ``tv_z = λ > 0`` (volumes, DiffusionBlend's option):
``λ ||∂_z x||₁`` with β = ρ; both: the weighted 3D TV ``tv Σ sqrt((tv_z/tv)² ∂_z² + ∂_y² + ∂_x²)``.
``tv = tv_z = 0`` (this function's default) runs the plain CG step exactly as before; the defaults
table gives ``tv`` per task for the cpu budget (:data:`padis3d.solvers.defaults.DDS_TV`).

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
from padis3d.errors import PadisError
from padis3d.solvers.common import Callback, StatePrior, batch_norm, check_problem, noise_like, report
from padis3d.solvers.tv_data_step import data_consistency_tv, in_plane_weights


def data_consistency(operator: Any, y: torch.Tensor, x0: torch.Tensor, rho: float, iters: int) -> torch.Tensor:
    """``iters`` CG steps on ``(AᵀA + ρ I) x = Aᵀ y + ρ x0`` from ``x0`` (images, any batch)."""
    return conjugate_gradient(lambda v: operator.adjoint(operator(v)) + rho * v,
                              operator.adjoint(y) + rho * x0, x0=x0, iters=iters)


def data_consistency_tv_z(operator: Any, y: torch.Tensor, x0: torch.Tensor, rho: float, iters: int, tv_z: float,
                          admm_iters: int = 3) -> torch.Tensor:
    """The data step with TV along z (axis 2 of ``(B, C, D, H, W)``): ``admm_iters`` ADMM rounds of
    ``iters`` CG steps each, from ``x0``, penalty ``ρ`` and ``v = ∂_z x0`` at the start (the choices of
    DiffusionBlend's option; :func:`padis3d.solvers.tv_data_step.data_consistency_tv` with weights ``(1,)``)."""
    if x0.ndim != 5:
        raise PadisError(f"TV along z needs volumes (B, C, D, H, W), got shape {tuple(x0.shape)}")
    return data_consistency_tv(operator, y, x0, rho, iters, tv_z, [1.0], admm_iters, penalty=rho, shrink_start=False)


def data_step(operator: Any, y: torch.Tensor, x0: torch.Tensor, rho: float, iters: int, tv: float = 0.0,
              tv_z: float = 0.0, admm_iters: int = 3) -> torch.Tensor:
    """DDS's data step from the estimate ``x0`` ``(B, C, *S)``: equation (TV-DC) of
    :mod:`padis3d.solvers.tv_data_step`, ``min ½||Ax - y||² + ρ/2||x - x0||² + TV``. ``tv = tv_z = 0``:
    ``iters`` CG steps (:func:`data_consistency`, no TV); ``tv_z`` alone: TV along z
    (:func:`data_consistency_tv_z`); ``tv > 0``: in-plane TV of weight ``tv`` (and along z, weighted
    ``tv_z``) by ``admm_iters`` ADMM rounds."""
    if tv > 0:
        lam, weights = in_plane_weights(x0, tv, tv_z)
        return data_consistency_tv(operator, y, x0, rho, iters, lam, weights, admm_iters)
    if tv_z > 0:
        return data_consistency_tv_z(operator, y, x0, rho, iters, tv_z, admm_iters)
    return data_consistency(operator, y, x0, rho, iters)


AdaptHook = Callable[[int, int, float, torch.Tensor], None]
"""``adapt(i, n, sigma, x)``: called before level ``i`` of ``n`` denoises state ``x``."""


def check_adapt_hook(adapt: AdaptHook | None, prior: StatePrior, sampler: str) -> None:
    """PadisError if ``adapt`` adapts another prior than the one the sampler was given."""
    if adapt is not None and getattr(adapt, "prior", prior) is not prior:
        raise PadisError(f"adapt= adapts its own prior: pass {sampler}(adapt.prior, ..., adapt=adapt)")


def dds(prior: StatePrior, x: torch.Tensor, sigmas: torch.Tensor, *, operator: Any, y: torch.Tensor,
        rho: float = 1.0, cg_iters: int = 5, eta: float = 0.85, tv_z: float = 0.0, admm_iters: int = 3,
        order: int = 1, tv: float = 0.0, generator: torch.Generator | None = None, callback: Callback | None = None,
        adapt: AdaptHook | None = None) -> torch.Tensor:
    """x: initial state ``(B, C, *prior.state_shape)``; returns the image estimate. ``tv > 0``: in-plane
    TV of weight ``tv`` in the data step, ``tv_z > 0`` (volumes): TV along z, each by ``admm_iters``
    ADMM rounds (:func:`data_step`; 0: the plain CG step, as without the option). ``order``: 1 (DDIM step)
    or 2 (Heun-style, module docstring). ``adapt``: test-time adaptation hook (module docstring);
    an adapter's ``.prior`` must be the ``prior`` given."""
    check_problem(operator, y, sigmas, x)
    check_adapt_hook(adapt, prior, "dds")
    if (rho <= 0 or cg_iters < 0 or not 0 <= eta <= 1 or tv_z < 0 or tv < 0 or admm_iters < 1
            or order not in (1, 2)):
        raise PadisError(f"need rho > 0, cg_iters >= 0, 0 <= eta <= 1, tv >= 0, tv_z >= 0, admm_iters >= 1 and order "
                         f"1 or 2, got {rho}, {cg_iters}, {eta}, {tv}, {tv_z}, {admm_iters}, {order}")
    if tv > 0 or tv_z > 0:
        in_plane_weights(prior.crop(x), tv, tv_z)  # the shape check, before any network evaluation

    def corrected(state: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(D on the canvas, D with its image replaced by the data-consistent one, that image)."""
        d = prior.denoise(state, sigma, generator=generator)
        image = prior.crop(d)
        with torch.no_grad():
            fixed = data_step(operator, y, image, rho, cg_iters, tv, tv_z, admm_iters)
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
