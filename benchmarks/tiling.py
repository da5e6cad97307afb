"""Benchmark: one full prior-style evaluation over 3D volumes, our engine vs MONAI.

(a) ``tiling.map_tiles`` over the canvas (one random-shift partition);
(b) MONAI ``sliding_window_inference`` over the same tiled window at overlap 0 (the same tiles);
(c) the bare network over the same, pre-extracted tiles (the floor);
(d) MONAI at overlap 0.25 on the unpadded volume (the setting users know).
(e) the engine with an identity function: its own cost (gather, positions, scatter).
Prints (a - c) / c, e / c, b / a, d / a and the tile-voxel factor prod(K P / N), plus the
tile-size trade-off table of ``tiling.planning``. Timings are medians of interleaved
repeats, so background load hits all variants alike. Run by hand:

    python benchmarks/tiling.py                 # 64x128x128 and 64x256x256, 32^3 tiles
    python benchmarks/tiling.py --quick         # a smaller volume, for a smoke check
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

# This file is named like the package it measures: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402
from monai.inferers import sliding_window_inference  # noqa: E402
from monai.networks.nets import BasicUNet  # noqa: E402

from tiling import TileGrid, map_tiles, suggest_tile, tile_tradeoff_table


def network() -> torch.nn.Module:
    """A 3D UNet of roughly the per-voxel cost of a small CPU patch denoiser."""
    return BasicUNet(spatial_dims=3, in_channels=1, out_channels=1, features=(8, 8, 16, 32, 64, 8)).eval()


def bench(shape: tuple[int, ...], tile: int, batch: int, repeats: int) -> dict[str, float]:
    net = network()
    grid = TileGrid(shape, tile)
    shift = grid.random_shift(torch.Generator().manual_seed(0))
    image = torch.rand(1, 1, *shape)
    canvas = grid.pad_image(image)
    window = canvas[(..., *grid.window_slices(shift))].contiguous()
    tiles = grid.extract(canvas, shift)
    roi = (tile,) * len(shape)

    variants = {
        "a_engine": lambda: map_tiles(lambda t, p: net(t), canvas, grid, shift, max_batch=batch),
        "b_monai_same_tiles": lambda: sliding_window_inference(window, roi, batch, net, overlap=0.0),
        "c_bare_network": lambda: [net(tiles[i:i + batch]) for i in range(0, tiles.shape[0], batch)],
        "d_monai_overlap_0.25": lambda: sliding_window_inference(image, roi, batch, net, overlap=0.25),
        "e_engine_identity": lambda: map_tiles(lambda t, p: t, canvas, grid, shift, max_batch=batch),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    with torch.no_grad():
        for fn in variants.values():  # warm-up
            fn()
        for _ in range(repeats):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    med["factor"] = grid.tile_voxel_factor
    med["tiles"] = grid.num_tiles
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small volume, 2 repeats")
    parser.add_argument("--tile", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8, help="tiles per network call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shapes = [(32, 64, 64)] if args.quick else [(64, 128, 128), (64, 256, 256)]
    repeats = 2 if args.quick else args.repeats
    print(f"torch {torch.__version__}, {args.threads} thread(s), tile {args.tile}^3, batch {args.batch}, "
          f"median of {repeats} interleaved repeats")
    print(f"{'volume':>14} {'tiles':>5} {'(a) s':>8} {'(b) s':>8} {'(c) s':>8} {'(d) s':>8} "
          f"{'(a-c)/c':>8} {'e/c':>6} {'b/a':>6} {'d/a':>6} {'KP/N':>6}")
    for shape in shapes:
        r = bench(shape, args.tile, args.batch, repeats)
        a, b, c, d = r["a_engine"], r["b_monai_same_tiles"], r["c_bare_network"], r["d_monai_overlap_0.25"]
        e = r["e_engine_identity"]  # the engine alone (gather, positions, scatter), no network
        print(f"{'x'.join(map(str, shape)):>14} {r['tiles']:>5} {a:8.3f} {b:8.3f} {c:8.3f} {d:8.3f} "
              f"{(a - c) / c:8.1%} {e / c:6.1%} {b / a:6.2f} {d / a:6.2f} {r['factor']:6.2f}")
    print("\nTile-size trade-off per axis (multiple of 8, suggest_tile picks the lowest factor with M >= P/4):")
    for n in sorted({s for shape in shapes for s in shape}):
        print(f"\naxis of {n}: suggested P = {suggest_tile(n).tile}\n{tile_tradeoff_table(n, max_tile=min(n, 96))}")


if __name__ == "__main__":
    main()
