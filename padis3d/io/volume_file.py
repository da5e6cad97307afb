"""Whole volumes in and out, keeping what a clinical user needs back: the orientation, the NIfTI
affine and header. In memory, arrays are ``(z, y, x)`` float32 in the canonical orientation
(:mod:`padis3d.io.orientation`) and the file's units; on writing they go back to the file's own
voxel order, so nothing is resampled and the output overlays the input."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from padis3d.atomic import atomic_path
from padis3d.errors import PadisError
from padis3d.io.canonical import CanonicalVolume, read_canonical
from padis3d.io.orientation import CANONICAL, reorient


def read_volume(path: str | Path, *, orientation: str | None = None, series: str | None = None) -> CanonicalVolume:
    """A 3D volume from NIfTI, zarr, a DICOM series (HU) or ``.npy``, canonically oriented
    (:func:`padis3d.io.canonical.read_canonical`); PadisError for a 2D image or NaN/Inf voxels."""
    from padis3d.io import detect_format, require_finite

    path = Path(path)
    if detect_format(path) == "images":
        raise PadisError(f"{path} is a folder of 2D images; a volume task needs NIfTI, zarr, DICOM or .npy")
    vol = read_canonical(path, orientation=orientation, series=series)
    if vol.is_image:
        raise PadisError(f"{path} holds a 2D image of shape {vol.stored_shape[1:]}; a volume task needs a 3D volume "
                         f"(for a 2D image use a 2D task: ct, ct-fan, deblur, sr)")
    require_finite(vol.data, str(path))
    return vol


def write_volume_like(path: str | Path, data: np.ndarray, like: CanonicalVolume) -> Path:
    """Write the canonical ``(z, y, x)`` volume ``data`` (``like``'s shape) atomically in ``like``'s
    format family and voxel order: NIfTI with its affine and header, else ``.npy``."""
    path = Path(path)
    data = np.asarray(data, dtype=np.float32)
    if data.shape != like.data.shape:
        raise PadisError(f"the volume to write has shape {data.shape}; {like.source} has {like.data.shape}")
    stored = reorient(data, CANONICAL, like.stored)
    if like.fmt == "nifti":
        import nibabel as nib

        path = path.with_name(path.name.split(".")[0] + ".nii.gz")
        header = like.header.copy()
        header.set_data_dtype(np.float32)
        img = nib.Nifti1Image(np.ascontiguousarray(stored.transpose(2, 1, 0)), like.affine, header)
        with atomic_path(path) as tmp:
            nib.save(img, tmp)
    else:
        path = path.with_suffix(".npy")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, stored)
    return path
