"""A whole volume or image read into the canonical orientation (:mod:`padis3d.io.orientation`),
with what is needed to put a result back in the file's own orientation and geometry.

Every in-memory reader of the package goes through :func:`read_canonical`: training data
(:func:`padis3d.io.load_training_images`), the 2D tasks' reference slice
(:mod:`padis3d.io.reference`) and whole volumes (:mod:`padis3d.io.volume_file`). The streamed
volume reader (:mod:`padis3d.io.volume_stream`) applies the same orientation band by band.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from padis3d.errors import PadisError
from padis3d.io.orientation import CANONICAL, PLANES, Codes, nifti_codes, parse_codes, reorient


@dataclass
class CanonicalVolume:
    """``data`` ``(z, y, x)`` float32 in the canonical orientation (SPL), in the file's units.

    ``stored``: the orientation of the file's own ``(z, y, x)`` array (a NIfTI's ``(k, j, i)``,
    a DICOM series' ``(slice, row, column)``, an npy/zarr array as stored); ``stored_shape``
    its shape; ``affine``/``header``: the NIfTI's (voxel ``(i, j, k)`` -> world), else None;
    ``units``: ``"HU"`` for CT DICOM, ``"raw"`` for other DICOM, ``"file"`` otherwise;
    ``source_of_orientation``: ``"affine"``, ``"dicom"``, ``"declared"`` or ``"as stored"``."""

    data: np.ndarray
    source: Path
    fmt: str
    stored: Codes
    stored_shape: tuple[int, int, int]
    affine: np.ndarray | None = None
    header: Any = None
    units: str = "file"
    source_of_orientation: str = "as stored"

    @property
    def is_image(self) -> bool:
        """A single 2D image (a 2D file, or a volume of one slice)."""
        return self.stored_shape[0] == 1

    def plane_of_image(self) -> int:
        """The plane (:data:`PLANES`) a single 2D image lies in: the one its normal runs along."""
        return {"S": 0, "I": 0, "A": 1, "P": 1, "L": 2, "R": 2}[self.stored[0]]

    def stack(self, axis: int | None) -> tuple[np.ndarray, int]:
        """The slices ``(n, rows, cols)`` along plane ``axis`` (0 axial, default; 1 coronal; 2
        sagittal), each in its plane's orientation, and the plane used. A single 2D image gives
        itself in its own plane's orientation whatever ``axis``."""
        plane = self.plane_of_image() if self.is_image else (0 if axis is None else int(axis))
        if plane not in PLANES:
            raise PadisError(f"slice axis {plane} must be 0 (axial), 1 (coronal) or 2 (sagittal)")
        return reorient(self.data, CANONICAL, PLANES[plane][1]), plane

    def slice_to_file(self, image: np.ndarray, plane: int, index: int,
                      zoom: tuple[float, float] = (1.0, 1.0)) -> tuple[np.ndarray, np.ndarray | None]:
        """A result ``image`` ``(rows, cols)`` made from slice ``index`` of :meth:`stack` ``(plane)``
        (resampled by ``zoom`` input pixels per pixel) as the file stores it: a 3D array in the
        file's own ``(i, j, k)`` voxel order with one axis of length 1, and its NIfTI affine (the
        voxels land at the world position of the input voxels they were computed from; None
        without an affine). Only flips and transposes: no value is resampled here."""
        from padis3d.io.nifti import resampled_affine
        from padis3d.io.orientation import transform

        codes = PLANES[plane][1]
        stored = reorient(np.asarray(image, dtype=np.float32)[None], codes, self.stored)  # file's (z, y, x)
        t = transform(codes, self.stored)  # plane axis a -> stored axis t[a, 0], reversed where t[a, 1] < 0
        offset_zyx, zoom_zyx = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
        n_slice = self.stored_shape[int(t[0, 0])]
        offset_zyx[int(t[0, 0])] = index if t[0, 1] > 0 else n_slice - 1 - index
        for a, z in ((1, zoom[0]), (2, zoom[1])):
            zoom_zyx[int(t[a, 0])] = z
        ijk = np.ascontiguousarray(stored.transpose(2, 1, 0))
        if self.affine is None:
            return ijk, None
        return ijk, resampled_affine(self.affine, tuple(offset_zyx[::-1]), tuple(zoom_zyx[::-1]))


