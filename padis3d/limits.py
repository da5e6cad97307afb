"""Size limits shared by the library and the command line (no heavy imports: the CLI reads them at parse time)."""

MIN_SIDE = 7
"""Smallest image side (and volume axis) a reconstruction accepts: the 7-pixel window of the SSIM
in the reports' metrics (:func:`padis3d.metrics.ssim`)."""


def check_tile_fits(tile: int | str | None, shape: tuple[int, ...]) -> None:
    """PadisError for a tile more than twice the largest side of ``shape``: its canvas is mostly
    padding and its network pass allocates without bound (use ``--tile whole`` for one tile)."""
    from padis3d.errors import PadisError

    if isinstance(tile, int) and tile > 2 * max(shape):
        raise PadisError(f"--tile {tile} is more than twice the largest side of the {'x'.join(map(str, shape))} "
                         f"image: use a smaller tile, 'auto' or 'whole'")
