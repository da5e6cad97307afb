"""What a reconstruction accepts (sizes, contrast, tiles), shared by the library and the command line
(light imports: the CLI reads them at parse time)."""

import numpy as np

from padis3d.errors import PadisError

MIN_SIDE = 7
"""Smallest image side (and volume axis) a reconstruction accepts: the 7-pixel window of the SSIM
in the reports' metrics (:func:`padis3d.metrics.ssim`)."""


def check_tile_fits(tile: int | str | None, shape: tuple[int, ...]) -> None:
    """PadisError for a tile more than twice the largest side of ``shape``: its canvas is mostly
    padding and its network pass allocates without bound (use ``--tile whole`` for one tile)."""
    if isinstance(tile, int) and tile > 2 * max(shape):
        raise PadisError(f"--tile {tile} is more than twice the largest side of the {'x'.join(map(str, shape))} "
                         f"image: use a smaller tile, 'auto' or 'whole'")


def check_input_shape(shape: tuple[int, ...], name: str) -> None:
    """PadisError when the input's own slice (before resizing) has a side below MIN_SIDE pixels: upsampling
    it invents the image instead of reconstructing it."""
    if min(int(n) for n in shape) < MIN_SIDE:
        raise PadisError(f"{name} is {'x'.join(map(str, shape))} pixels: too small to reconstruct, every side needs "
                         f">= {MIN_SIDE} pixels (the SSIM window of the report) before resizing")


def check_not_constant(image: np.ndarray, name: str) -> None:
    """PadisError when the normalised input holds one value only: there is nothing to reconstruct."""
    lo, hi = float(np.min(image)), float(np.max(image))
    if not hi > lo:
        raise PadisError(f"{name} is constant after its intensity map (all values {lo:g}): nothing to reconstruct; "
                         f"check the input or its --window")
