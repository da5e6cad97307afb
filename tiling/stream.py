"""Streaming a function over the tiles of a canvas in bounded batches.

``map_tiles`` applies ``fn(tiles, positions)`` to every tile of one partition and
assembles the output canvas (zero outside the tiles); ``vjp_tiles`` gives the
vector-Jacobian product of that map by recomputing each batch under autograd, so a
gradient through a network never holds the graph of all tiles. The canvas stays on its
storage device; ``fn`` runs on ``device`` (MONAI's ``sw_device``/``device`` split).
Batches gather tiles from a strided view of the canvas (no padded copy) and write the
outputs straight into the output canvas. Hand-written because no library offers a
shifted non-overlapping partition with positions, folding and a streamed VJP.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch

from tiling.errors import TilingError
from tiling.grid import TileGrid

TileFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``fn(tiles (n, C, *tile), positions (n, ndim, *tile)) -> (n, C_out, *tile)``; with
folded axes the tile axes listed in ``fold_axes`` are merged into the channels."""


# -- axis folding ------------------------------------------------------------------
def fold_tiles(tiles: torch.Tensor, fold_axes: Sequence[int]) -> torch.Tensor:
    """``(n, C, *tile)`` -> ``(n, C * prod(tile[a] for a in fold_axes), *rest)``, channel-major."""
    if not fold_axes:
        return tiles
    spatial = [2 + a for a in fold_axes]
    moved = tiles.movedim(spatial, list(range(2, 2 + len(spatial))))
    return moved.reshape(moved.shape[0], -1, *moved.shape[2 + len(spatial):])


