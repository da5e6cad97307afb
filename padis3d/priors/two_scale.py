"""A two-scale prior: a low-resolution prior supplies the coarse structure, a patch prior the
detail (issue 17; the design of Yang, Hu, Fessler, Shen 2025, arXiv 2512.18161, of a fully 3D
patch prior plus a downsampled global volume, written down here as one denoiser).

Let ``B`` be the block average by ``f`` along each axis (image ``N`` -> ``N / f``) and ``U``
nearest-neighbour upsampling, so ``B U = I`` and ``P = U B`` is the orthogonal projection onto
images constant on ``f^d`` blocks (``P = Pᵀ = P²``; ``d`` axes). Every image splits into
``P x`` (coarse) and ``(I - P) x`` (detail). With ``x_σ = x + σ n``, ``B x_σ = B x + (σ / f^{d/2}) n'``
where ``n'`` is again white (``B`` averages ``f^d`` independent values), and ``n'`` is
independent of ``(I - P) n``. The two-scale denoiser takes the detail from the patch prior
``D_f`` and the coarse part from the low-resolution prior ``D_c`` at its own noise level:

    D(x_σ; σ) = (I - P) D_f(x_σ; σ) + U D_c(B x_σ; σ / f^{d/2})
              = D_f + U [D_c(B x_σ) - B D_f]                                    (1)

When the prior makes ``P x`` and ``(I - P) x`` independent and ``D_c`` is the exact posterior mean
of ``B x``, ``U D_c`` is exactly ``P E[x | x_σ]``, so (1) replaces whatever the patch prior gets
wrong at large scales (it sees one tile at a time) by the global prior's estimate and keeps its
detail (``tests/prior/test_two_scale.py`` checks this in closed form on Gaussian priors).
On the canvas (the patch prior's padded state), (1) acts on the image region: crop, combine,
pad; the padding keeps ``D_f``. The coarse prior works on its own state ``embed(B crop(x))``
(exact for a whole-image or Gaussian prior, whose state is the image).

Cost: one coarse evaluation per level (``1 / f^d`` of the voxels), two for the VJP
(:meth:`TwoScalePrior.denoise_vjp`, which recomputes the coarse forward with a graph).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from padis3d.errors import PadisError


def block_average(image: torch.Tensor, factor: int) -> torch.Tensor:
    """``B``: means over ``factor``-blocks of every spatial axis of ``(B, C, *N)``; ``N`` divisible."""
    dims = image.ndim - 2
    if any(n % factor for n in image.shape[2:]):
        raise PadisError(f"image of shape {tuple(image.shape[2:])} is not divisible by the factor {factor}")
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[dims]
    return pool(image, factor)


def upsample_nearest(image: torch.Tensor, factor: int) -> torch.Tensor:
    """``U``: every voxel repeated ``factor`` times along every spatial axis."""
    for axis in range(2, image.ndim):
        image = image.repeat_interleave(factor, dim=axis)
    return image


class TwoScalePrior:
    """Equation (1) of the module docstring; the sampler-state interface of the ``fine`` prior.

    fine: a prior over the full image ``N`` (a :class:`padis3d.priors.patch.PatchPrior`: slabs, cubes
    or 2D tiles); coarse: a prior over the ``N / factor`` image (a whole-image PatchPrior, or any
    prior with ``embed``/``crop``/``denoise``/``denoise_vjp``); factor: the downsampling per axis.
    """

    def __init__(self, fine: Any, coarse: Any, factor: int):
        if factor < 1:
            raise PadisError(f"the factor must be >= 1, got {factor}")
        self.fine, self.coarse, self.factor = fine, coarse, int(factor)
        self.state_shape = fine.state_shape
        self.grid = getattr(fine, "grid", None)

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        return self.fine.embed(image)

    def crop(self, state: torch.Tensor) -> torch.Tensor:
        return self.fine.crop(state)

    def coarse_sigma(self, sigma: float, dims: int) -> float:
        """The noise std of ``B x_σ`` (``f^d`` independent values averaged)."""
        return float(sigma) / math.sqrt(self.factor ** dims)

    def _coarse_state(self, x: torch.Tensor) -> torch.Tensor:
        return self.coarse.embed(block_average(self.fine.crop(x), self.factor))

    def _combine(self, d_fine: torch.Tensor, coarse_image: torch.Tensor) -> torch.Tensor:
        image = self.fine.crop(d_fine)
        return d_fine + self.fine.embed(upsample_nearest(coarse_image - block_average(image, self.factor),
                                                         self.factor))

    def _coarse_kwargs(self, generator: torch.Generator | None) -> dict[str, Any]:
        """One random shift of the coarse prior's grid (none for a prior without tiles), for both passes."""
        grid = getattr(self.coarse, "grid", None)
        return {} if grid is None else {"shift": grid.random_shift(generator)}

    def denoise(self, x: torch.Tensor, sigma: float, *, shift: Sequence[int] | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``D(x; σ)`` on the fine canvas ``(B, C, *state_shape)``; ``shift``: the fine prior's grid shift."""
        d = self.fine.denoise(x, sigma, shift=shift, generator=generator)
        xc = self._coarse_state(x)
        sc = self.coarse_sigma(sigma, xc.ndim - 2)
        dc = self.coarse.crop(self.coarse.denoise(xc, sc, **self._coarse_kwargs(generator)))
        return self._combine(d, dc)

    def score(self, x: torch.Tensor, sigma: float, **kwargs: Any) -> torch.Tensor:
        return (self.denoise(x, sigma, **kwargs) - x) / sigma ** 2

    def denoise_vjp(self, x: torch.Tensor, sigma: float, cotangent: Callable[[torch.Tensor], torch.Tensor], *,
                    shift: Sequence[int] | None = None, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(D, J_D(x)ᵀ v)`` with ``v = cotangent(D)``. With ``E`` the fine embed, ``C`` its crop:
        ``Jᵀ v = J_fᵀ (v - E P C v) + E U crop_c(J_cᵀ embed_c(B C v))`` (``P`` is symmetric, and in
        the coarse term ``Bᵀ = U / f^d`` and ``Uᵀ = f^d B`` cancel their factors)."""
        xc = self._coarse_state(x)
        sc = self.coarse_sigma(sigma, xc.ndim - 2)
        kw = self._coarse_kwargs(generator)
        dc = self.coarse.crop(self.coarse.denoise(xc, sc, **kw))
        held: dict[str, torch.Tensor] = {}

        def fine_cotangent(d_fine: torch.Tensor) -> torch.Tensor:
            held["d"] = full = self._combine(d_fine, dc)
            held["v"] = v = cotangent(full)
            coarse_v = block_average(self.fine.crop(v), self.factor)
            held["coarse_v"] = coarse_v
            return v - self.fine.embed(upsample_nearest(coarse_v, self.factor))

        _, grad_fine = self.fine.denoise_vjp(x, sigma, fine_cotangent, shift=shift, generator=generator)
        _, grad_c = self.coarse.denoise_vjp(xc, sc, lambda _: self.coarse.embed(held["coarse_v"]), **kw)
        grad_coarse = self.fine.embed(upsample_nearest(self.coarse.crop(grad_c), self.factor))
        return held["d"], grad_fine + grad_coarse
