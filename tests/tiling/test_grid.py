import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.tiling.strategies import grid_and_shift, grids
from tiling import TileGrid, TilingError


def test_paper_geometry():
    g = TileGrid((256, 256), 56)
    assert g.counts == (5, 5) and g.pad == (24, 24) and g.canvas_shape == (304, 304)
    assert g.num_tiles == 25 and g.shift_counts == (24, 24)
    assert g.tile_voxel_factor == pytest.approx((280 / 256) ** 2)
    assert TileGrid((64, 128, 128), 32).tile_voxel_factor == pytest.approx(2.34375)


@given(grids())
def test_geometry_formulas(grid):
    for n, p, k, m, w, whole, s in zip(grid.shape, grid.tile, grid.counts, grid.pad, grid.window_shape,
                                       grid.whole_axes, grid.min_shifts):
        if whole:
            assert (p, k, m) == (n, 1, 0)
        else:
            assert m == k * p - n and max(1, s) <= m  # padding >= 1 and at least min_shifts shifts
            assert k == n // p + 1 if s == 1 else m - p < s  # the fewest tiles that allow them
        assert w == k * p
    assert grid.canvas_shape == tuple(n + 2 * m for n, m in zip(grid.shape, grid.pad))


@given(grid_and_shift(), st.integers(1, 2), st.integers(1, 3))
def test_every_image_voxel_in_exactly_one_tile(gs, batch, channels):
    grid, shift = gs
    tiles = torch.ones(batch * grid.num_tiles, channels, *grid.tile, dtype=torch.float64)
    cover = grid.scatter(tiles, shift)
    assert torch.equal(grid.crop(cover), torch.ones(batch, channels, *grid.shape, dtype=torch.float64))
    window = cover[(..., *grid.window_slices(shift))]
    assert torch.equal(window, torch.ones_like(window))
    assert cover.sum() == tiles.sum()  # tiles never overlap


@given(grid_and_shift(), st.integers(1, 2), st.integers(1, 2), st.integers(0, 2**31 - 1))
def test_scatter_is_adjoint_of_extract(gs, batch, channels, seed):
    grid, shift = gs
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, *grid.canvas_shape, generator=g, dtype=torch.float64)
    t = torch.randn(batch * grid.num_tiles, channels, *grid.tile, generator=g, dtype=torch.float64)
    lhs = (grid.extract(x, shift) * t).sum()
    rhs = (x * grid.scatter(t, shift)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


@given(grid_and_shift(), st.integers(1, 2), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_round_trips_are_exact(gs, batch, channels, seed):
    grid, shift = gs
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(batch * grid.num_tiles, channels, *grid.tile, generator=g)
    assert torch.equal(grid.extract(grid.scatter(t, shift), shift), t)
    x = torch.randn(batch, channels, *grid.shape, generator=g)
    canvas = grid.pad_image(x)
    assert torch.equal(grid.crop(canvas), x)
    border = canvas.clone()
    border[(..., *grid.image_slices())] = 0
    assert not border.any()  # zero padding
    # tiles of a padded image, scattered back, give the image back inside the canvas
    assert torch.equal(grid.crop(grid.scatter(grid.extract(canvas, shift), shift)), x)


def test_extract_order_is_batch_major_row_major():
    grid = TileGrid((4, 6), (2, 3))  # K = (3, 3), M = (2, 3)
    canvas = torch.arange(2 * 8 * 12, dtype=torch.float32).reshape(2, 1, 8, 12)
    tiles = grid.extract(canvas, (1, 2))
    assert tiles.shape == (18, 1, 2, 3)
    # tile (b=1, k0=2, k1=1) starts at canvas (1 + 2*2, 2 + 1*3)
    assert torch.equal(tiles[9 + 2 * 3 + 1, 0], canvas[1, 0, 5:7, 5:8])


@given(grid_and_shift())
def test_positions_follow_the_convention(gs):
    grid, shift = gs
    pos = grid.positions(shift, dtype=torch.float64)
    assert pos.shape == (grid.num_tiles, grid.ndim, *grid.tile)
    coords = grid.scatter(pos, shift)[0]  # (ndim, *canvas): coordinate of each tiled voxel
    window = grid.window_slices(shift)
    in_window = coords[(slice(None), *window)]
    for axis, (n, m) in enumerate(zip(grid.shape, grid.pad)):
        index = np.arange(grid.canvas_shape[axis])[window[axis]] - m
        expected = -1 + 2 * index / (n - 1) if n > 1 else 0 * index
        shape = [1] * grid.ndim
        shape[axis] = -1
        assert np.allclose(in_window[axis].numpy(), np.broadcast_to(expected.reshape(shape), in_window.shape[1:]))
    image = grid.crop(coords[None])[0]
    for axis, n in enumerate(grid.shape):
        if n > 1:
            first = image[axis].select(axis, 0)
            last = image[axis].select(axis, n - 1)
            assert torch.allclose(first, -torch.ones_like(first)) and torch.allclose(last, torch.ones_like(last))


@given(grid_and_shift(), st.data())
def test_positions_of_a_subset(gs, data):
    grid, shift = gs
    idx = torch.tensor(data.draw(st.lists(st.integers(0, grid.num_tiles - 1), min_size=1, max_size=5)))
    assert torch.equal(grid.positions(shift, idx), grid.positions(shift)[idx])


@given(grids(), st.integers(0, 2**31 - 1))
def test_random_shift_in_range_and_seeded(grid, seed):
    s1 = grid.random_shift(torch.Generator().manual_seed(seed))
    s2 = grid.random_shift(torch.Generator().manual_seed(seed))
    assert s1 == s2 and grid.check_shift(s1) == s1


def test_random_shift_reaches_every_offset():
    grid = TileGrid((10,), 4)  # M = 2
    g = torch.Generator().manual_seed(0)
    assert {grid.random_shift(g) for _ in range(200)} == {(0,), (1,)}


def test_whole_image_mode():
    grid = TileGrid.whole((5, 7))
    assert grid.counts == (1, 1) and grid.pad == (0, 0) and grid.canvas_shape == (5, 7)
    assert grid.shift_counts == (1, 1) and grid.tile_voxel_factor == 1.0
    x = torch.randn(2, 1, 5, 7)
    assert torch.equal(grid.extract(x, (0, 0)), x) and torch.equal(grid.pad_image(x), x)
    pos = grid.positions((0, 0))
    assert torch.allclose(pos[0, 1, 0], torch.linspace(-1, 1, 7), atol=1e-6)


@pytest.mark.parametrize("tile", [0, -3, 2.5, True, (4,)])
def test_bad_tiles(tile):
    with pytest.raises(TilingError):
        TileGrid((10, 10), tile)


def test_bad_shapes_and_shifts():
    grid = TileGrid((10, 10), 4)
    with pytest.raises(TilingError, match="out of range on axis 1"):
        grid.check_shift((0, 2))
    with pytest.raises(TilingError, match="3 axes"):
        grid.extract(torch.zeros(1, 1, 14, 14), (0, 0, 0))
    with pytest.raises(TilingError, match="canvas must have shape"):
        grid.extract(torch.zeros(1, 1, 10, 10), (0, 0))
    with pytest.raises(TilingError, match="canvas must have shape"):
        grid.extract(torch.zeros(1, 14, 14), (0, 0))
    with pytest.raises(TilingError, match="image must have shape"):
        grid.pad_image(torch.zeros(1, 1, 14, 14))
    with pytest.raises(TilingError, match="tiles must have shape"):
        grid.scatter(torch.zeros(5, 1, 4, 4), (0, 0))
    with pytest.raises(TilingError):
        TileGrid((0, 4), 2)
