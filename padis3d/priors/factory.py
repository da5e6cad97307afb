"""Priors over a whole image or volume built from a loaded checkpoint: the tile geometry a
checkpoint implies (its largest trained patch, slabs folded into channels, slice jumps)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from padis3d.errors import PadisError
from padis3d.priors.checkpoint import Prior
from padis3d.priors.patch import PatchPrior
from padis3d.priors.slice_jump import SliceJumpPrior


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
    the channels; the random shift applies along z as in-plane. slice_jump: a slab prior that
    alternates adjacent and slice-jump slabs at random (:mod:`padis3d.priors.slice_jump`)."""
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
    if slab:
        denoiser = prior
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
