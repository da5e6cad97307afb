"""A two-scale prior: a low-resolution prior supplies the coarse structure, a patch prior the
detail (issue 17; the design of Yang, Hu, Fessler, Shen 2025, arXiv 2512.18161, of a fully 3D
patch prior plus a downsampled global volume, written down here as one denoiser).

Let ``B`` be the block average by ``f = (f_1, ..., f_d)`` (one factor per axis; image ``N`` ->
``ceil(N / f)``) and ``U`` nearest-neighbour upsampling cropped back to ``N``. Where ``f_i`` does
not divide ``N_i`` the last block along axis ``i`` is partial: ``B`` averages the voxels it has
(a block of ``m_b <= f_1 ... f_d`` voxels) and ``U`` repeats and crops. Then still ``B U = I``,
and ``P = U B`` is the orthogonal projection onto images constant on the blocks
(``P_ij = 1 / m_b`` for ``i, j`` in block ``b``: ``P = Pᵀ = P²``). Every image splits into ``P x``
(coarse) and ``(I - P) x`` (detail). With ``x_σ = x + σ n``, ``B x_σ = B x + σ B n`` where the
coarse voxels of ``B n`` are independent with std ``1 / sqrt(m_b)``, and ``B n`` is independent of
``(I - P) n`` (``Cov(B n, (I - P) n) = B (I - P) = 0``). The two-scale denoiser takes the detail
from the patch prior ``D_f`` and the coarse part from the low-resolution prior ``D_c`` at its own
noise level ``σ_c = σ / sqrt(f_1 ... f_d)``:

    D(x_σ; σ) = (I - P) D_f(x_σ; σ) + U D_c(B x_σ; σ_c)
              = D_f + U [D_c(B x_σ; σ_c) - B D_f]                                (1)

When the prior makes ``P x`` and ``(I - P) x`` independent and ``D_c`` is the exact posterior mean
of ``B x``, ``U D_c`` is exactly ``P E[x | x_σ]`` on every full block, so (1) replaces whatever the
patch prior gets wrong at large scales (it sees one tile at a time) by the global prior's
estimate and keeps its detail (``tests/prior/test_two_scale.py`` checks this in closed form on
Gaussian priors).

Noise level of partial blocks: a partial block of ``m_b < f_1 ... f_d`` voxels has noise
``σ / sqrt(m_b)``, more than the ``σ_c`` the coarse prior is given (a network takes one noise
level for the whole state). So on those coarse voxels ``D_c`` under-denoises: (1) is exact on
full blocks only (the tests check both: exact where ``m_b = f_1 ... f_d``, and exact everywhere
once a per-voxel ``σ / sqrt(m_b)`` is given to a coarse prior that accepts one). On the chest CT
test block (23 slices, ``f = 4``) that is the last coarse slice: ``m = 3 * 16``, noise
``sqrt(64 / 48) = 1.15`` times ``σ_c``.

On the canvas (the patch prior's padded state), (1) acts on the image region: crop, combine,
pad; the padding keeps ``D_f``. The coarse prior works on its own state: ``embed(B crop(x))``
with fresh noise of std ``σ_c`` on its padding (:meth:`TwoScalePrior.coarse_state`: what a patch
prior sees in training and in every sampler state; for a whole-image or Gaussian prior the state
is the image).

Weighted combination. Equation (1) trusts ``D_c`` entirely at the coarse scale. When both
``B D_f`` and ``D_c`` estimate ``B x`` with errors of similar size, a mix beats either:

    D(x_σ; σ) = D_f + w(σ) U [D_c(B x_σ; σ_c) - B D_f],      0 <= w(σ) <= 1        (2)

(``w = 1``: equation (1); ``w = 0``: the fine prior alone). The weight that minimises the coarse
error ``|B D - B x|²`` on clean training data ``x`` is the least-squares slope
``w*(σ) = <B D_f - B x, B D_f - D_c> / |B D_f - D_c|²``; it only depends on how good the two
estimates are and how their errors correlate, so it is measured, per σ, on training volumes
(:mod:`padis3d.priors.coarse_weight`) and interpolated in ``log σ`` in between. Where all blocks are full,
``|U c|² = f_1 ... f_d |c|²``, so that also minimises the full-resolution error over ``w`` (the
detail ``(I - P) D = (I - P) D_f`` does not depend on ``w``).

Cost: one coarse evaluation per level (``1 / (f_1 ... f_d)`` of the voxels), two for the VJP
(:meth:`TwoScalePrior.denoise_vjp`, which recomputes the coarse forward with a graph).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from padis3d.errors import PadisError

Factor = int | Sequence[int]
"""A downsampling factor: one for every axis, or one per spatial axis."""


def axis_factors(factor: Factor, dims: int) -> tuple[int, ...]:
    """``factor`` as one integer >= 1 per spatial axis (``dims`` of them)."""
    f = (factor,) * dims if isinstance(factor, int) else tuple(factor)
    if len(f) != dims or any(int(v) != v or v < 1 for v in f):
        raise PadisError(f"the downsampling factor must be one integer >= 1 or {dims} of them, got {factor!r}")
    return tuple(int(v) for v in f)


def coarse_shape(shape: Sequence[int], factor: Factor) -> tuple[int, ...]:
    """The block-averaged size ``ceil(N / f)`` of a spatial ``shape``."""
    f = axis_factors(factor, len(shape))
    return tuple(-(-int(n) // a) for n, a in zip(shape, f))


def _axis_counts(n: int, f: int) -> torch.Tensor:
    """Voxels of each block along one axis of ``n`` voxels: ``f, ..., f, n - (K - 1) f``."""
    k = -(-n // f)
    counts = torch.full((k,), float(f), dtype=torch.float64)
    counts[-1] = n - (k - 1) * f
    return counts


def block_sizes(shape: Sequence[int], factor: Factor) -> torch.Tensor:
    """``m_b``, the voxels of every block, ``(1, 1, *coarse_shape(shape, factor))`` float64."""
    f = axis_factors(factor, len(shape))
    m = torch.ones((), dtype=torch.float64)
    for a, (n, fa) in enumerate(zip(shape, f)):
        view = [1] * len(shape)
        view[a] = -1
        m = m * _axis_counts(int(n), fa).reshape(view)
    return m.reshape(1, 1, *coarse_shape(shape, f))


def block_average(image: torch.Tensor, factor: Factor) -> torch.Tensor:
    """``B``: ``(B, C, *N)`` -> ``(B, C, *ceil(N / f))``, the mean of every block; a partial last
    block along an axis (``f`` not dividing ``N``) is the mean of the voxels it has."""
    f = axis_factors(factor, image.ndim - 2)
    out = image
    for a, fa in enumerate(f):
        if fa == 1:
            continue
        n = out.shape[2 + a]
        k = -(-n // fa)
        moved = out.movedim(2 + a, -1)
        summed = F.pad(moved, (0, k * fa - n)).reshape(*moved.shape[:-1], k, fa).sum(-1)
        out = (summed / _axis_counts(n, fa).to(summed.dtype).to(summed.device)).movedim(-1, 2 + a)
    return out


def upsample_nearest(image: torch.Tensor, factor: Factor, shape: Sequence[int] | None = None) -> torch.Tensor:
    """``U``: ``(B, C, *K)`` -> ``(B, C, *shape)``, every voxel repeated ``f`` times along every
    spatial axis and cropped to ``shape`` (default ``K f``; needs ``ceil(shape / f) = K``)."""
    f = axis_factors(factor, image.ndim - 2)
    size = tuple(k * a for k, a in zip(image.shape[2:], f)) if shape is None else tuple(int(n) for n in shape)
    if len(size) != len(f) or coarse_shape(size, f) != tuple(image.shape[2:]):
        raise PadisError(f"a coarse image {tuple(image.shape[2:])} upsampled by {f} cannot have the shape {size}")
    for a, fa in enumerate(f):
        if fa > 1:
            image = image.repeat_interleave(fa, dim=2 + a).narrow(2 + a, 0, size[a])
    return image


class TwoScalePrior:
    """Equation (2) of the module docstring (equation (1) with the default weight 1); the
    sampler-state interface of the ``fine`` prior.

    fine: a prior over the full image ``N`` (a :class:`padis3d.priors.patch.PatchPrior`: slabs, cubes
    or 2D tiles); coarse: a prior over the ``ceil(N / f)`` image (a whole-image or patch PatchPrior,
    or any prior with ``embed``/``crop``/``denoise``/``denoise_vjp``); factor: the downsampling, one
    integer for every axis or one per spatial axis (``(1, 4, 4)``: in-plane only); coarse_weight:
    ``w(σ)``, a number in [0, 1] or a function of σ (a
    :class:`padis3d.priors.coarse_weight.CoarseWeight` measured on training data).
    """

    def __init__(self, fine: Any, coarse: Any, factor: Factor,
                 coarse_weight: float | Callable[[float], float] = 1.0):
        if not callable(coarse_weight) and not 0 <= float(coarse_weight) <= 1:
            raise PadisError(f"the coarse weight must lie in [0, 1], got {coarse_weight}")
        self.fine, self.coarse = fine, coarse
        self.coarse_weight = coarse_weight
        self.factor: Factor = axis_factors(factor, len(fine.state_shape)) if not isinstance(factor, int) \
            else axis_factors(factor, 1)[0]
        self.state_shape = fine.state_shape
        self.grid = getattr(fine, "grid", None)

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        return self.fine.embed(image)

    def crop(self, state: torch.Tensor) -> torch.Tensor:
        return self.fine.crop(state)

    def coarse_sigma(self, sigma: float, dims: int) -> float:
        """``σ_c``, the noise std of ``B x_σ`` on a full block (``f_1 ... f_d`` independent values
        averaged; a partial block is noisier, see the module docstring)."""
        return float(sigma) / math.sqrt(math.prod(axis_factors(self.factor, dims)))

    def weight(self, sigma: float) -> float:
        """``w(σ)`` of equation (2)."""
        w = self.coarse_weight
        return float(w(float(sigma)) if callable(w) else w)

    def coarse_draws(self, generator: torch.Generator | None, batch_channels: Sequence[int]
                     ) -> tuple[dict[str, Any], torch.Tensor | None]:
        """The coarse prior's random inputs of one evaluation, drawn from ``generator`` in this order:
        its grid shift (``{}`` for a prior without tiles, else ``{"shift": ...}`` for both passes) and
        unit noise ``(*batch_channels, *coarse state)`` for the padding of its canvas (None where the
        canvas is the image)."""
        grid = getattr(self.coarse, "grid", None)
        if grid is None:
            return {}, None
        kw = {"shift": grid.random_shift(generator)}
        if tuple(grid.canvas_shape) == tuple(grid.shape):
            return kw, None
        return kw, torch.randn((*batch_channels, *grid.canvas_shape), generator=generator)

    def coarse_state(self, coarse_image: torch.Tensor, sigma_c: float, padding_noise: torch.Tensor | None
                     ) -> torch.Tensor:
        """The coarse prior's state for ``B x_σ`` ``(B, C, *ceil(N / f))``: embedded, with noise of std
        ``σ_c`` where its canvas is padding. A patch prior only ever sees noisy padding (in training
        and in every sampler state); zero padding in a noisy state costs a 3D patch prior up to 4.6 dB
        at σ = 1 (``benchmarks/two_scale_denoise.py``)."""
        if padding_noise is None:
            return self.coarse.embed(coarse_image)
        return self.coarse.embed_noisy(coarse_image, sigma_c, noise=padding_noise)

    def coarse_input(self, x: torch.Tensor, sigma: float, draws: tuple[dict[str, Any], torch.Tensor | None]
                     ) -> tuple[torch.Tensor, float, dict[str, Any]]:
        """The coarse prior's state, noise level ``σ_c`` and shift keyword for the fine state ``x``
        at ``σ``, from its :meth:`coarse_draws`."""
        image = block_average(self.fine.crop(x), self.factor)
        sc = self.coarse_sigma(sigma, image.ndim - 2)
        kw, noise = draws
        return self.coarse_state(image, sc, noise), sc, kw

    def _combine(self, d_fine: torch.Tensor, coarse_image: torch.Tensor, w: float) -> torch.Tensor:
        image = self.fine.crop(d_fine)
        return d_fine + self.fine.embed(upsample_nearest(w * (coarse_image - block_average(image, self.factor)),
                                                         self.factor, image.shape[2:]))

    def denoise(self, x: torch.Tensor, sigma: float, *, shift: Sequence[int] | None = None,
                generator: torch.Generator | None = None, coarse_generator: torch.Generator | None = None
                ) -> torch.Tensor:
        """``D(x; σ)`` (equation (2)) on the fine canvas ``(B, C, *state_shape)``; ``shift``: the fine
        prior's grid shift (default: drawn from ``generator``); the coarse prior's draws
        (:meth:`coarse_draws`) come next from ``coarse_generator`` (default: ``generator``), also with
        ``w(σ) = 0``, where the coarse prior is not run."""
        d = self.fine.denoise(x, sigma, shift=shift, generator=generator)
        w = self.weight(sigma)
        draws = self.coarse_draws(generator if coarse_generator is None else coarse_generator, x.shape[:2])
        if w == 0:
            return d
        xc, sc, kw = self.coarse_input(x, sigma, draws)
        dc = self.coarse.crop(self.coarse.denoise(xc, sc, **kw))
        return self._combine(d, dc, w)

    def score(self, x: torch.Tensor, sigma: float, **kwargs: Any) -> torch.Tensor:
        return (self.denoise(x, sigma, **kwargs) - x) / sigma ** 2

    def denoise_vjp(self, x: torch.Tensor, sigma: float, cotangent: Callable[[torch.Tensor], torch.Tensor], *,
                    shift: Sequence[int] | None = None, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(D, J_D(x)ᵀ v)`` with ``v = cotangent(D)``. With ``E`` the fine embed, ``C`` its crop,
        ``m`` the block sizes and ``w = w(σ)``:
        ``Jᵀ v = J_fᵀ (v - w E P C v) + w E U [crop_c(J_cᵀ embed_c(m B C v)) / m]``
        (``P`` is symmetric; in the coarse term ``Uᵀ = m B`` and ``Bᵀ = U / m``, which cancel
        where every block is full, ``m = f_1 ... f_d``)."""
        w = self.weight(sigma)
        draws = self.coarse_draws(generator, x.shape[:2])
        if w == 0:
            return self.fine.denoise_vjp(x, sigma, cotangent, shift=shift, generator=generator)
        xc, sc, kw = self.coarse_input(x, sigma, draws)
        dc = self.coarse.crop(self.coarse.denoise(xc, sc, **kw))
        held: dict[str, torch.Tensor] = {}

        def fine_cotangent(d_fine: torch.Tensor) -> torch.Tensor:
            held["d"] = full = self._combine(d_fine, dc, w)
            held["v"] = v = cotangent(full)
            image_v = self.fine.crop(v)
            coarse_v = block_average(image_v, self.factor)
            held["m"] = m = block_sizes(image_v.shape[2:], self.factor).to(coarse_v.device, coarse_v.dtype)
            held["coarse_v"] = m * coarse_v  # Uᵀ C v
            return v - self.fine.embed(upsample_nearest(w * coarse_v, self.factor, image_v.shape[2:]))

        _, grad_fine = self.fine.denoise_vjp(x, sigma, fine_cotangent, shift=shift, generator=generator)
        _, grad_c = self.coarse.denoise_vjp(xc, sc, lambda _: self.coarse.embed(held["coarse_v"]), **kw)
        image_shape = self.fine.crop(x).shape[2:]
        grad_coarse = self.fine.embed(upsample_nearest(w * self.coarse.crop(grad_c) / held["m"], self.factor,
                                                       image_shape))
        return held["d"], grad_fine + grad_coarse
