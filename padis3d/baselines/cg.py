"""Batched conjugate gradient for symmetric positive (semi-)definite normal equations,
e.g. ``(AᵀA + ρI) x = Aᵀy + ρ x0`` in PnP-ADMM and the 3D PaDIS data step.

Hand-written because CG on torch tensors with an operator *callable* (autograd-free,
one independent system per batch item) is not offered by torch or MONAI.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def conjugate_gradient(normal_op: Callable[[torch.Tensor], torch.Tensor], rhs: torch.Tensor,
                       x0: torch.Tensor | None = None, iters: int = 50, tol: float = 1e-6) -> torch.Tensor:
    """Solve ``normal_op(x) = rhs`` for every item of the batch axis 0 independently.

    ``normal_op`` must be linear, symmetric and positive semi-definite. Stops after
    ``iters`` steps or when every item's residual norm is below ``tol * ||rhs||``.
    """
    dims = tuple(range(1, rhs.ndim))

    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).sum(dim=dims, keepdim=True)

    x = torch.zeros_like(rhs) if x0 is None else x0.clone()
    r = rhs - normal_op(x) if x0 is not None else rhs.clone()
    p = r.clone()
    rr = dot(r, r)
    stop = (tol * rhs.flatten(1).norm(dim=1)) ** 2
    tiny = torch.finfo(rhs.dtype).tiny
    for _ in range(int(iters)):
        if bool((rr.flatten() <= stop).all()):
            break
        ap = normal_op(p)
        alpha = rr / dot(p, ap).clamp_min(tiny)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = dot(r, r)
        p = r + (rr_new / rr.clamp_min(tiny)) * p
        rr = rr_new
    return x
