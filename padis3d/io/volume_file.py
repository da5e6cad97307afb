"""Whole volumes in and out, keeping what a clinical user needs back: the NIfTI affine and
header. Arrays are ``(z, y, x)`` float32 in the file's units; a NIfTI's ``(i, j, k)`` voxel
axes map to ``(k, j, i)`` here and back on writing, so nothing is resampled or flipped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from padis3d.atomic import atomic_path
from padis3d.errors import PadisError


@dataclass
class VolumeFile:
    data: np.ndarray  # (z, y, x)
    source: Path
    kind: str  # nifti | zarr | dicom | npy
    affine: np.ndarray | None = None
    header: Any = None
    units: str = "file"  # "HU" for CT DICOM, "raw" for other DICOM modalities, else the file's own


def read_volume(path: str | Path) -> VolumeFile:
    """A 3D volume from NIfTI, zarr, a DICOM series (HU) or ``.npy`` (``(z, y, x)``)."""
    from padis3d.io import detect_format, read_dicom, read_npy, read_zarr, require_finite, require_nonempty

    path = Path(path)
    kind = detect_format(path)
    affine = header = None
    units = "file"
    if kind == "nifti":
        import nibabel as nib

        try:
            img = nib.load(path)
            data = np.asarray(img.dataobj, dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - nibabel raises many types for broken files
            raise PadisError(f"cannot read NIfTI file {path} ({type(exc).__name__}: {exc})") from exc
        affine, header = img.affine, img.header
        if data.ndim == 3:
            data = data.transpose(2, 1, 0)
    elif kind == "zarr":
        data = np.asarray(read_zarr(path), dtype=np.float32)
    elif kind == "dicom":
        data, units = read_dicom(path, with_units=True)
    elif kind == "npy":
        data = read_npy(path).astype(np.float32)
    else:
        raise PadisError(f"{path} is a folder of 2D images; a volume task needs NIfTI, zarr, DICOM or .npy")
    if data.ndim != 3:
        raise PadisError(f"{path} holds an array of shape {data.shape}; a volume task needs a 3D volume "
                         f"(for a 2D image use a 2D task: ct, ct-fan, deblur, sr)")
    require_nonempty(data.shape, str(path))
    require_finite(data, str(path))
    return VolumeFile(np.ascontiguousarray(data), path, kind, affine, header, units)


def write_volume_like(path: str | Path, data: np.ndarray, like: VolumeFile, zoom_yx: float = 1.0) -> Path:
    """Write ``data`` ``(z, y, x)`` atomically in ``like``'s format family: NIfTI with its affine
    and header (in-plane voxel size scaled by ``zoom_yx`` if the volume was resized), else ``.npy``."""
    path = Path(path)
    if like.kind == "nifti":
        import nibabel as nib

        path = path.with_name(path.name.split(".")[0] + ".nii.gz")
        affine = like.affine.copy()
        affine[:3, 3] += affine[:3, :2] @ np.full(2, (zoom_yx - 1) / 2)  # centre of the first new voxel
        affine[:3, :2] *= zoom_yx
        header = like.header.copy()
        header.set_data_dtype(np.float32)
        img = nib.Nifti1Image(np.ascontiguousarray(data.transpose(2, 1, 0), dtype=np.float32), affine, header)
        img.header.set_zooms((*[z * zoom_yx for z in like.header.get_zooms()[:2]], like.header.get_zooms()[2]))
        with atomic_path(path) as tmp:
            nib.save(img, tmp)
    else:
        path = path.with_suffix(".npy")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, data.astype(np.float32))
    return path
