"""``padis3d tiling-demo``: what the tiling engine does, on the bundled chest CT.

1. 2D: a held-out axial slice at 128x128, the 48-pixel partition under three random
   shifts, the position channel, and a per-tile mean averaged over many shifts (one
   partition shows seams; the average over shifts does not, which is why the prior
   redraws the shift at every evaluation).
2. 3D out of core: the whole 133x512x512 volume in a zarr store, processed tile band by
   tile band under a memory budget; reports peak memory against the budget.
Writes ``tiling_demo.png`` and ``tiling_demo.json`` (atomically) to ``out_dir``.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zarr

from padis3d.atomic import save_figure, write_json
from padis3d.io.volume_stream import open_volume

from padis3d.io.sample_data import TEST_SLICES, chest_ct_path, chest_ct_slices
from tiling import TileGrid, map_tiles, map_tiles_store, suggest_tile


def tile_mean(tiles: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Every voxel of a tile replaced by the tile's mean: makes the partition visible."""
    return tiles.mean(dim=tuple(range(2, tiles.ndim)), keepdim=True).expand_as(tiles)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _figure(path: Path, grid: TileGrid, canvas: torch.Tensor, drawn: list, single: torch.Tensor,
            averaged: torch.Tensor) -> None:
    """The canvas under three shifts with their tile borders, and the per-tile mean for one shift and averaged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(20, 4.4))
    for ax, s in zip(axes[:3], drawn[:3]):
        ax.imshow(canvas[0, 0], cmap="gray", vmin=0, vmax=1)
        for axis, line in ((0, ax.axhline), (1, ax.axvline)):
            for k in range(grid.counts[axis] + 1):
                line(s[axis] + k * grid.tile[axis] - 0.5, color="tab:orange", lw=1)
        m = grid.pad[0]
        ax.add_patch(plt.Rectangle((m - 0.5, m - 0.5), 128, 128, fill=False, ec="tab:cyan", lw=1, ls="--"))
        ax.set_title(f"canvas {grid.canvas_shape}, shift {s}")
    axes[3].imshow(single[0, 0], cmap="gray", vmin=0, vmax=1)
    axes[3].set_title("per-tile mean, one shift")
    axes[4].imshow(averaged[0, 0], cmap="gray", vmin=0, vmax=1)
    axes[4].set_title(f"per-tile mean, average of {len(drawn)} shifts")
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.suptitle(f"{grid}: tiles (orange) cover the image (cyan) for every shift")
    save_figure(fig, path, dpi=80)


def run_tiling_demo(out_dir: str | Path = "outputs/tiling-demo", seed: int = 0, shifts: int = 32,
                    memory_budget: int = 160 * 2**20) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    # 3D, out of core: the volume goes from the NIfTI to a zarr store 16 slices at a time
    # and is then streamed tile band by tile band; it is never whole in memory.
    volume = open_volume(chest_ct_path())  # canonical (z, y, x) HU bands, read lazily
    shape = volume.shape
    grid3 = TileGrid(shape, (16, 64, 64))
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        src = zarr.create_array(store=f"{tmp}/volume.zarr", shape=shape, chunks=(16, *shape[1:]), dtype="f4")
        for z in range(0, shape[0], 16):
            src[z:z + 16] = np.clip((volume.read(z, min(z + 16, shape[0])) + 1000.0) / 2000.0, 0, 1)
        dst = zarr.create_array(store=f"{tmp}/out.zarr", shape=shape, chunks=(16, *shape[1:]), dtype="f4")
        volume_bytes = 4 * int(np.prod(shape))
        before, t0 = _peak_rss(), time.perf_counter()
        map_tiles_store(tile_mean, src, grid3, grid3.random_shift(gen), dst, memory_budget=memory_budget)
        seconds, growth = time.perf_counter() - t0, _peak_rss() - before
        centre = dst[66, 256, 256]
    image = torch.from_numpy(chest_ct_slices([TEST_SLICES[10]], 128))[None]  # (1, 1, 128, 128)
    grid = TileGrid(image.shape[2:], suggest_tile(128).tile)
    canvas = grid.pad_image(image)
    drawn = [grid.random_shift(gen) for _ in range(shifts)]
    single = grid.crop(map_tiles(tile_mean, canvas, grid, drawn[0]))
    averaged = sum(grid.crop(map_tiles(tile_mean, canvas, grid, s)) for s in drawn) / shifts
    exact = all(torch.equal(grid.crop(grid.scatter(grid.extract(canvas, s), s)), image) for s in drawn)

    _figure(out_dir / "tiling_demo.png", grid, canvas, drawn, single, averaged)

    report = {
        "2d": {"grid": repr(grid), "shifts": shifts, "exact_reassembly": exact,
               "tile_voxel_factor": grid.tile_voxel_factor},
        "3d_out_of_core": {"grid": repr(grid3), "volume_mb": volume_bytes / 2**20,
                           "memory_budget_mb": memory_budget / 2**20, "peak_rss_growth_mb": growth / 2**20,
                           "seconds": seconds, "centre_value": float(centre)},
    }
    write_json(out_dir / "tiling_demo.json", report)
    print(f"2D: {grid}, exact reassembly over {shifts} random shifts: {exact}")
    print(f"3D: {grid3} over a {volume_bytes / 2**20:.0f} MB zarr volume in {seconds:.1f} s, "
          f"peak memory growth {growth / 2**20:.0f} MB for a {memory_budget / 2**20:.0f} MB budget")
    print(f"wrote {out_dir / 'tiling_demo.png'} and {out_dir / 'tiling_demo.json'}")
    return report
