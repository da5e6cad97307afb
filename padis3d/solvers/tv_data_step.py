"""DDS's data step with a total-variation term (issue 28 §4):

    x* = argmin_x  ½ ||A x - y||²  +  ρ/2 ||x - x0||²  +  λ Σ_voxels sqrt(Σ_i (w_i ∂_i x)²),      (TV-DC)

``x0`` the Tweedie estimate ``crop(D)``, ``∂_i`` forward differences along spatial axis ``i`` with
Neumann boundary (:func:`padis3d.baselines.tv.gradient`), ``w_i`` per-axis weights: ``(1, 1)`` is the
isotropic in-plane TV of an image, ``(1,)`` on a volume ``(D, H, W)`` the TV along z
(DiffusionBlend's option, :func:`padis3d.solvers.dds.data_consistency_tv_z`), ``(w_z, 1, 1)`` a weighted 3D TV.
Images are in the prior's [0, 1] units, ``λ`` in the units of the squared misfit per unit of TV.

Algorithm: ADMM on the split ``v = ∇_w x`` (Boyd et al. 2011, §6.4.1; the split of Goldstein &
Osher's split Bregman for TV), scaled dual ``u``, penalty ``β``::

    x ← CG_k on (AᵀA + ρI + β∇ᵀ∇) x = Aᵀy + ρ x0 + β∇ᵀ(v - u)     (warm-started at the last x)
    v ← shrink(∇x + u, λ/β)   (isotropic: each voxel's gradient vector shrunk by λ/β in length)
    u ← u + ∇x - v

Why this one: the quadratic part is exactly today's data step plus ``β∇ᵀ∇``, so the CG that DDS
runs anyway solves it (no ``||A||`` estimate, no step sizes tied to the operator's norm as
PDHG would need; CT's ``||A||² ≈ 2500`` against ρ = 1 would make a linearised method take tiny
steps), and the non-smooth TV is handled exactly by its proximal map (the shrinkage) rather than
smoothed. A handful of rounds from the warm start ``x0`` is what a data step can afford, so ``v``
starts as ``shrink(∇x0, λ/β)`` (the TV step acts in the first round; starting at ``∇x0`` left
4-11x the objective gap after one round) and ``u`` at 0. ``β`` defaults to ``λ / 0.03``: a
shrinkage threshold of 0.03 image units per voxel gradient. Evidence
(``python recipes/tv_in_dds.py --penalty-check``, results/tv_in_dds_penalty.md: chest TRAINING slice 90,
``x0`` = truth + N(0, 0.03²), CT 20 / deblur / SR x4 at λ = 0.1, 0.3, 1 x the ADMM-TV weight): after 3
rounds of 5 CG steps the objective gap ``(f - f*)/(f(x0) - f*)`` was 0.000-0.11 (best or within 0.003 of
the best β in 6 of 9 cases) against 0.016-0.083 for β = ρ (deblur's ρ = 0.1 is too stiff for its small λ;
ρ is better for SR at the largest λ, far above the tuned one) and 0.013-0.92 for 5 plain CG steps.
ADMM converges for any β > 0; β only sets the speed within the few rounds.
TV along z (``data_consistency_tv_z``) keeps its original choices, β = ρ and ``v = ∇x0``.
Cost: ``admm_iters`` times the plain step's CG work (3 x 5 operator pairs against 5 by default).

With ``λ = 0`` the sampler does not call this module: DDS runs its plain CG step
(:func:`padis3d.solvers.dds.data_consistency`), bit for bit as before. The defaults table turns the
term on for the cpu budget with a weight per task (:data:`padis3d.solvers.defaults.DDS_TV`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from padis3d.baselines.cg import conjugate_gradient
from padis3d.baselines.tv import gradient, gradient_adjoint
from padis3d.errors import PadisError

SHRINK_SCALE = 0.03
"""Default penalty ``β = λ / SHRINK_SCALE`` (image units of the shrinkage threshold λ/β)."""


def _weights(x0: torch.Tensor, weights: Sequence[float]) -> list[float]:
    """Checked per-axis weights, trailing zeros dropped (those axes cost nothing)."""
    w = [float(v) for v in weights]
    if not 1 <= len(w) <= x0.ndim - 2 or any(v < 0 for v in w) or not any(w):
        raise PadisError(f"TV weights must be 1..{x0.ndim - 2} non-negative numbers, not all 0, one per spatial "
                         f"axis of {tuple(x0.shape)} from the first, got {list(weights)}")
    while w[-1] == 0:
        w.pop()
    return w


def shrink(g: torch.Tensor, threshold: float) -> torch.Tensor:
    """Isotropic shrinkage of gradient fields ``(B, C, d, *S)``: each voxel's d-vector shortened by
    ``threshold`` (to 0 if shorter): the proximal map of ``threshold · ||·||_{2,1}``."""
    norm = g.pow(2).sum(2, keepdim=True).sqrt()
    return g * (1 - threshold / norm.clamp_min(1e-30)).clamp_min(0)


def tv_term(x: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """``Σ sqrt(Σ_i (w_i ∂_i x)²)`` per batch item ``(B,)`` (summed over channels and voxels)."""
    return gradient(x, list(weights)).pow(2).sum(2).sqrt().flatten(1).sum(1)


def tv_data_objective(operator: Any, y: torch.Tensor, x: torch.Tensor, x0: torch.Tensor, rho: float, lam: float,
                      weights: Sequence[float]) -> torch.Tensor:
    """The objective (TV-DC) per batch item ``(B,)``."""
    misfit = (operator(x) - y).flatten(1).pow(2).sum(1)
    prox = (x - x0).flatten(1).pow(2).sum(1)
    return 0.5 * misfit + 0.5 * rho * prox + lam * tv_term(x, weights)


def data_consistency_tv(operator: Any, y: torch.Tensor, x0: torch.Tensor, rho: float, iters: int, lam: float,
                        weights: Sequence[float], admm_iters: int = 3, penalty: float | None = None,
                        shrink_start: bool = True) -> torch.Tensor:
    """(TV-DC) by ``admm_iters`` ADMM rounds of ``iters`` warm-started CG steps each, from ``x0``.

    x0: ``(B, C, *S)`` (any batch; ``y`` the matching measurements ``(B, C, *out)``); weights: one per
    spatial axis from the first (``(1, 1)`` in-plane TV of an image); penalty: ADMM's β (default
    ``λ / SHRINK_SCALE``); shrink_start: ``v`` starts at ``shrink(∇x0, λ/β)`` (else ``∇x0``).
    Returns ``(B, C, *S)``."""
    if lam <= 0 or rho <= 0 or iters < 0 or admm_iters < 1 or (penalty is not None and penalty <= 0):
        raise PadisError(f"need lam > 0, rho > 0, iters >= 0, admm_iters >= 1 and penalty > 0, got {lam}, {rho}, "
                         f"{iters}, {admm_iters}, {penalty}")
    w = _weights(x0, weights)
    beta = float(penalty) if penalty is not None else lam / SHRINK_SCALE
    grad = lambda t: gradient(t, w)  # noqa: E731
    grad_t = lambda q: gradient_adjoint(q, w)  # noqa: E731
    rhs0 = operator.adjoint(y) + rho * x0
    x, u = x0, torch.zeros_like(grad(x0))
    v = shrink(grad(x0), lam / beta) if shrink_start else grad(x0)
    for _ in range(admm_iters):
        x = conjugate_gradient(lambda t: operator.adjoint(operator(t)) + rho * t + beta * grad_t(grad(t)),
                               rhs0 + beta * grad_t(v - u), x0=x, iters=iters)
        g = grad(x) + u
        v = shrink(g, lam / beta)
        u = g - v
    return x


def in_plane_weights(x0: torch.Tensor, tv: float, tv_z: float) -> tuple[float, list[float]]:
    """``(λ, weights)`` of the sampler's options for ``x0`` ``(B, C, *S)``: ``tv`` is the in-plane TV
    weight (the last two axes), ``tv_z`` (volumes ``(B, C, D, H, W)``) the weight along z; with both,
    the weighted 3D TV ``λ = tv``, ``w = (tv_z / tv, 1, 1)``."""
    if tv_z > 0 and x0.ndim != 5:
        raise PadisError(f"TV along z needs volumes (B, C, D, H, W), got shape {tuple(x0.shape)}")
    if tv > 0 and x0.ndim < 4:
        raise PadisError(f"in-plane TV needs images (B, C, H, W) or volumes, got shape {tuple(x0.shape)}")
    if tv <= 0:
        return tv_z, [1.0]
    lead = [tv_z / tv] if x0.ndim == 5 else []
    return tv, [*lead, 1.0, 1.0]
