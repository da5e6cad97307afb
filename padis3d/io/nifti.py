"""NIfTI volumes (``.nii`` memory-mapped, ``.nii.gz`` decompressed) via nibabel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from padis3d.errors import PadisError
from padis3d.io.normalize import require_nonempty


def read_nifti(path: str | Path) -> np.ndarray:
    """The voxel array (scaled by the header's slope/intercept) in the file's axis order.

    An uncompressed ``.nii`` stays memory-mapped (only the slices used are read)."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise PadisError(f"NIfTI file {path} does not exist")
    try:
        img = nib.load(path, mmap=True)
        data = img.dataobj if path.suffix == ".nii" else np.asarray(img.dataobj, dtype=np.float32)
        _ = data.shape
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for broken files
        raise PadisError(f"cannot read NIfTI file {path} ({type(exc).__name__}: {exc}); check the file") from exc
    if len(data.shape) not in (2, 3):
        raise PadisError(f"NIfTI file {path} has shape {data.shape}: expected a 2D image or a 3D volume")
    require_nonempty(data.shape, f"NIfTI file {path}")
    return data if isinstance(data, np.ndarray) else _LazySlicer(data)


class _LazySlicer:
    """Array-like over a memory-mapped nibabel ``dataobj``: slicing reads only what is asked."""

    def __init__(self, dataobj):
        self.dataobj, self.shape, self.ndim = dataobj, tuple(dataobj.shape), len(dataobj.shape)

    def __getitem__(self, key) -> np.ndarray:
        return np.asarray(self.dataobj[key], dtype=np.float32)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self.dataobj, dtype=dtype or np.float32)


def nifti_slices(path: str | Path, axis: int = 2, indices: list[int] | None = None) -> np.ndarray:
    """Slices ``(n, a, b)`` float32 along ``axis`` of a NIfTI volume (all slices by default)."""
    vol = read_nifti(path)
    if vol.ndim == 2:
        return np.asarray(vol, dtype=np.float32)[None]
    if not 0 <= axis < 3:
        raise PadisError(f"slice axis {axis} must be 0, 1 or 2 for the 3D volume {path}")
    idx = range(vol.shape[axis]) if indices is None else indices
    bad = [i for i in idx if not 0 <= i < vol.shape[axis]]
    if bad:
        raise PadisError(f"slices {bad} lie outside 0..{vol.shape[axis] - 1} of {path} along axis {axis}")
    key = [slice(None)] * 3
    out = []
    for i in idx:
        key[axis] = i
        out.append(np.asarray(vol[tuple(key)], dtype=np.float32))
    return np.stack(out)


def resampled_affine(affine: np.ndarray, offset: tuple[float, float, float] = (0, 0, 0),
                     zoom: tuple[float, float, float] = (1, 1, 1)) -> np.ndarray:
    """The affine of a grid cut from (and resampled on) the voxel grid of ``affine``.

    New voxel ``n`` (per axis) sits at old voxel coordinate ``offset + (n + 0.5) * zoom - 0.5``:
    ``offset`` is the first old voxel kept (``--slices a b`` gives ``a`` along z) and ``zoom``
    the old voxels per new voxel, with pixel centres aligned as ``skimage.transform.resize``
    places them (the first new voxel's centre is the centre of the first ``zoom`` old ones).
    Every output writer goes through this, so that an output voxel lands at the world position
    of the input voxels it was computed from."""
    a = np.asarray(affine, dtype=np.float64).copy()
    zoom_v, offset_v = np.asarray(zoom, dtype=np.float64), np.asarray(offset, dtype=np.float64)
    a[:3, 3] = a[:3, 3] + a[:3, :3] @ (offset_v + (zoom_v - 1) / 2)
    a[:3, :3] = a[:3, :3] * zoom_v[None, :]
    return a


def nifti_affine(path: str | Path) -> tuple[np.ndarray, int]:
    """The voxel-to-world affine of a NIfTI file and its number of dimensions (header only)."""
    import nibabel as nib

    try:
        img = nib.load(Path(path))
        return np.asarray(img.affine, dtype=np.float64), len(img.shape)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for broken files
        raise PadisError(f"cannot read NIfTI file {path} ({type(exc).__name__}: {exc}); check the file") from exc


def slice_affine(affine: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The affine of slice ``index`` along voxel ``axis`` of a 3D NIfTI, written as a
    ``(rows, cols, 1)`` image whose rows and columns are the two other voxel axes in order (as
    :func:`nifti_slices` returns the slice): its third voxel axis is ``axis`` itself, so the
    image keeps its slice thickness and lands at the slice's world position."""
    if not 0 <= axis < 3:
        raise PadisError(f"slice axis {axis} must be 0, 1 or 2")
    rows, cols = (a for a in range(3) if a != axis)
    a = np.asarray(affine, dtype=np.float64)
    permuted = np.eye(4)
    permuted[:3, :3] = a[:3, [rows, cols, axis]]
    permuted[:3, 3] = a[:3, 3]
    return resampled_affine(permuted, (0, 0, index), (1, 1, 1))
