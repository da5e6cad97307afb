"""A Gaussian prior with an exact denoiser, for validating samplers in closed form.

``x ~ N(μ, diag(v))`` per voxel: ``D(x; σ) = (v x + σ² μ) / (v + σ²)`` (Tweedie, exact),
and the posterior under ``y = A x + n``, ``n ~ N(0, s² I)`` is Gaussian with
``μ_post = μ + V Aᵀ (A V Aᵀ + s² I)⁻¹ (y - A μ)`` and ``Σ_post = V - V Aᵀ (A V Aᵀ + s² I)⁻¹ A V``
with ``V = diag(v)`` (the covariance form stays exact as ``s -> 0``).
It has the sampler-state interface of :class:`padis3d.priors.patch.PatchPrior` (the state is
the image itself).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


class GaussianPrior:
    """Independent Gaussian voxels; ``mean`` and ``var`` broadcast to ``(B, C, *N)``."""

    def __init__(self, mean: torch.Tensor, var: torch.Tensor):
        self.mean, self.var = mean, var
        self.state_shape = tuple(torch.broadcast_shapes(mean.shape, var.shape)[2:])

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        return image

    def crop(self, state: torch.Tensor) -> torch.Tensor:
        return state

    def denoise(self, x: torch.Tensor, sigma: float, *, shift: Sequence[int] | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        return (self.var * x + sigma ** 2 * self.mean) / (self.var + sigma ** 2)

    def score(self, x: torch.Tensor, sigma: float, **kwargs) -> torch.Tensor:
        return (self.denoise(x, sigma) - x) / sigma ** 2

    def denoise_vjp(self, x: torch.Tensor, sigma: float, cotangent: Callable[[torch.Tensor], torch.Tensor],
                    **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.denoise(x, sigma)
        return d, self.var / (self.var + sigma ** 2) * cotangent(d)


def gaussian_posterior(mean: torch.Tensor, var: torch.Tensor, matrix: torch.Tensor, y: torch.Tensor,
                       noise_std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and covariance for flattened vectors: ``mean, var`` ``(n,)``, ``matrix``
    ``(m, n)``, ``y`` ``(m,)``. Returns ``(μ_post (n,), Σ_post (n, n))``."""
    va = var[:, None] * matrix.T  # V Aᵀ, (n, m)
    gain = torch.linalg.solve(matrix @ va + noise_std ** 2 * torch.eye(len(y), dtype=va.dtype), va.T).T
    return mean + gain @ (y - matrix @ mean), torch.diag(var) - gain @ va.T
