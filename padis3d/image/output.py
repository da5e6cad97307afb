"""A 2D result written in its input's format family, values and orientation: NIfTI (with the affine of
the input voxels it came from), PNG (8-bit, [0, 1]) or ``.npy``; atomically (no half-written file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from padis3d.atomic import atomic_path


def image_suffix(like: str) -> str:
    """The suffix of a 2D result in the input's format family: NIfTI -> .nii.gz, PNG/JPEG images (a
    file or a folder of them) -> .png, else (npy, zarr, DICOM in its units) .npy."""
    if like.endswith((".nii", ".nii.gz")):
        return ".nii.gz"
    if like.lower().endswith((".png", ".jpg", ".jpeg")):
        return ".png"
    if Path(like).is_dir() and not like.rstrip("/").endswith(".zarr"):
        from padis3d.io import IMAGE_SUFFIXES

        if any(p.suffix.lower() in IMAGE_SUFFIXES for p in Path(like).iterdir()):
            return ".png"
    return ".npy"


def save_image(path: Path, image: np.ndarray, like: str, ref: Any = None) -> Path:
    """Reconstruction in the input's format family (:func:`image_suffix`). With ``ref`` (the
    :class:`padis3d.io.reference.ReferenceSlice` it was made from), values go back to the input's
    units and orientation (the file's own voxel order), and a NIfTI gets the affine of the input
    voxels the result was computed from (else the identity)."""
    suffix = image_suffix(like)
    if ref is not None and suffix != ".png":
        image = ref.to_units(image)
    affine = None
    if ref is not None:  # back in the input's own orientation (voxel order) and geometry
        image, affine = ref.to_file(image)
    if suffix == ".nii.gz":
        import nibabel as nib

        path = path.with_suffix(".nii.gz")
        data = image.astype(np.float32)
        with atomic_path(path) as tmp:
            nib.save(nib.Nifti1Image(data if data.ndim == 3 else data[:, :, None],
                                     affine if affine is not None else np.eye(4)), tmp)
    elif suffix == ".png":
        from skimage.io import imsave

        path = path.with_suffix(".png")
        with atomic_path(path) as tmp:
            imsave(tmp, (np.clip(image, 0, 1) * 255).round().astype(np.uint8), check_contrast=False)
    else:
        path = path.with_suffix(".npy")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, image.astype(np.float32))
    return path