def unfold_tiles(out: torch.Tensor, fold_axes: Sequence[int], tile: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`fold_tiles` for an output with any number of channels."""
    if not fold_axes:
        return out
    folded = [tile[a] for a in fold_axes]
    per = math.prod(folded)
    if out.shape[1] % per:
        raise TilingError(f"fn returned {out.shape[1]} channels, not a multiple of the folded size {per}")
    x = out.reshape(out.shape[0], out.shape[1] // per, *folded, *out.shape[2:])
    return x.movedim(list(range(2, 2 + len(folded))), [2 + a for a in fold_axes])


def fold_positions(positions: torch.Tensor, fold_axes: Sequence[int]) -> torch.Tensor:
    """``(n, ndim, *tile)`` -> ``(n, ndim, *rest)``: a folded axis's channel becomes the tile's
    centre coordinate along it; every other channel is constant along a folded axis."""
    if not fold_axes:
        return positions
    return positions.mean(dim=[2 + a for a in fold_axes])


# -- batch planning ------------------------------------------------------------------
def tile_bytes(grid: TileGrid, channels: int, dtype: torch.dtype, out_channels: int | None = None,
               *, gradients: bool = False) -> int:
    """Bytes the engine holds per tile in flight: input, positions, output (and, for a VJP,
    the cotangent and the input gradient)."""
    out_channels = channels if out_channels is None else out_channels
    per_voxel = channels + grid.ndim + out_channels + (channels + out_channels if gradients else 0)
    return per_voxel * math.prod(grid.tile) * torch.empty((), dtype=dtype).element_size()


def format_bytes(n: int) -> str:
    """``4096 bytes (0.0039 MiB)``: bytes for the engine's API, MiB for the CLI's ``--memory-budget-mb``."""
    return f"{int(n)} bytes ({n / 2**20:.4g} MiB)"


def plan_batch(total: int, per_tile: int, *, max_batch: int | None = None,
               memory_budget: int | None = None) -> int:
    """Tiles per batch: at most ``max_batch`` and at most ``memory_budget // per_tile``."""
    batch = total
    if max_batch is not None:
        if max_batch < 1:
            raise TilingError(f"max_batch must be >= 1, got {max_batch}")
        batch = min(batch, max_batch)
    if memory_budget is not None:
        if memory_budget < per_tile:
            raise TilingError(f"memory_budget of {format_bytes(memory_budget)} is smaller than one tile "
                              f"in flight; the minimum is {format_bytes(per_tile)}")
        batch = min(batch, memory_budget // per_tile)
    return max(1, batch)


def _batches(total: int, batch: int) -> Iterator[torch.Tensor]:
    for start in range(0, total, batch):
        yield torch.arange(start, min(start + batch, total))


# -- the streamed map ---------------------------------------------------------------
class _Tiling:
    """Shared machinery of map_tiles / vjp_tiles over a block of tile rows of a window."""

    def __init__(self, grid: TileGrid, shift: Sequence[int], window: torch.Tensor, first_row: int,
                 fold_axes: Sequence[int], device: torch.device | str | None):
        self.grid, self.shift = grid, grid.check_shift(shift)
        self.view = grid.window_tiles(window)  # (B, rows, K1, ..., C, *tile)
        self.rows = self.view.shape[1]
        self.first_tile = first_row * (grid.num_tiles // grid.counts[0])
        self.local_tiles = grid.num_tiles // grid.counts[0] * self.rows
        self.total = self.view.shape[0] * self.local_tiles
        self.fold_axes = tuple(sorted(int(a) for a in fold_axes))
        if any(not 0 <= a < grid.ndim for a in self.fold_axes) or len(set(self.fold_axes)) != len(self.fold_axes):
            raise TilingError(f"fold_axes {tuple(fold_axes)} must be distinct spatial axes in 0..{grid.ndim - 1}")
        self.device = torch.device(device) if device is not None else window.device

    def index(self, flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b = torch.div(flat, self.local_tiles, rounding_mode="floor")
        local = flat % self.local_tiles
        counts = (self.rows, *self.grid.counts[1:])
        per_axis, rest = [], local
        for k in reversed(counts):
            per_axis.append(rest % k)
            rest = torch.div(rest, k, rounding_mode="floor")
        return (b, *per_axis[::-1])

    def inputs(self, idx: tuple[torch.Tensor, ...], source: torch.Tensor | None = None) -> torch.Tensor:
        view = self.view if source is None else source
        return view[idx].to(self.device, non_blocking=True)

    def positions(self, idx: tuple[torch.Tensor, ...], dtype: torch.dtype) -> torch.Tensor:
        local = idx[1]
        for axis in range(1, self.grid.ndim):
            local = local * self.grid.counts[axis] + idx[1 + axis]
        pos = self.grid.positions(self.shift, (local + self.first_tile).to(self.device), dtype=dtype,
                                  device=self.device)
        return fold_positions(pos, self.fold_axes)

    def call(self, fn: TileFn, tiles: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        out = fn(fold_tiles(tiles, self.fold_axes), pos)
        if not isinstance(out, torch.Tensor) or out.shape[0] != tiles.shape[0]:
            raise TilingError(f"fn must return a tensor with one row per tile ({tiles.shape[0]}), "
                              f"got {getattr(out, 'shape', type(out).__name__)}")
        out = unfold_tiles(out, self.fold_axes, self.grid.tile)
        if tuple(out.shape[2:]) != self.grid.tile:
            raise TilingError(f"fn must keep the tile's spatial shape {self.grid.tile}, got {tuple(out.shape[2:])}")
        return out


def _check_finite(x: torch.Tensor, what: str) -> None:
    if not torch.isfinite(x).all():
        raise TilingError(f"{what} contains NaN or Inf values")


Allocate = Callable[[int, torch.dtype], torch.Tensor]
"""``allocate(out_channels, dtype)`` -> the output window block to write into."""


def map_window(fn: TileFn, window: torch.Tensor, grid: TileGrid, shift: Sequence[int], *,
               allocate: Allocate | None = None, first_row: int = 0, batch: int | None = None,
               max_batch: int | None = None, memory_budget: int | None = None,
               bytes_per_tile: int | None = None, device: torch.device | str | None = None,
               fold_axes: Sequence[int] = (), fn_bytes_per_tile: int = 0) -> torch.Tensor:
    """:func:`map_tiles` on a block ``(B, C, rows * P_0, *window_shape[1:])`` of whole tile rows
    of the shifted window, starting at tile row ``first_row`` along axis 0 (the out-of-core
    driver streams such bands). The output block is made by ``allocate`` once the first
    batch's channels and dtype are known (default: zeros like ``window``); returns it."""
    t = _Tiling(grid, shift, window, first_row, fold_axes, device)
    if batch is None:
        per_tile = (bytes_per_tile or tile_bytes(grid, window.shape[1], window.dtype)) + fn_bytes_per_tile
        batch = plan_batch(t.total, per_tile, max_batch=max_batch, memory_budget=memory_budget)
    if allocate is None:
        def allocate(channels: int, dtype: torch.dtype) -> torch.Tensor:
            return window.new_zeros((window.shape[0], channels, *window.shape[2:]), dtype=dtype)
    out = out_view = None
    for flat in _batches(t.total, batch):
        idx = t.index(flat)
        result = t.call(fn, t.inputs(idx), t.positions(idx, window.dtype))
        if out_view is None:
            out = allocate(result.shape[1], result.dtype)
            out_view = grid.window_tiles(out)
        out_view[idx] = result.to(out.device, non_blocking=True)
    return out


def map_tiles(fn: TileFn, canvas: torch.Tensor, grid: TileGrid, shift: Sequence[int], *,
              max_batch: int | None = None, memory_budget: int | None = None,
              bytes_per_tile: int | None = None, device: torch.device | str | None = None,
              fold_axes: Sequence[int] = (), check_finite: bool = False, fn_bytes_per_tile: int = 0) -> torch.Tensor:
    """Apply ``fn`` to every tile of the partition ``shift`` of ``canvas``.

    canvas: ``(B, C, *grid.canvas_shape)`` on any device (the storage device).
    Returns ``(B, C_out, *grid.canvas_shape)`` on the canvas's device: ``fn``'s output on
    every tile, exactly 0 on the border. At most ``max_batch`` tiles (or as many as
    ``memory_budget`` bytes allow at ``bytes_per_tile`` each; default :func:`tile_bytes`,
    plus ``fn_bytes_per_tile``, what ``fn`` itself holds per tile, e.g. a network's
    activations) are in flight; ``fn`` runs on ``device`` (default: the canvas's). Differentiable under
    autograd when ``fn`` is; for a bounded-memory gradient use :func:`vjp_tiles`.
    """
    grid.check_canvas(canvas)
    if check_finite:
        _check_finite(canvas, "canvas")
    window_slices = grid.window_slices(shift)
    holder: list[torch.Tensor] = []

    def allocate(channels: int, dtype: torch.dtype) -> torch.Tensor:
        holder.append(canvas.new_zeros((canvas.shape[0], channels, *grid.canvas_shape), dtype=dtype))
        return holder[0][(..., *window_slices)]

    map_window(fn, canvas[(..., *window_slices)], grid, shift, allocate=allocate, max_batch=max_batch,
               memory_budget=memory_budget, bytes_per_tile=bytes_per_tile, device=device,
               fold_axes=fold_axes, fn_bytes_per_tile=fn_bytes_per_tile)
    return holder[0]


def vjp_tiles(fn: TileFn, canvas: torch.Tensor, grid: TileGrid, shift: Sequence[int],
              cotangent: torch.Tensor, *, max_batch: int | None = None, memory_budget: int | None = None,
              bytes_per_tile: int | None = None, device: torch.device | str | None = None,
              fold_axes: Sequence[int] = (), check_finite: bool = False,
              return_output: bool = False, fn_bytes_per_tile: int = 0) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Vector-Jacobian product ``J(canvas)^T cotangent`` of ``canvas -> map_tiles(fn, canvas)``.

    cotangent: ``(B, C_out, *grid.canvas_shape)``. Each batch of tiles is recomputed with
    gradients enabled and released before the next, so peak memory is one batch's graph.
    ``fn_bytes_per_tile``: the graph ``fn`` keeps per tile for the backward pass.
    Returns the gradient ``(B, C, *grid.canvas_shape)`` (zero on the border), and with
    ``return_output`` also the map's output (as :func:`map_tiles` would give it).
    """
    grid.check_canvas(canvas)
    if cotangent.ndim != canvas.ndim or tuple(cotangent.shape[2:]) != grid.canvas_shape \
            or cotangent.shape[0] != canvas.shape[0]:
        raise TilingError(f"cotangent must have shape ({canvas.shape[0]}, C_out, "
                          f"{', '.join(map(str, grid.canvas_shape))}), got {tuple(cotangent.shape)}")
    if check_finite:
        _check_finite(canvas, "canvas")
        _check_finite(cotangent, "cotangent")
    window_slices = grid.window_slices(shift)
    t = _Tiling(grid, shift, canvas[(..., *window_slices)], 0, fold_axes, device)
    per_tile = (bytes_per_tile or tile_bytes(grid, canvas.shape[1], canvas.dtype, cotangent.shape[1],
                                             gradients=True)) + fn_bytes_per_tile
    batch = plan_batch(t.total, per_tile, max_batch=max_batch, memory_budget=memory_budget)
    cot_view = grid.tile_view(cotangent, shift)
    grad = torch.zeros_like(canvas)
    grad_view = grid.tile_view(grad, shift)
    output = cotangent.new_zeros(cotangent.shape) if return_output else None
    out_view = grid.tile_view(output, shift) if return_output else None
    for flat in _batches(t.total, batch):
        idx = t.index(flat)
        tiles = t.inputs(idx).detach().requires_grad_(True)
        with torch.enable_grad():
            result = t.call(fn, tiles, t.positions(idx, canvas.dtype))
            if result.shape[1] != cotangent.shape[1]:
                raise TilingError(f"fn returned {result.shape[1]} channels but the cotangent has "
                                  f"{cotangent.shape[1]}")
            (g,) = torch.autograd.grad(result, tiles, t.inputs(idx, cot_view).to(result.dtype))
        grad_view[idx] = g.to(grad.device, non_blocking=True)
        if out_view is not None:
            out_view[idx] = result.detach().to(output.device, non_blocking=True)
    return (grad, output) if return_output else grad
