"""Generic N-D tiling engine: partitions of a zero-padded canvas into tiles with a
random grid shift, streamed through a function in bounded batches, in memory or over
zarr/dask arrays on disk. Knows nothing of diffusion.

>>> import torch
>>> from tiling import TileGrid, map_tiles
>>> grid = TileGrid((128, 128), 48)            # K = 3, M = 16, canvas 160x160
>>> canvas = grid.pad_image(torch.rand(1, 1, 128, 128))
>>> out = map_tiles(lambda t, pos: 2 * t, canvas, grid, grid.random_shift(), max_batch=4)
>>> bool((grid.crop(out) == 2 * grid.crop(canvas)).all())
True
"""

from tiling.errors import TilingError
from tiling.grid import TileGrid
from tiling.planning import TileChoice, suggest_tile, tile_candidates, tile_tradeoff_table
from tiling.store import map_tiles_store
from tiling.stream import fold_positions, fold_tiles, map_tiles, plan_batch, tile_bytes, unfold_tiles, vjp_tiles

__all__ = [
    "TileGrid", "TilingError", "map_tiles", "vjp_tiles", "map_tiles_store", "fold_tiles", "unfold_tiles",
    "fold_positions", "plan_batch", "tile_bytes", "TileChoice", "suggest_tile", "tile_candidates",
    "tile_tradeoff_table",
]
