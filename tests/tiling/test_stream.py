import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.tiling.strategies import grid_and_shift
from tiling import (TileGrid, TilingError, fold_positions, fold_tiles, map_tiles, plan_batch, tile_bytes,
                    unfold_tiles, vjp_tiles)


def make_fn(channels: int, ndim: int, out_channels: int, seed: int = 0):
    """A nonlinear per-voxel map that mixes the channels with the positions."""
    w = torch.randn(out_channels, channels + ndim, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)

    def fn(tiles, positions):
        x = torch.cat([tiles, positions], 1)  # elementwise sums: results independent of the batch size
        return torch.tanh(torch.stack([sum(w[o, c] * x[:, c] for c in range(x.shape[1]))
                                       for o in range(out_channels)], 1))
    return fn


def reference(fn, canvas, grid, shift):
    """The assembled map written plainly: extract all tiles, one call, scatter."""
    pos = grid.positions(shift, dtype=canvas.dtype).repeat(canvas.shape[0], *[1] * (grid.ndim + 1))
    return grid.scatter(fn(grid.extract(canvas, shift), pos), shift)


@given(grid_and_shift(max_size=14), st.integers(1, 2), st.integers(1, 2), st.integers(1, 3), st.integers(1, 7))
def test_batched_equals_unbatched_bit_for_bit(gs, batch, channels, out_channels, max_batch):
    grid, shift = gs
    fn = make_fn(channels, grid.ndim, out_channels)
    canvas = torch.randn(batch, channels, *grid.canvas_shape, generator=torch.Generator().manual_seed(1))
    full = map_tiles(fn, canvas, grid, shift)
    assert full.shape == (batch, out_channels, *grid.canvas_shape)
    assert torch.equal(map_tiles(fn, canvas, grid, shift, max_batch=max_batch), full)
    assert torch.allclose(full, reference(fn, canvas, grid, shift), atol=1e-6)


@given(grid_and_shift(max_size=12), st.integers(1, 2), st.integers(1, 5))
def test_vjp_equals_autograd(gs, channels, max_batch):
    grid, shift = gs
    fn = make_fn(channels, grid.ndim, 2, seed=3)
    g = torch.Generator().manual_seed(2)
    canvas = torch.randn(2, channels, *grid.canvas_shape, generator=g, dtype=torch.float64)
    cot = torch.randn(2, 2, *grid.canvas_shape, generator=g, dtype=torch.float64)
    x = canvas.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(reference(fn, x, grid, shift), x, cot)
    grad, out = vjp_tiles(fn, canvas, grid, shift, cot, max_batch=max_batch, return_output=True)
    assert torch.allclose(grad, expected, rtol=1e-10, atol=1e-12)
    assert torch.equal(out, map_tiles(fn, canvas, grid, shift))


def test_border_is_exactly_zero_even_when_fn_is_not():
    grid = TileGrid((10, 9), 4)
    out = map_tiles(lambda t, p: t + 1.0, torch.zeros(1, 1, *grid.canvas_shape), grid, (1, 2))
    mask = torch.zeros(grid.canvas_shape, dtype=torch.bool)
    mask[grid.window_slices((1, 2))] = True
    assert (out[0, 0][mask] == 1).all() and (out[0, 0][~mask] == 0).all()


def test_batch_limit_is_respected():
    grid = TileGrid((20, 20), 6)
    seen = []

    def fn(t, p):
        seen.append(t.shape[0])
        return t
    map_tiles(fn, torch.zeros(2, 1, *grid.canvas_shape), grid, (0, 0), max_batch=7)
    assert max(seen) == 7 and sum(seen) == 2 * grid.num_tiles
    seen.clear()
    per_tile = tile_bytes(grid, 1, torch.float32)
    map_tiles(fn, torch.zeros(2, 1, *grid.canvas_shape), grid, (0, 0), memory_budget=3 * per_tile + 5)
    assert max(seen) == 3


