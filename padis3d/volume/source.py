"""What a volume reconstruction reads: a file (NIfTI, zarr, DICOM series, ``.npy``, read lazily in the
canonical orientation by :func:`padis3d.io.volume_stream.open_volume`) or an array already in memory or
in a zarr store, in the canonical ``(z, y, x)`` orientation (:mod:`padis3d.io.orientation`); and the
intensity window that maps it to the priors' [0, 1]."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from padis3d.errors import PadisError
from padis3d.io.normalize import require_finite
from padis3d.io.volume_stream import VolumeSource

HU_WINDOW = (-1000.0, 1000.0)
"""The window of CT files (NIfTI, DICOM) when none is given, in HU."""


def is_array(source: Any) -> bool:
    """Whether ``source`` is an array (numpy, zarr, anything with ``shape`` and slicing), not a path."""
    return not isinstance(source, (str, Path, VolumeSource)) and hasattr(source, "shape") and hasattr(source, "__getitem__")


def array_source(array: Any, name: str = "the array", rows: int = 16) -> VolumeSource:
    """A :class:`VolumeSource` over a canonical ``(z, y, x)`` array (numpy, or zarr read band by band).
    A numpy array is checked for NaN/Inf here, ``rows`` slices at a time; a zarr array as its bands
    are read."""
    shape = tuple(int(n) for n in array.shape)
    if len(shape) != 3:
        raise PadisError(f"{name} has shape {shape}; a volume reconstruction needs a 3D (z, y, x) array "
                         f"(for a 2D image use padis3d.reconstruct_image)")
    if isinstance(array, np.ndarray):
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
            raise PadisError(f"{name} holds {array.dtype} values; give real numbers")
        for z0 in range(0, shape[0], rows):
            require_finite(array[z0:z0 + rows], name)
    return VolumeSource(Path(name), "array", shape, _reader=lambda z0, z1: np.asarray(array[z0:z1]))  # type: ignore[arg-type]


def open_source(source: str | Path | VolumeSource | Any, orientation: str | None = None,
                series: str | None = None) -> VolumeSource:
    """``source`` as a lazily read canonical :class:`VolumeSource`: a path through
    :func:`padis3d.io.volume_stream.open_volume` (``orientation`` declares how an npy/zarr file is
    stored, ``series`` picks a DICOM series), an array as it is (already canonical)."""
    if isinstance(source, VolumeSource):
        return source
    if is_array(source):
        if orientation is not None or series is not None:
            raise PadisError("orientation and series describe files; an array must already be in the canonical "
                             "(z, y, x) orientation (padis3d.io.orientation)")
        return array_source(source)
    from padis3d.io.volume_stream import open_volume

    return open_volume(source, orientation=orientation, series=series)


def intensity_window(source: VolumeSource, window: tuple[float, float] | None, rows: int) -> tuple[float, float]:
    """The values mapped to [0, 1]: ``window`` as given, :data:`HU_WINDOW` for NIfTI and DICOM, else
    the volume's range (one pass over it, ``rows`` slices at a time). PadisError for an inverted window or
    a constant volume."""
    if window is not None:
        lo, hi = window
        if not hi > lo:
            raise PadisError(f"--window {lo} {hi} must have LO < HI, e.g. --window -1000 1000")
    elif source.kind in ("nifti", "dicom"):
        lo, hi = HU_WINDOW
    else:
        lo, hi = source.min_max(rows)
    if hi <= lo:
        raise PadisError(f"{source.source} is constant ({lo}); nothing to reconstruct")
    return float(lo), float(hi)