def declared(orientation: str | None, ndim: int) -> Codes | None:
    """``--orientation`` for an array of ``ndim`` axes (2 letters for an image, 3 for a volume)."""
    return None if orientation is None else parse_codes(orientation, ndim)


def _three(codes: Codes) -> Codes:
    from padis3d.io.orientation import add_slice_axis

    return codes if len(codes) == 3 else add_slice_axis(codes)


def read_canonical(path: str | Path, *, orientation: str | None = None, series: str | None = None,
                   fmt: str | None = None) -> CanonicalVolume:
    """The NIfTI, DICOM, zarr or ``.npy`` at ``path`` as a :class:`CanonicalVolume` (a 2D file is
    a volume of one slice). ``orientation`` declares how an npy/zarr array is stored (e.g.
    ``"SAL"``; default: as stored = canonical); NIfTI and DICOM carry their own, and a
    declaration that contradicts it is refused. ``series``: the DICOM series to read."""
    from padis3d.io import detect_format, read_npy, read_zarr
    from padis3d.io.normalize import require_finite, require_nonempty

    path = Path(path)
    fmt = fmt or detect_format(path)
    affine = header = None
    units, how = "file", "as stored"
    if fmt == "nifti":
        from padis3d.io.nifti import read_nifti_image

        img = read_nifti_image(path)
        try:
            data = np.asarray(img.dataobj, dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - a truncated file fails only when its voxels are read
            raise PadisError(f"cannot read NIfTI file {path} ({type(exc).__name__}: {exc}); check the file") from exc
        affine, header = np.asarray(img.affine, dtype=np.float64), img.header
        data = data[:, :, None] if data.ndim == 2 else data
        data = data.transpose(2, 1, 0)
        stored, how = nifti_codes(affine), "affine"
    elif fmt == "dicom":
        from padis3d.io.dicom import find_series, read_dicom

        data, units = read_dicom(path, with_units=True, series=series)
        stored, how = find_series(path, series).orientation, "dicom"
    elif fmt in ("zarr", "npy"):
        arr = read_zarr(path) if fmt == "zarr" else read_npy(path)
        ndim = arr.ndim
        data = np.asarray(arr[...], dtype=np.float32)
        data = data[None] if data.ndim == 2 else data
        given = declared(orientation, ndim)
        stored = _three(given) if given else CANONICAL
        how = "declared" if given else "as stored"
    else:
        raise PadisError(f"{path} is a folder of 2D images: read it with padis3d.io.read_image_folder")
    if orientation is not None and fmt in ("nifti", "dicom"):
        given = _three(parse_codes(orientation))
        if given != tuple(stored):
            raise PadisError(f"--orientation {orientation} contradicts {path}'s own geometry "
                             f"({''.join(stored)} from its {'affine' if fmt == 'nifti' else 'headers'}); "
                             f"leave --orientation out for NIfTI and DICOM")
    if series is not None and fmt != "dicom":
        raise PadisError(f"--series picks a DICOM series; {path} is {fmt}")
    require_nonempty(data.shape, str(path))
    require_finite(data, str(path))  # the whole volume, not only the slices a run uses
    return CanonicalVolume(reorient(data, tuple(stored), CANONICAL), path, fmt, tuple(stored),
                           tuple(data.shape), affine, header, units, how)  # type: ignore[arg-type]


def nifti_slices(path: str | Path, axis: int = 0, indices: list[int] | None = None) -> np.ndarray:
    """Slices ``(n, rows, cols)`` float32 of a NIfTI volume in the canonical orientation, along
    plane ``axis`` (0 axial, 1 coronal, 2 sagittal: :data:`padis3d.io.orientation.PLANES`),
    all slices by default: the voxel axes are oriented from the affine, not taken as stored."""
    stack, plane = read_canonical(path, fmt="nifti").stack(axis)
    idx = range(len(stack)) if indices is None else indices
    bad = [i for i in idx if not 0 <= i < len(stack)]
    if bad:
        raise PadisError(f"slices {bad} lie outside 0..{len(stack) - 1} of {path} along axis {plane}")
    return np.ascontiguousarray(stack[list(idx)])