def test_memory_budget_below_one_tile_says_the_minimum():
    grid = TileGrid((20, 20), 6)
    per_tile = tile_bytes(grid, 1, torch.float32)
    with pytest.raises(TilingError, match=f"the minimum is {per_tile} bytes"):
        map_tiles(lambda t, p: t, torch.zeros(1, 1, *grid.canvas_shape), grid, (0, 0), memory_budget=per_tile - 1)
    with pytest.raises(TilingError, match="max_batch"):
        plan_batch(10, 4, max_batch=0)


def test_fold_round_trip_and_positions():
    tiles = torch.randn(5, 2, 3, 4, 6)
    for axes in [(), (0,), (1,), (0, 2)]:
        folded = fold_tiles(tiles, axes)
        assert folded.shape[1] == 2 * int(torch.tensor([tiles.shape[2 + a] for a in axes]).prod())
        assert torch.equal(unfold_tiles(folded, axes, (3, 4, 6)), tiles)
    grid = TileGrid((7, 10, 10), (3, 4, 4))
    pos = fold_positions(grid.positions((1, 0, 0)), (0,))
    assert pos.shape == (grid.num_tiles, 3, 4, 4)
    centre = grid.axis_coordinates(0, 1).mean(dim=1)  # slab centres along z
    assert torch.allclose(pos[:, 0, 0, 0], centre.repeat_interleave(grid.num_tiles // grid.counts[0]))


def test_folded_slabs_reach_a_2d_fn_as_channels():
    """A slab of k slices goes to a 2D function as k channels, with in-plane positions."""
    grid = TileGrid((7, 10, 10), (3, 4, 4))
    canvas = torch.randn(1, 1, *grid.canvas_shape)
    shapes = []

    def fn2d(t, p):
        shapes.append((tuple(t.shape[1:]), tuple(p.shape[1:])))
        return t.flip(1) * p[:, 2:3]  # reverse the slices, weight by x
    out = map_tiles(fn2d, canvas, grid, (1, 1, 0), fold_axes=(0,), max_batch=4)
    assert set(shapes) == {((3, 4, 4), (3, 4, 4))}
    tiles = grid.extract(canvas, (1, 1, 0))
    x_pos = grid.positions((1, 1, 0))[:, 2:3]
    assert torch.allclose(out, grid.scatter(tiles.flip(2) * x_pos, (1, 1, 0)))


def test_check_finite_and_bad_fn_outputs():
    grid = TileGrid((8, 8), 4)
    canvas = torch.zeros(1, 1, *grid.canvas_shape)
    canvas[0, 0, 3, 3] = float("nan")
    with pytest.raises(TilingError, match="NaN"):
        map_tiles(lambda t, p: t, canvas, grid, (0, 0), check_finite=True)
    ok = torch.zeros(1, 1, *grid.canvas_shape)
    with pytest.raises(TilingError, match="spatial shape"):
        map_tiles(lambda t, p: t[..., :2], ok, grid, (0, 0))
    with pytest.raises(TilingError, match="one row per tile"):
        map_tiles(lambda t, p: t[:1], ok, grid, (0, 0))
    with pytest.raises(TilingError, match="cotangent"):
        vjp_tiles(lambda t, p: t, ok, grid, (0, 0), torch.zeros(1, 1, 8, 8))
    with pytest.raises(TilingError, match="fold_axes"):
        map_tiles(lambda t, p: t, ok, grid, (0, 0), fold_axes=(2,))


def test_compute_device_separate_from_storage_device():
    """fn sees tiles on the compute device; the output stays with the canvas."""
    grid = TileGrid((9, 9), 4)
    devices = []

    def fn(t, p):
        devices.append((t.device.type, p.device.type))
        return t * 3
    canvas = torch.randn(1, 2, *grid.canvas_shape)
    out = map_tiles(fn, canvas, grid, (0, 1), device="cpu", max_batch=2)
    assert set(devices) == {("cpu", "cpu")} and out.device == canvas.device
    assert torch.equal(grid.crop(out), 3 * grid.crop(canvas))
