"""NIfTI volumes (``.nii`` memory-mapped, ``.nii.gz`` decompressed) via nibabel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from padis3d.errors import PadisError
from padis3d.io.nifti_size import check_nifti_size
from padis3d.io.normalize import require_nonempty


def read_nifti_image(path: str | Path):
    """The nibabel image of a 2D or 3D NIfTI file (header read, voxels not yet): every reader of
    NIfTI files goes through here, so a missing, broken or mis-sized file fails in one place."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise PadisError(f"NIfTI file {path} does not exist")
    try:
        img = nib.load(path, mmap=True)
        _ = img.shape
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for broken files
        raise PadisError(f"cannot read NIfTI file {path} ({type(exc).__name__}: {exc}); check the file") from exc
    if len(img.shape) not in (2, 3):
        raise PadisError(f"NIfTI file {path} has shape {img.shape}: expected a 2D image or a 3D volume")
    require_nonempty(img.shape, f"NIfTI file {path}")
    check_nifti_size(path, img)  # before any voxel is read: a truncated or lying header is one line
    return img


def read_nifti(path: str | Path) -> np.ndarray:
    """The voxel array (scaled by the header's slope/intercept) in the file's axis order.

    An uncompressed ``.nii`` stays memory-mapped (only the slices used are read)."""
    path = Path(path)
    img = read_nifti_image(path)
    try:
        data = img.dataobj if path.suffix == ".nii" else np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for broken files
        raise PadisError(f"cannot read NIfTI file {path} ({type(exc).__name__}: {exc}); check the file") from exc
    return data if isinstance(data, np.ndarray) else _LazySlicer(data)


class _LazySlicer:
    """Array-like over a memory-mapped nibabel ``dataobj``: slicing reads only what is asked."""

    def __init__(self, dataobj):
        self.dataobj, self.shape, self.ndim = dataobj, tuple(dataobj.shape), len(dataobj.shape)

    def __getitem__(self, key) -> np.ndarray:
        return np.asarray(self.dataobj[key], dtype=np.float32)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self.dataobj, dtype=dtype or np.float32)


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
