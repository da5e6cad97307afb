"""Out-of-core tiling: the partition of :mod:`tiling.grid` over arrays on disk.

The source (a zarr array, a dask array or anything dask can wrap) is tiled in *bands*:
whole rows of tiles along spatial axis 0. dask builds the graph (lazy zero padding,
band rechunking, cropping, rechunking to the target's chunks) and schedules it; each
band task runs :func:`tiling.stream.map_window` in memory; the result is stored into a
zarr array with chunk-aligned writes (each written dask chunk is exactly one zarr chunk
row, so no two tasks touch the same chunk). Peak memory is set by the band size and the
number of workers, independent of the length of axis 0.

Two input kinds, told apart by shape like :class:`~tiling.grid.TileGrid` does:
``grid.shape`` (an image: padding is virtual and the output is the image region) or
``grid.canvas_shape`` (a canvas: the output canvas, zero on the border).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import torch
import zarr

from tiling.errors import TilingError
from tiling.grid import TileGrid
from tiling.stream import TileFn, format_bytes, map_window, plan_batch, tile_bytes


def _as_dask(source: Any) -> da.Array:
    if isinstance(source, da.Array):
        return source
    if isinstance(source, zarr.Array):
        return da.from_zarr(source)
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    return da.from_array(source, chunks="auto", asarray=True)


def _slice_padded(x: da.Array, axis: int, start: int, stop: int) -> da.Array:
    """Rows ``[start, stop)`` of ``x`` along ``axis``, zero outside ``[0, x.shape[axis])``."""
    lo, hi = max(start, 0), min(stop, x.shape[axis])
    if hi <= lo:
        shape = list(x.shape)
        shape[axis] = stop - start
        return da.zeros(shape, dtype=x.dtype)
    core = x[(slice(None),) * axis + (slice(lo, hi),)]
    if lo == start and hi == stop:
        return core
    widths = [(0, 0)] * x.ndim
    widths[axis] = (lo - start, stop - hi)
    return da.pad(core, widths, mode="constant")


BAND_COPIES_IN, BAND_COPIES_OUT = 3, 2
"""Copies of one input band and one output band that a worker holds at its peak: the
source read, its zero-padded and rechunked window, the band output and the pieces of
it that are rechunked to the target's chunks (measured: tests/tiling/test_store.py and
``padis3d tiling-demo``)."""


def band_bytes(grid: TileGrid, batch: int, channels: int, out_channels: int, itemsize: int) -> int:
    """Peak bytes one worker holds for one band (one row of tiles along axis 0)."""
    voxels = grid.tile[0] * math.prod(grid.window_shape[1:])
    return batch * (BAND_COPIES_IN * channels + BAND_COPIES_OUT * out_channels) * voxels * itemsize


def store_tile_budget(grid: TileGrid, batch: int, channels: int, out_channels: int, itemsize: int,
                      per_tile: int, memory_budget: int, num_workers: int = 1) -> int:
    """Bytes left for tiles in flight per worker once its band is held; a :class:`TilingError`
    naming the minimum when ``memory_budget`` cannot hold one band and one tile per worker.
    Callers may run it before any work to fail early (``padis3d.volume.runner`` does)."""
    band = band_bytes(grid, batch, channels, out_channels, itemsize)
    minimum = band + per_tile
    if not memory_budget >= minimum * num_workers:
        raise TilingError(f"memory_budget of {format_bytes(memory_budget)} is too small for {num_workers} "
                          f"worker(s): one band of tiles and one tile in flight need {format_bytes(minimum)}; "
                          f"the minimum is {format_bytes(minimum * num_workers)}")
    return memory_budget // num_workers - band


def map_tiles_store(fn: TileFn, source: Any, grid: TileGrid, shift: Sequence[int], target: zarr.Array, *,
                    memory_budget: int | None = None, max_batch: int | None = None,
                    bytes_per_tile: int | None = None, device: torch.device | str | None = None,
                    fold_axes: Sequence[int] = (), num_workers: int = 1,
                    scheduler: Any = None, check_finite: bool = False,
                    segment_bands: int = 32, fn_bytes_per_tile: int = 0) -> zarr.Array:
    """Tile ``source`` out of core, apply ``fn`` to each tile and write into ``target``.

    source: ``(B, C, *S)`` or ``(*S)`` with ``S`` the grid's image or canvas shape; zarr,
    dask, numpy or torch. target: a zarr array of the output shape (its channel count is
    ``fn``'s output channels; same layout as ``source``), ideally chunked along axis 0.
    ``memory_budget`` (bytes) bounds each worker's band plus its tile batch, and raises
    with the minimum when one band does not fit; ``fn_bytes_per_tile`` is what ``fn`` holds per
    tile (a network's activations) on top of the engine's own bytes. ``scheduler``: dask scheduler name or a
    ``distributed.Client`` (default: threads with ``num_workers`` workers).
    """
    src = _as_dask(source)
    bare = src.ndim == grid.ndim
    if bare:
        src = src[None, None]
    if src.ndim != grid.ndim + 2:
        raise TilingError(f"source must have {grid.ndim} or {grid.ndim + 2} dimensions for {grid}, "
                          f"got shape {tuple(src.shape)}")
    spatial = tuple(src.shape[2:])
    if spatial not in (grid.shape, grid.canvas_shape):
        raise TilingError(f"source spatial shape {spatial} is neither the image shape {grid.shape} "
                          f"nor the canvas shape {grid.canvas_shape} of {grid}")
    image_mode = spatial == grid.shape and grid.shape != grid.canvas_shape
    batch, channels = src.shape[:2]
    out_shape = tuple(target.shape) if not bare else (1, 1, *target.shape)
    if len(out_shape) != src.ndim or out_shape[0] != batch or tuple(out_shape[2:]) != spatial:
        raise TilingError(f"target shape {tuple(target.shape)} does not match the source {tuple(source.shape)} "
                          f"(only the channel count may differ)")
    out_channels = out_shape[1]
    shift = grid.check_shift(shift)
    dtype = np.dtype(target.dtype)
    torch_dtype = torch.from_numpy(np.zeros(0, dtype=src.dtype)).dtype

    per_tile = (bytes_per_tile or tile_bytes(grid, channels, torch_dtype, out_channels)) + fn_bytes_per_tile
    tiles_per_band = batch * grid.num_tiles // grid.counts[0]
    tile_batch = plan_batch(tiles_per_band, per_tile, max_batch=max_batch)
    if memory_budget is not None:
        left = store_tile_budget(grid, batch, channels, out_channels, src.dtype.itemsize, per_tile, memory_budget,
                                 num_workers)
        tile_batch = plan_batch(tiles_per_band, per_tile, max_batch=tile_batch, memory_budget=left)

    p0 = grid.tile[0]
    # Window row w <-> source row w - off (and output row y <-> window row y + off) per axis.
    offsets = [m - s if image_mode else -s for m, s in zip(grid.pad, shift)]

    def run_band(block: np.ndarray, row0: int, block_info: dict | None = None) -> np.ndarray:
        first_row = row0 + block_info[0]["chunk-location"][2]
        x = torch.from_numpy(np.ascontiguousarray(block))
        if check_finite and not torch.isfinite(x).all():
            raise TilingError(f"source contains NaN or Inf values (tile row {first_row})")
        with torch.no_grad():
            out = map_window(fn, x, grid, shift, first_row=first_row, batch=tile_batch, device=device,
                             fold_axes=fold_axes)
        return out.cpu().numpy().astype(dtype, copy=False)

    kwargs: dict[str, Any] = {"lock": False}
    if scheduler is None or isinstance(scheduler, str):
        kwargs.update(scheduler=scheduler or "threads", num_workers=num_workers)
    else:  # a distributed.Client
        kwargs.update(scheduler=scheduler)
    # Segments of whole target chunk rows keep each dask graph (and its bookkeeping,
    # which grows with the task count) bounded whatever the length of axis 0.
    target_rows = target.chunks[0 if bare else 2]
    segment = target_rows * max(1, (segment_bands * p0) // target_rows)
    length = spatial[0]
    for a in range(0, length, segment):
        b = min(a + segment, length)
        r0 = max(0, (a + offsets[0]) // p0)
        r1 = min(grid.counts[0], -(-(b + offsets[0]) // p0))
        if r1 <= r0:  # a canvas segment wholly outside the tiled window
            out = da.zeros((batch, out_channels, b - a, *spatial[1:]), dtype=dtype)
        else:
            window = _slice_padded(src, 2, r0 * p0 - offsets[0], r1 * p0 - offsets[0])
            for axis in range(1, grid.ndim):
                window = _slice_padded(window, 2 + axis, -offsets[axis], grid.window_shape[axis] - offsets[axis])
            window = window.rechunk((batch, channels, p0, *grid.window_shape[1:]))
            out = window.map_blocks(run_band, r0, dtype=dtype,
                                    chunks=((batch,), (out_channels,), *window.chunks[2:]))
            out = _slice_padded(out, 2, a + offsets[0] - r0 * p0, b + offsets[0] - r0 * p0)
            for axis in range(1, grid.ndim):
                out = _slice_padded(out, 2 + axis, offsets[axis], offsets[axis] + spatial[axis])
        if bare:
            out = out[0, 0]
        region = (slice(a, b),) if bare else (slice(None), slice(None), slice(a, b))
        da.store(out.rechunk(target.chunks), target, regions=region, **kwargs)
    return target
