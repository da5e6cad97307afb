"""Readers for training data: NIfTI, zarr, DICOM, PNG/JPEG folders and ``.npy``, plus
normalisation to [0, 1] and resizing into the ``(n, C, size, size)`` stacks training uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from padis3d.errors import PadisError
from padis3d.io.dicom import read_dicom
from padis3d.io.images import IMAGE_SUFFIXES, read_image_folder, read_npy
from padis3d.io.nifti import nifti_slices, read_nifti
from padis3d.io.normalize import HU_WINDOW, hu_window, min_max, min_max_range, require_finite, require_nonempty
from padis3d.io.zarr_io import read_zarr, zarr_slices

__all__ = ["load_training_images", "read_nifti", "nifti_slices", "read_zarr", "zarr_slices", "read_dicom",
           "read_image_folder", "read_npy", "hu_window", "min_max", "HU_WINDOW", "detect_format", "require_finite",
           "require_nonempty"]


def detect_format(path: str | Path) -> str:
    """'nifti', 'zarr', 'dicom', 'images' or 'npy' from the name or the folder's contents."""
    path = Path(path)
    name = path.name.lower()
    if not path.exists():
        raise PadisError(f"data path {path} does not exist")
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith(".zarr") or (path.is_dir() and any((path / f).exists() for f in ("zarr.json", ".zarray", ".zgroup"))):
        return "zarr"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith(".dcm"):
        return "dicom"
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return "images"
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
        if not files:
            raise PadisError(f"data folder {path} is empty")
        if any(p.suffix.lower() in IMAGE_SUFFIXES for p in files):
            return "images"
        if any(p.suffix.lower() in (".dcm", "") for p in files):
            return "dicom"
    raise PadisError(f"cannot tell the format of {path}: use .nii/.nii.gz, .zarr, .npy, a .dcm file or DICOM "
                     f"folder, or a folder of PNG/JPEG images")


def _resize(stack: np.ndarray, size: int | None) -> np.ndarray:
    """``(n, C, H, W)`` -> ``(n, C, size, size)`` with anti-aliasing (no-op for ``size=None``)."""
    if size is None:
        return stack
    return _resize_to(stack, (size, size))


def _resize_to(stack: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(n, C, H, W)`` -> ``(n, C, *shape)``: anti-aliased bilinear (skimage), pixel centres aligned."""
    if stack.shape[-2:] == tuple(shape):
        return stack
    from skimage.transform import resize

    return resize(stack, stack.shape[:2] + tuple(shape), anti_aliasing=True, preserve_range=True,
                  order=1).astype(np.float32)


def load_training_images(path: str | Path, size: int | None = 128, axis: int | None = None,
                         window: tuple[float, float] | None = None, *,
                         same_size: bool = False) -> tuple[np.ndarray, dict]:
    """Images ``(n, C, size, size)`` float32 in [0, 1] from any supported source, and a description.

    Volumes are sliced along ``axis`` (default: 2 for NIfTI, whose third axis is usually axial;
    0 otherwise, i.e. a ``(n, H, W)`` stack). Normalisation: ``window`` (HU) if given; NIfTI and DICOM CT
    default to the HU window [-1000, 1000], as ``padis3d reconstruct`` reads them (so a prior trained on
    a NIfTI sees the intensities it will be used on); otherwise min-max over each volume (its ``[min, max]`` is the
    info's ``normalisation["range"]``, so the map can be inverted) or each image file. NaN or
    infinite values are an error whatever the normalisation. A folder of images of different sizes is
    resized to ``size``, unless ``same_size`` (the folder is one series, as ``padis3d reconstruct``
    reads it), which makes mixed sizes an error.
    """
    path = Path(path)
    if size is not None and size < 1:
        raise PadisError(f"image size must be >= 1 pixel, got {size}")
    fmt = detect_format(path)
    axis = (2 if fmt == "nifti" else 0) if axis is None else axis
    if fmt == "images":
        items = read_image_folder(path)
        sizes = {img.shape[:2] for _, img in items}
        if len(sizes) > 1 and (size is None or same_size):
            first = {img.shape[:2]: f.name for f, img in reversed(items)}
            example = ", ".join(f"{name} is {h}x{w}" for (h, w), name in sorted(first.items())[:3])
            raise PadisError(f"images in {path} have different sizes ({example})"
                             + (": one series needs one image size; resize them to one size first" if same_size
                                else ": pass a size to resize them"))
        norm = [hu_window(img, window, str(f)) if window else min_max(img, str(f)) for f, img in items]
        stack = [_resize((n[None, None] if n.ndim == 2 else n.transpose(2, 0, 1)[None]), size) for n in norm]
        out = np.concatenate(stack)
        kind = {"kind": "hu_window", "window": list(window)} if window else {"kind": "min_max_per_image"}
    else:
        if fmt == "nifti":
            vol = nifti_slices(path, axis)
            window = window or HU_WINDOW
        elif fmt == "zarr":
            vol = zarr_slices(path, axis)
        elif fmt == "npy":
            arr = np.asarray(read_npy(path), dtype=np.float32)
            vol = arr[None] if arr.ndim == 2 else np.moveaxis(arr, axis, 0)
        else:
            vol, units = read_dicom(path, with_units=True)
            window = window or (HU_WINDOW if units == "HU" else None)
        if window:
            vol, kind = hu_window(vol, window, str(path)), {"kind": "hu_window", "window": list(window)}
        else:
            lo, hi = min_max_range(vol, str(path))
            vol, kind = (np.asarray(vol, np.float32) - lo) / (hi - lo), {"kind": "min_max_per_volume",
                                                                         "range": [lo, hi]}
        out = _resize(np.ascontiguousarray(vol)[:, None], size)
    out = np.clip(out, 0.0, 1.0).astype(np.float32)
    return out, {"source": str(path), "format": fmt, "axis": axis, "slices": list(range(out.shape[0])),
                 "size": size, "normalisation": kind}
