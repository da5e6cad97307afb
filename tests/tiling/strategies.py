"""Hypothesis strategies shared by the tiling tests: random 1-3D grids and shifts."""

from hypothesis import strategies as st

from tiling import TileGrid


@st.composite
def grids(draw, max_ndim: int = 3, max_size: int = 23, allow_whole: bool = True) -> TileGrid:
    ndim = draw(st.integers(1, max_ndim))
    shape = [draw(st.integers(1, max_size)) for _ in range(ndim)]
    tile = [draw(st.one_of(st.none(), st.integers(1, 9)) if allow_whole else st.integers(1, 9)) for _ in shape]
    min_shifts = [draw(st.sampled_from([1, 1, 2, 5])) for _ in shape]
    return TileGrid(shape, tile, min_shifts)


@st.composite
def grid_and_shift(draw, **kwargs) -> tuple[TileGrid, tuple[int, ...]]:
    grid = draw(grids(**kwargs))
    shift = tuple(draw(st.integers(0, c - 1)) for c in grid.shift_counts)
    return grid, shift
