"""ADMM-TV baseline: isotropic-TV regularised least squares with non-negativity,

    x* = argmin_{x >= 0}  ½ ||A x - y||²  +  λ Σ_pixels sqrt(Σ_i (w_i ∂_i x)²),

for any :class:`~padis3d.operators.LinearOperator` on 2D or 3D images (TV over all
spatial axes, forward differences with Neumann boundary, per-axis weights ``w_i``).

Algorithm: PDHG (Chambolle & Pock 2011), i.e. linearised ADMM (Esser, Zhang & Chan
2010) on ``K = [A/‖A‖; ∇]``: it needs only ``A`` and ``Aᵀ`` (no inner solves).  ``A`` is
rescaled by its power-iteration norm (and ``λ`` by ``‖A‖²``, which leaves the minimiser
unchanged); steps ``τ = r^½ 0.99/‖K‖``, ``σ = r^-½ 0.99/‖K‖`` (so ``τσ‖K‖² < 1``) with
``r = step_ratio`` (default 1000: images are O(1) while the dual of TV is O(λ/‖A‖²);
chosen on a training slice for 20-view CT, insensitive for deblur / SR).  Non-negativity is the
projection in the primal step (an optional upper bound too).
Stopping rule: after ``max_iter`` iterations, or earlier once the relative change
``‖x_k - x_{k-1}‖ / ‖x_k‖ < tol`` for every batch item.

Hand-written because no installed library offers TV least squares with a generic,
non-torch-native operator (skimage's TV denoisers solve ``A = I`` only).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from padis3d.errors import PadisError
from padis3d.operators.base import LinearOperator, check_tensor


def gradient(x: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """Weighted forward differences ``(B, C, *S) -> (B, C, d, *S)`` (zero at the last index)."""
    out = []
    for i, w in enumerate(weights):
        ax = 2 + i
        d = torch.diff(x, dim=ax, append=x.narrow(ax, x.shape[ax] - 1, 1))
        out.append(w * d)
    return torch.stack(out, dim=2)


def gradient_adjoint(q: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """Exact adjoint of :func:`gradient`: ``(B, C, d, *S) -> (B, C, *S)`` (= minus divergence)."""
    out = torch.zeros_like(q[:, :, 0])
    for i, w in enumerate(weights):
        ax = 2 + i
        qi = w * q[:, :, i]
        n = qi.shape[ax]
        head = qi.narrow(ax, 0, n - 1)
        zero = torch.zeros_like(qi.narrow(ax, 0, 1))
        out = out + torch.cat([zero, head], dim=ax) - torch.cat([head, zero], dim=ax)
    return out


def tv_norm(x: torch.Tensor, weights: Sequence[float] | None = None) -> torch.Tensor:
    """Isotropic TV per batch item ``(B,)``, summed over channels and pixels."""
    w = weights or [1.0] * (x.ndim - 2)
    return gradient(x, w).pow(2).sum(2).sqrt().flatten(1).sum(1)


def admm_tv(A: LinearOperator, y: torch.Tensor, lam: float, max_iter: int = 500, tol: float = 1e-5,
            x0: torch.Tensor | None = None, weights: Sequence[float] | None = None,
            upper: float | None = None, op_norm: float | None = None, step_ratio: float = 1000.0) -> torch.Tensor:
    """TV reconstruction ``(B, C, *A.out_shape) -> (B, C, *A.in_shape)``, ``x >= 0``
    (and ``x <= upper`` if given); ``weights`` per spatial axis default to 1."""
    check_tensor(y, A.out_shape, "measurement y")
    d = len(A.in_shape)
    w = [float(v) for v in (weights if weights is not None else [1.0] * d)]
    if len(w) != d or any(v < 0 for v in w):
        raise PadisError(f"weights must be {d} non-negative numbers (one per spatial axis), got {weights}")
    if lam < 0 or max_iter < 1:
        raise PadisError(f"need lam >= 0 and max_iter >= 1, got lam={lam}, max_iter={max_iter}")
    a = float(op_norm) if op_norm is not None else A.norm()
    lam_s = lam / a ** 2
    knorm = 0.99 / (1.0 + 4.0 * sum(v * v for v in w)) ** 0.5
    tau, sigma = knorm * step_ratio ** 0.5, knorm / step_ratio ** 0.5
    with torch.no_grad():
        ys = y / a
        x = torch.zeros(*y.shape[:2], *A.in_shape, dtype=y.dtype, device=y.device) if x0 is None else x0.clone()
        xbar, p = x.clone(), torch.zeros_like(y)
        q = torch.zeros(*x.shape[:2], d, *x.shape[2:], dtype=y.dtype, device=y.device)
        for _ in range(int(max_iter)):
            p = (p + sigma * (A(xbar) / a - ys)) / (1.0 + sigma)
            q = q + sigma * gradient(xbar, w)
            q = q / (q.pow(2).sum(2, keepdim=True).sqrt() / max(lam_s, 1e-30)).clamp_min(1.0)
            x_new = (x - tau * (A.adjoint(p) / a + gradient_adjoint(q, w))).clamp_min(0.0)
            if upper is not None:
                x_new = x_new.clamp_max(upper)
            change = (x_new - x).flatten(1).norm(dim=1) / x_new.flatten(1).norm(dim=1).clamp_min(1e-12)
            xbar, x = 2 * x_new - x, x_new
            if bool((change < tol).all()):
                break
    return x
