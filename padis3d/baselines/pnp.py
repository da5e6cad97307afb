"""PnP-ADMM (Venkatakrishnan et al. 2013) with any denoiser callable:

    x ← argmin ½||A x - y||² + ρ/2 ||x - (z - u)||²   (conjugate gradient, warm-started)
    z ← denoiser(x + u)
    u ← u + x - z

Stops after ``iters`` iterations or when ``||z_k - z_{k-1}|| / ||z_k|| < tol``.
Returns ``z`` (the denoised iterate).  Later the trained prior at a fixed noise level
is passed as ``denoiser``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from padis3d.baselines.cg import conjugate_gradient
from padis3d.errors import PadisError
from padis3d.operators.base import LinearOperator, check_tensor


def pnp_admm(A: LinearOperator, y: torch.Tensor, denoiser: Callable[[torch.Tensor], torch.Tensor],
             rho: float = 1.0, iters: int = 50, cg_iters: int = 10, tol: float = 1e-5,
             x0: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, C, *A.out_shape) -> (B, C, *A.in_shape)``; ``denoiser`` maps ``(B, C, *in_shape)``
    tensors to tensors of the same shape; ``rho > 0`` is the ADMM penalty."""
    check_tensor(y, A.out_shape, "measurement y")
    if not rho > 0:
        raise PadisError(f"rho must be > 0, got {rho}")
    with torch.no_grad():
        aty = A.adjoint(y)
        x = aty.new_zeros(aty.shape) if x0 is None else x0.clone()
        z, u = x.clone(), torch.zeros_like(x)
        for _ in range(int(iters)):
            x = conjugate_gradient(lambda v: A.normal(v) + rho * v, aty + rho * (z - u), x0=x, iters=cg_iters)
            z_new = denoiser(x + u)
            if not isinstance(z_new, torch.Tensor) or z_new.shape != x.shape:
                raise PadisError(f"the denoiser must return a tensor of shape {tuple(x.shape)}")
            u = u + x - z_new
            change = (z_new - z).flatten(1).norm(dim=1) / z_new.flatten(1).norm(dim=1).clamp_min(1e-12)
            z = z_new
            if bool((change < tol).all()):
                break
    return z
