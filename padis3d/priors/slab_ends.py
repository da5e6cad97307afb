"""A slab prior at the two ends of a volume.

A slab prior is trained on slabs of ``k`` real adjacent slices. The shifted partition of a
volume's z axis puts padding slices (noise only) into the slab tiles that straddle the first or
last slice, which the network never saw: one denoising step of those end slices lost 1.9-3.6 dB
(``benchmarks/volume_denoise.py``). :func:`slab_ends_replicated` wraps the slab network so that
such a tile gets its nearest real slice in place of each padding slice, and its output there is
zero (the score pulls the padding to zero, as outside the tiled window). A tile's z comes from
its folded position channel 0 (the slab's centre coordinate, :class:`tiling.TileGrid`
convention), so the wrapper works per tile batch wherever the tiles come from: in memory, out of
core, and through the streamed VJP (the replication is an index gather, so autograd sees it).
Hand-written: this is a property of how padis3d folds slabs, which no library knows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from padis3d.errors import PadisError

SlabDenoiser = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def slab_slice_indices(positions: torch.Tensor, depth: int, k: int) -> torch.Tensor:
    """The volume slice index ``(n, k)`` of each channel of folded slab tiles, from their folded
    positions ``(n, ndim, *P)`` (channel 0: the slab's centre z, ``-1 + 2 i / (depth - 1)``);
    below 0 or from ``depth`` on: padding."""
    centre = (positions[:, 0].reshape(positions.shape[0], -1)[:, 0].double() + 1) * (depth - 1) / 2
    first = torch.round(centre - (k - 1) / 2).long()
    return first[:, None] + torch.arange(k, device=positions.device)


def slab_ends_replicated(denoiser: SlabDenoiser, depth: int, k: int) -> SlabDenoiser:
    """``denoiser(x (n, k, *P), sigma (n,), positions)`` of a slab prior over a volume of ``depth``
    slices, with the padding slices of each tile replaced by the tile's nearest real slice and
    the output there set to 0. Tiles with no padding slice go to ``denoiser`` unchanged; a tile
    with no real slice gives 0. Keeps ``config`` and ``model`` (test-time adaptation)."""
    if depth < 2:
        raise PadisError(f"a slab prior over a volume needs at least 2 slices to place its slabs, got {depth}")

    def wrapped(x: torch.Tensor, sigma: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        if positions is None or x.shape[1] != k:
            raise PadisError(f"slab ends: expected folded tiles of {k} slices with positions, got {tuple(x.shape)}")
        index = slab_slice_indices(positions, depth, k)
        inside = (index >= 0) & (index < depth)
        if bool(inside.all()):
            return denoiser(x, sigma, positions)
        nearest = torch.maximum(torch.minimum(index, index[:, -1:].clamp(max=depth - 1)), index[:, :1].clamp(min=0))
        channel = (nearest - index[:, :1]).clamp(0, k - 1)
        source = torch.gather(x, 1, channel.reshape(*channel.shape, *[1] * (x.ndim - 2)).expand_as(x))
        out = denoiser(source, sigma, positions)
        return out * inside.reshape(*inside.shape, *[1] * (x.ndim - 2)).to(out.dtype)

    wrapped.slab_ends = "replicated"  # type: ignore[attr-defined]  # recorded in a volume run's identity
    for name in ("config", "model"):
        if hasattr(denoiser, name):
            setattr(wrapped, name, getattr(denoiser, name))
    return wrapped
