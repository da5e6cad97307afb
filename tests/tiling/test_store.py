import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import zarr
from hypothesis import given
from hypothesis import strategies as st

from tests.tiling.strategies import grid_and_shift
from tests.tiling.test_stream import make_fn
from tiling import TileGrid, TilingError, map_tiles, map_tiles_store


def memory_array(shape, chunks, dtype="f8"):
    return zarr.create_array(store=zarr.storage.MemoryStore(), shape=shape, chunks=chunks, dtype=dtype)


@given(grid_and_shift(max_size=13), st.integers(1, 2), st.integers(1, 3), st.booleans(), st.integers(1, 5))
def test_out_of_core_equals_in_memory(gs, channels, out_channels, canvas_mode, chunk0):
    grid, shift = gs
    fn = make_fn(channels, grid.ndim, out_channels, seed=5)
    rng = np.random.default_rng(0)
    spatial = grid.canvas_shape if canvas_mode else grid.shape
    data = rng.standard_normal((1, channels, *spatial))
    src = memory_array(data.shape, (1, channels, chunk0, *spatial[1:]))
    src[:] = data
    tgt = memory_array((1, out_channels, *spatial), (1, out_channels, chunk0 + 1, *spatial[1:]))
    map_tiles_store(fn, src, grid, shift, tgt, segment_bands=2)
    canvas = torch.from_numpy(data) if canvas_mode else grid.pad_image(torch.from_numpy(data))
    expected = map_tiles(fn, canvas, grid, shift)
    expected = expected if canvas_mode else grid.crop(expected)
    assert np.array_equal(tgt[:], expected.numpy())


def test_bare_volume_any_source_any_scheduler():
    """numpy, dask and zarr sources, threaded and synchronous scheduling: one result."""
    import dask.array as da

    grid = TileGrid((30, 12, 11), (4, 6, 5))
    fn = make_fn(1, 3, 1, seed=7)
    vol = np.random.default_rng(1).standard_normal(grid.shape).astype(np.float32)
    stored = memory_array(grid.shape, (7, 12, 11), "f4")
    stored[:] = vol
    sources = [(vol, "threads", 2), (da.from_array(vol, chunks=(9, 12, 11)), "sync", 1), (stored, "threads", 1)]
    expected = grid.crop(map_tiles(fn, grid.pad_image(torch.from_numpy(vol)[None, None]), grid, (1, 5, 3)))[0, 0]
    for source, scheduler, workers in sources:
        tgt = memory_array(grid.shape, (5, 12, 11), "f4")
        map_tiles_store(fn, source, grid, (1, 5, 3), tgt, scheduler=scheduler, num_workers=workers)
        assert np.array_equal(tgt[:], expected.numpy()), type(source).__name__


def test_store_errors():
    grid = TileGrid((16, 16), 4)
    src = np.zeros((16, 16), np.float32)
    with pytest.raises(TilingError, match="neither the image shape"):
        map_tiles_store(lambda t, p: t, np.zeros((15, 16)), grid, (0, 0), memory_array((15, 16), (4, 16)))
    with pytest.raises(TilingError, match="does not match"):
        map_tiles_store(lambda t, p: t, src, grid, (0, 0), memory_array((16, 15), (4, 15)))
    with pytest.raises(TilingError, match="the minimum is"):
        map_tiles_store(lambda t, p: t, src, grid, (0, 0), memory_array((16, 16), (4, 16)), memory_budget=100)
    bad = src.copy()
    bad[3, 3] = np.inf
    with pytest.raises(TilingError, match="NaN or Inf"):
        map_tiles_store(lambda t, p: t, bad, grid, (0, 0), memory_array((16, 16), (4, 16), "f4"), check_finite=True)


MEMORY_SCRIPT = textwrap.dedent("""
    import gc, json, os, resource, sys
    import numpy as np, torch, zarr
    from tiling import TileGrid, map_tiles_store
    torch.set_num_threads(1)
    root, budget = sys.argv[1], int(sys.argv[2])
    shape = (int(sys.argv[3]), 128, 128)
    src = zarr.create_array(store=os.path.join(root, "src.zarr"), shape=shape, chunks=(16, 128, 128), dtype="f4")
    tgt = zarr.create_array(store=os.path.join(root, "tgt.zarr"), shape=shape, chunks=(16, 128, 128), dtype="f4")
    rng = np.random.default_rng(0)
    for z in range(0, shape[0], 16):
        src[z:z + 16] = rng.standard_normal((16, 128, 128), dtype=np.float32)
    grid = TileGrid(shape, 16)
    fn = lambda t, p: 2 * t + p[:, :1]
    # warm-up on a small slice so one-off allocations (thread pools, codecs) are not counted
    map_tiles_store(fn, src[:32], TileGrid((32, 128, 128), 16), (0, 0, 0),
                    zarr.create_array(store=zarr.storage.MemoryStore(), shape=(32, 128, 128), chunks=(16, 128, 128),
                                      dtype="f4"), memory_budget=budget)
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    map_tiles_store(fn, src, grid, (5, 3, 9), tgt, memory_budget=budget)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    z = shape[0] // 2
    ok = bool(np.allclose(tgt[z, 40, 40], 2 * src[z, 40, 40] + (-1 + 2 * z / (shape[0] - 1)), atol=1e-5))
    print(json.dumps({"before": before, "peak": peak, "ok": ok}))
""")


@pytest.mark.slow
def test_out_of_core_memory_stays_under_budget(tmp_path):
    """A pass over a zarr volume 8x larger than the budget stays under budget + fixed overhead."""
    budget = 32 * 2**20
    depth = 8 * budget // (128 * 128 * 4)  # float32 volume of 8x the budget (256 MiB)
    run = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path), str(budget), str(depth)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    overhead = 64 * 2**20
    assert report["ok"]
    assert report["peak"] - report["before"] < budget + overhead, report
