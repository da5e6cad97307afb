"""Slice-jump slabs (DiffusionBlend++): a slab prior that also sees slices ``i, i+k, i+2k``.

A slab prior denoises ``k`` adjacent axial slices together, so information crosses a slab
boundary only through the random z shift. DiffusionBlend++ alternates adjacent slabs with
"slice-jump" slabs. Here each evaluation picks, with probability 1/2, the jump partition:
the window of whole slabs is cut into blocks of ``k²`` slices, and inside a block slab
``m`` holds slices ``m, m + k, ..., m + (k-1) k``. This is a permutation of the canvas rows
that maps jump slabs onto the grid's own slabs, so the tiling engine, its random shift and
its memory limits are used unchanged: permute, denoise, permute back. Slabs past the last
whole block stay adjacent. The network's z position is that of the permuted row (off by at
most ``k - 1`` slices); in-plane positions are exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from padis3d.errors import PadisError
from padis3d.priors.patch import PatchPrior


def jump_permutation(canvas_z: int, slab: int, count: int, shift: int) -> torch.Tensor:
    """Canvas row order ``perm`` (``new[i] = old[perm[i]]``) that turns the grid's slabs into
    slice-jump slabs: ``count`` slabs of ``slab`` rows start at row ``shift``."""
    perm = torch.arange(canvas_z)
    blocks = count // slab
    n = blocks * slab * slab
    perm[shift:shift + n] = perm[shift:shift + n].view(blocks, slab, slab).transpose(1, 2).reshape(-1)
    return perm


class SliceJumpPrior(PatchPrior):
    """A slab :class:`PatchPrior` whose every evaluation uses adjacent or slice-jump slabs at
    random (same arguments as :class:`PatchPrior`; axis 0 must be the folded slab axis)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.fold_axes != (0,) or self.grid.tile[0] < 2:
            raise PadisError("slice-jump slabs need a slab prior (k >= 2 slices folded into channels)")

    def _order(self, shift: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor | None:
        if torch.randint(2, (1,), generator=generator).item() == 0:
            return None
        return jump_permutation(self.grid.canvas_shape[0], self.grid.tile[0], self.grid.counts[0], shift[0])

    def denoise(self, x: torch.Tensor, sigma: float, *, shift: Sequence[int] | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        shift = self._shift(shift, generator)
        perm = self._order(shift, generator)
        if perm is None:
            return self._map(x, sigma, shift)
        return self._map(x[:, :, perm], sigma, shift)[:, :, torch.argsort(perm)]

    def denoise_vjp(self, x: torch.Tensor, sigma: float, cotangent: Callable[[torch.Tensor], torch.Tensor], *,
                    shift: Sequence[int] | None = None, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        shift = self._shift(shift, generator)
        perm = self._order(shift, generator)
        if perm is None:
            return super().denoise_vjp(x, sigma, cotangent, shift=shift)
        inv = torch.argsort(perm)  # D'(x) = D(x[perm])[inv], so J'ᵀ v = (Jᵀ v[perm])[inv]
        d, g = super().denoise_vjp(x[:, :, perm], sigma, lambda dp: cotangent(dp[:, :, inv])[:, :, perm], shift=shift)
        return d[:, :, inv], g[:, :, inv]
