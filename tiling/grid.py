"""TileGrid: the geometry of a partition of a zero-padded canvas into equal tiles.

Per spatial axis, image size ``N`` and tile size ``P``: ``K = N // P + 1`` tiles,
padding ``M = K P - N`` (1 <= M <= P) on both sides, canvas ``N + 2 M`` with the image
at ``[M, M + N)``, and a shift ``s`` in ``0..M-1`` whose ``K`` tiles cover
``[s, s + K P)`` (always a superset of the image). A *whole* axis (tile ``None``) has
one tile equal to the image, no padding and shift 0. ``min_shifts`` adds tiles on an axis
whose ``M`` would allow fewer shifts than asked (``K = N // P + 1 + ceil((S - M) / P)``):
a slab axis of ``k`` slices needs ``S = k`` so that every slab boundary can move.

Arrays are ``(batch, channels, *spatial)`` torch tensors. Extraction and scatter are a
reshape/permutation of the shifted window of the canvas (one copy), not gather loops.
Written by hand: MONAI's and torch's patch utilities (``sliding_window_inference``,
``Tensor.unfold``) tile the image itself with overlaps and blending, not a zero-padded
canvas partition with a random shift and an exact adjoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from tiling.errors import TilingError

Shift = tuple[int, ...]


class TileGrid:
    """Partition geometry for an image of spatial ``shape`` into tiles of size ``tile``.

    ``tile`` is an int (same for every axis) or one entry per axis; an entry ``None``
    makes that axis whole (one tile, no padding). Attributes: ``shape``, ``tile``,
    ``counts`` (K), ``pad`` (M), ``canvas_shape``, ``window_shape`` (K P),
    ``num_tiles``, ``ndim``, ``whole_axes``. ``min_shifts``: at least this many admissible
    shifts per axis (an int or one per axis; default 1, the paper's ``K = N // P + 1``).
    """

    def __init__(self, shape: Sequence[int], tile: int | None | Sequence[int | None],
                 min_shifts: int | Sequence[int] = 1):
        shape = tuple(int(n) for n in shape)
        if not shape or any(n < 1 for n in shape):
            raise TilingError(f"image shape must be positive integers, got {shape}")
        if tile is None or isinstance(tile, (int, float)):
            tile = (tile,) * len(shape)
        tile = tuple(tile)
        if len(tile) != len(shape):
            raise TilingError(f"tile {tile} has {len(tile)} axes but the image shape {shape} has {len(shape)}")
        whole, sizes = [], []
        for n, p in zip(shape, tile):
            if p is None:
                whole.append(True)
                sizes.append(n)
                continue
            if isinstance(p, bool) or int(p) != p or p < 1:
                raise TilingError(f"tile sizes must be positive integers (or None for a whole axis), got {tile}")
            whole.append(False)
            sizes.append(int(p))
        mins = (min_shifts,) * len(shape) if isinstance(min_shifts, int) else tuple(min_shifts)
        if len(mins) != len(shape) or any(isinstance(v, bool) or int(v) != v or v < 1 for v in mins):
            raise TilingError(f"min_shifts must be a positive int or one per axis of {shape}, got {min_shifts}")
        self.shape: tuple[int, ...] = shape
        self.tile: tuple[int, ...] = tuple(sizes)
        self.whole_axes: tuple[bool, ...] = tuple(whole)
        self.min_shifts: tuple[int, ...] = tuple(int(v) for v in mins)
        self.counts: tuple[int, ...] = tuple(
            1 if w else n // p + 1 + max(0, -(-(s - (n // p + 1) * p + n) // p))
            for n, p, w, s in zip(shape, sizes, whole, self.min_shifts))
        self.pad: tuple[int, ...] = tuple(k * p - n for n, p, k in zip(shape, sizes, self.counts))
        self.canvas_shape: tuple[int, ...] = tuple(n + 2 * m for n, m in zip(shape, self.pad))
        self.window_shape: tuple[int, ...] = tuple(k * p for k, p in zip(self.counts, sizes))
        self.num_tiles: int = math.prod(self.counts)
        self.ndim: int = len(shape)

    @classmethod
    def whole(cls, shape: Sequence[int]) -> TileGrid:
        """One tile equal to the image: no padding, no shift (the whole-image comparator)."""
        return cls(shape, None)

    def __repr__(self) -> str:
        return f"TileGrid(shape={self.shape}, tile={self.tile}, counts={self.counts}, pad={self.pad})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TileGrid) and (self.shape, self.tile, self.whole_axes, self.counts) == (
            other.shape, other.tile, other.whole_axes, other.counts)

    def __hash__(self) -> int:
        return hash((self.shape, self.tile, self.whole_axes, self.counts))

    @property
    def shift_counts(self) -> tuple[int, ...]:
        """Number of admissible shifts per axis (``M``, or 1 on a whole axis)."""
        return tuple(max(m, 1) for m in self.pad)

    @property
    def tile_voxel_factor(self) -> float:
        """Tile voxels per image voxel, ``prod(K P / N)``: the cost of the random shift."""
        return math.prod(w / n for w, n in zip(self.window_shape, self.shape))

    # -- validation -------------------------------------------------------------
    def check_shift(self, shift: Sequence[int]) -> Shift:
        shift = tuple(int(s) for s in shift)
        if len(shift) != self.ndim:
            raise TilingError(f"shift {shift} has {len(shift)} axes, the grid has {self.ndim}")
        for axis, (s, c) in enumerate(zip(shift, self.shift_counts)):
            if not 0 <= s < c:
                raise TilingError(f"shift {shift} out of range on axis {axis}: must be in 0..{c - 1}")
        return shift

    def _check_spatial(self, x: torch.Tensor, expected: tuple[int, ...], what: str) -> None:
        if not isinstance(x, torch.Tensor):
            raise TilingError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != self.ndim + 2 or tuple(x.shape[2:]) != expected:
            raise TilingError(
                f"{what} must have shape (batch, channels, {', '.join(map(str, expected))}), got {tuple(x.shape)}")

    def check_canvas(self, canvas: torch.Tensor) -> None:
        self._check_spatial(canvas, self.canvas_shape, "canvas")

    def check_image(self, image: torch.Tensor) -> None:
        self._check_spatial(image, self.shape, "image")

    # -- padding ----------------------------------------------------------------
    def image_slices(self) -> tuple[slice, ...]:
        """Slices of the image inside the canvas, one per spatial axis."""
        return tuple(slice(m, m + n) for m, n in zip(self.pad, self.shape))

    def window_slices(self, shift: Sequence[int]) -> tuple[slice, ...]:
        """Slices of the tiled window ``[s, s + K P)`` inside the canvas."""
        shift = self.check_shift(shift)
        return tuple(slice(s, s + w) for s, w in zip(shift, self.window_shape))

    def pad_image(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad ``(B, C, *shape)`` to ``(B, C, *canvas_shape)``."""
        self.check_image(x)
        canvas = x.new_zeros(x.shape[:2] + self.canvas_shape)
        canvas[(..., *self.image_slices())] = x
        return canvas

    def crop(self, canvas: torch.Tensor) -> torch.Tensor:
        """The image region of a canvas, as a view: ``(B, C, *shape)``."""
        self.check_canvas(canvas)
        return canvas[(..., *self.image_slices())]

    # -- tiles --------------------------------------------------------------------
    def tile_view(self, canvas: torch.Tensor, shift: Sequence[int]) -> torch.Tensor:
        """Strided view ``(B, *counts, C, *tile)`` of the tiles of ``canvas`` (no copy)."""
        self.check_canvas(canvas)
        return self.window_tiles(canvas[(..., *self.window_slices(shift))])

    def window_tiles(self, window: torch.Tensor) -> torch.Tensor:
        """``(B, C, *[r_i P_i])`` -> view ``(B, *r, C, *P)`` for any whole number of tile rows ``r``."""
        v = window
        for axis, p in enumerate(self.tile):  # splitting one dim is always a view
            v = v.unflatten(2 + 2 * axis, (v.shape[2 + 2 * axis] // p, p))
        nd = self.ndim
        order = [0, *(2 + 2 * a for a in range(nd)), 1, *(3 + 2 * a for a in range(nd))]
        return v.permute(order)

    def extract(self, canvas: torch.Tensor, shift: Sequence[int]) -> torch.Tensor:
        """Tiles ``(B * num_tiles, C, *tile)``, batch-major then row-major over ``counts``."""
        view = self.tile_view(canvas, shift)
        return view.reshape(-1, *view.shape[1 + self.ndim:])

    def scatter(self, tiles: torch.Tensor, shift: Sequence[int]) -> torch.Tensor:
        """Canvas ``(B, C, *canvas_shape)`` holding ``tiles``, zero elsewhere (adjoint of ``extract``)."""
        if tiles.ndim != self.ndim + 2 or tuple(tiles.shape[2:]) != self.tile or tiles.shape[0] % self.num_tiles:
            raise TilingError(
                f"tiles must have shape (batch * {self.num_tiles}, channels, {', '.join(map(str, self.tile))}), "
                f"got {tuple(tiles.shape)}")
        b, c = tiles.shape[0] // self.num_tiles, tiles.shape[1]
        canvas = tiles.new_zeros((b, c) + self.canvas_shape)
        view = self.tile_view(canvas, shift)
        view.copy_(tiles.reshape(b, *self.counts, c, *self.tile))
        return canvas

    # -- positions ------------------------------------------------------------------
    def axis_coordinates(self, axis: int, shift: int, *, dtype: torch.dtype = torch.float32,
                         device: torch.device | str | None = None) -> torch.Tensor:
        """Coordinates ``(K, P)`` of the window voxels along one axis: -1 at the first image
        voxel, +1 at the last, linear (beyond +-1 in the padding); 0 for a 1-voxel axis."""
        n, m = self.shape[axis], self.pad[axis]
        image_index = torch.arange(self.window_shape[axis], dtype=torch.float64, device=device) + (shift - m)
        coords = image_index * (2.0 / (n - 1)) - 1.0 if n > 1 else image_index * 0.0
        return coords.to(dtype).reshape(self.counts[axis], self.tile[axis])

    def unravel(self, tiles: torch.Tensor) -> list[torch.Tensor]:
        """Flat tile indices (row-major over ``counts``) -> one index tensor per axis."""
        idx, out = tiles, []
        for k in reversed(self.counts):
            out.append(idx % k)
            idx = torch.div(idx, k, rounding_mode="floor")
        return out[::-1]

    def positions(self, shift: Sequence[int], tiles: torch.Tensor | None = None, *,
                  dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
        """Voxel coordinates ``(n, ndim, *tile)`` of tiles (all ``num_tiles`` by default, or the
        flat indices ``tiles``): channel ``i`` holds the coordinate along spatial axis ``i``."""
        shift = self.check_shift(shift)
        if tiles is None:
            tiles = torch.arange(self.num_tiles, device=device)
        tiles = torch.as_tensor(tiles, device=device).reshape(-1)
        index = self.unravel(tiles)
        n, nd = tiles.numel(), self.ndim
        out = torch.empty((n, nd, *self.tile), dtype=dtype, device=device)
        for axis in range(nd):
            coords = self.axis_coordinates(axis, shift[axis], dtype=dtype, device=device)[index[axis]]
            shape = [n] + [1] * nd
            shape[1 + axis] = self.tile[axis]
            out[:, axis] = coords.reshape(shape)
        return out

    def random_shift(self, generator: torch.Generator | None = None) -> Shift:
        """One uniformly random admissible shift per axis."""
        return tuple(int(torch.randint(c, (), generator=generator)) for c in self.shift_counts)
