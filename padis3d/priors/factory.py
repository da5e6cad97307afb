"""Priors over a whole image or volume built from a loaded checkpoint: the tile geometry a
checkpoint implies (its largest trained patch, slabs folded into channels, slice jumps), and the
two-scale prior of a fine patch prior and a low-resolution prior (:func:`two_scale_prior_from`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from padis3d.errors import PadisError
from padis3d.priors.checkpoint import Prior, load_prior
from padis3d.priors.patch import PatchPrior
from padis3d.priors.slab_ends import slab_ends_replicated
from padis3d.priors.slice_jump import SliceJumpPrior
from padis3d.priors.two_scale import TwoScalePrior, coarse_shape


def patch_prior_from(prior: Prior, image_shape: Sequence[int] | None = None, tile: int | str | None = "auto",
                     **limits) -> PatchPrior:
    """A :class:`PatchPrior` around a loaded checkpoint (``padis3d.load_prior``).

    image_shape: default the training image shape. tile: ``"auto"`` picks the largest
    trained patch size (or the whole image for a whole-image prior); ``None`` forces the
    whole-image mode. ``limits``: ``max_batch``, ``memory_budget``, ``device``, ``streamed_vjp``.
    """
    shape = tuple(image_shape) if image_shape is not None else prior.image_shape
    if not shape:
        raise PadisError(f"{prior.path} records no image shape: pass image_shape")
    if tile == "auto":
        sizes = [s for s in prior.patch_sizes if s is not None]
        tile = max(sizes) if sizes else None
    return PatchPrior(prior, shape, tile, **limits)


def volume_prior_from(prior: Prior, volume_shape: Sequence[int], tile: int | str = "auto", *,
                      slice_jump: bool = False, **limits) -> PatchPrior:
    """A volume prior ``(Z, Y, X)`` from a checkpoint: a 3D prior tiles ``P x P x P`` cubes; a
    slab prior (``mode == 'slab'``, ``k`` slices as channels) tiles ``k x P x P``; a 2D patch
    prior works slice by slice (``1 x P x P``). For 2D networks the slab axis is folded into
    the channels; the random shift applies along z as in-plane, and slab tiles at the volume's
    ends get real slices in place of padding (:mod:`padis3d.priors.slab_ends`). slice_jump: a slab
    prior that alternates adjacent and slice-jump slabs at random (:mod:`padis3d.priors.slice_jump`;
    its tiles at the ends still hold padding slices)."""
    slab = prior.meta.get("mode") == "slab"
    k = prior.config.channels if slab else 1
    if tile == "auto":
        sizes = [s for s in prior.patch_sizes if s is not None]
        if not sizes:
            raise PadisError(f"{prior.path} is a whole-image prior; a volume needs a patch or slab prior")
        tile = max(sizes)
    if slice_jump and not slab:
        raise PadisError(f"slice-jump slabs need a slab prior; {prior.path} is a {prior.meta.get('mode')} prior")
    if prior.config.spatial_dims == 3:
        return PatchPrior(prior, volume_shape, int(tile), **limits)
    if slab:  # slab tiles at the volume's ends get real slices, never padding (padis3d.priors.slab_ends)
        denoiser = prior if slice_jump else slab_ends_replicated(prior, int(volume_shape[0]), k)
    else:  # the 2D network takes (y, x) positions; the folded tiles carry (z, y, x)
        def denoiser(x: torch.Tensor, sigma: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
            return prior(x, sigma, None if positions is None else positions[:, 1:])
        denoiser.config = prior.config  # type: ignore[attr-defined]
        denoiser.model = prior.model  # type: ignore[attr-defined]  # the network (test-time adaptation)
    # min_shifts: every slab boundary moves (the test block's 23 slices would otherwise allow one z shift)
    if slice_jump:
        return SliceJumpPrior(denoiser, volume_shape, (k, int(tile), int(tile)), fold_axes=(0,),
                              min_shifts=(k, 1, 1), **limits)
    return PatchPrior(denoiser, volume_shape, (k, int(tile), int(tile)), fold_axes=(0,), min_shifts=(k, 1, 1),
                      **limits)


def downsample_factor(prior: Prior, dims: int) -> tuple[int, ...]:
    """The per-axis factor of a prior trained with ``padis3d train --downsample F`` (its meta's
    ``downsample``) over a ``dims``-D image; a 2D prior over a volume averages in-plane only
    (``(1, F, F)``: it denoises slice by slice)."""
    factor = [int(v) for v in prior.meta.get("downsample") or []]
    if not factor or max(factor) <= 1:
        raise PadisError(f"{prior.path} was trained at full resolution (no 'downsample' > 1 in its meta): the "
                         f"coarse prior of a two-scale prior is trained with 'padis3d train --downsample F'")
    if len(factor) > dims:
        raise PadisError(f"{prior.path} is a {len(factor)}D prior; it cannot be the coarse prior of a {dims}D image")
    return (1,) * (dims - len(factor)) + tuple(factor)


def _prior_over(prior: Prior, shape: tuple[int, ...], tile: int | str = "auto", **limits: Any) -> PatchPrior:
    """A loaded checkpoint as a prior over ``shape``: tiles (2D image), cubes, slabs or slices (volume)."""
    if len(shape) == 3:
        return volume_prior_from(prior, shape, tile, **limits)
    return patch_prior_from(prior, shape, tile, **limits)


def coarse_tile(prior: Prior, coarse_shape_: Sequence[int]) -> int | None:
    """The tile of a coarse patch prior over ``coarse_shape_``: the largest trained patch size no
    deeper than twice the coarse slices (else the smallest), ``None`` for a whole-image prior.

    Why: a cube far deeper than the volume is mostly zero padding above and below it, which the
    training crops of the 25-slice block never showed. Measured with ``chest32_lowres.pt`` (cubes
    8 and 16, at 1369 steps) on block-averaged training slices, PSNR of ``D`` against the noisy
    input at σ_c = 0.1: 6 coarse slices (24 slices): 16-cubes 18.3 dB (below the input's 20.0),
    8-cubes 24.5; 25 coarse slices: 16-cubes 22.5, 8-cubes 24.6."""
    sizes = sorted(p for p in prior.patch_sizes if p is not None)
    if not sizes:
        return None
    if prior.config.spatial_dims == 2:
        return sizes[-1]
    fits = [p for p in sizes if p <= 2 * int(coarse_shape_[0])]
    return fits[-1] if fits else sizes[0]


def two_scale_prior_from(fine: str | Path | Prior | Any, coarse: str | Path | Prior, volume_shape: Sequence[int], *,
                         device: str | torch.device | None = "cpu", precision: str = "fp32",
                         tile: int | str = "auto", coarse_weight: float | Callable[[float], float] = 1.0,
                         **limits: Any) -> TwoScalePrior:
    """A :class:`padis3d.priors.two_scale.TwoScalePrior` over an image or volume ``volume_shape``
    (``(Z, Y, X)`` or ``(Y, X)``).

    fine: a checkpoint file or loaded prior, made into a prior over ``volume_shape`` as
    :func:`volume_prior_from` (cubes, slabs, slices) or :func:`patch_prior_from` (2D) do; or a
    prior already built over that shape (a PatchPrior, a SliceJumpPrior). coarse: a checkpoint
    trained with ``padis3d train --downsample F`` (file or loaded); its factor comes from the
    checkpoint meta and it tiles the block-averaged shape ``ceil(volume_shape / f)``: ``tile``
    (``"auto"``: :func:`coarse_tile`, a trained size no deeper than twice the coarse slices).
    coarse_weight: ``w(σ)`` of equation (2) (1: equation (1); a measured
    :class:`padis3d.priors.coarse_weight.CoarseWeight`, :func:`padis3d.priors.coarse_weight.load_weight`).
    device, precision: for the checkpoints loaded here
    (:func:`padis3d.priors.checkpoint.load_prior`); limits: ``max_batch``, ``memory_budget``,
    ``device`` of the tiles, as for :class:`PatchPrior`, for both scales.
    """
    shape = tuple(int(n) for n in volume_shape)
    if len(shape) not in (2, 3):
        raise PadisError(f"a two-scale prior is over a 2D image or a 3D volume, got the shape {shape}")
    if isinstance(fine, (str, Path)):
        fine = load_prior(fine, device=device, precision=precision)
    if isinstance(fine, Prior):
        fine = _prior_over(fine, shape, **limits)
    grid = getattr(fine, "grid", None)
    if grid is not None and tuple(grid.shape) != shape:
        raise PadisError(f"the fine prior is over {tuple(grid.shape)}, not the two-scale prior's {shape}")
    if isinstance(coarse, (str, Path)):
        coarse = load_prior(coarse, device=device, precision=precision)
    factor = downsample_factor(coarse, len(shape))
    small = coarse_shape(shape, factor)
    if all(s is None for s in coarse.patch_sizes):
        if coarse.config.spatial_dims != len(shape):
            raise PadisError(f"{coarse.path} is a whole-image {coarse.config.spatial_dims}D prior; over a "
                             f"{len(shape)}D volume the coarse prior must be a patch or cube prior")
        coarse_prior = patch_prior_from(coarse, small, tile=None, **limits)
    else:
        coarse_prior = _prior_over(coarse, small, tile=coarse_tile(coarse, small) if tile == "auto" else tile,
                                   **limits)
    return TwoScalePrior(fine, coarse_prior, factor, coarse_weight)
