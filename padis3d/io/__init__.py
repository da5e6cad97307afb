"""Readers for training data: NIfTI, zarr, DICOM, PNG/JPEG folders and ``.npy``, plus
normalisation to [0, 1] and resizing into the ``(n, C, size, size)`` stacks training uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from padis3d.errors import PadisError
from padis3d.io.dicom import read_dicom
from padis3d.io.images import IMAGE_SUFFIXES, read_image_folder, read_npy
from padis3d.io.canonical import nifti_slices, read_canonical
from padis3d.io.nifti import read_nifti
from padis3d.io.normalize import HU_WINDOW, hu_window, min_max, min_max_range, require_finite, require_nonempty
from padis3d.io.zarr_io import read_zarr, zarr_slices

__all__ = ["load_training_images", "read_canonical", "read_nifti", "nifti_slices", "read_zarr", "zarr_slices", "read_dicom",
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
                         same_size: bool = False, orientation: str | None = None,
                         series: str | None = None) -> tuple[np.ndarray, dict]:
    """Images ``(n, C, size, size)`` float32 in [0, 1] from any supported source, and a description.

    Every image is in the canonical orientation (:mod:`padis3d.io.orientation`), the one the
    shipped priors learned: NIfTI and DICOM from their geometry, npy/zarr/PNG as stored unless
    ``orientation`` declares how they are stored (e.g. ``"SAL"`` for a volume, ``"AL"`` for
    images). Volumes are sliced along plane ``axis`` (0 axial, default; 1 coronal; 2 sagittal),
    each slice in its plane's display orientation; ``series`` picks one DICOM series of a folder
    that holds several. Normalisation: ``window`` (HU) if given; NIfTI and DICOM CT default to
    the HU window [-1000, 1000], as ``padis3d reconstruct`` reads them (so a prior trained on
    a NIfTI sees the intensities it will be used on); otherwise min-max over each volume (its
    ``[min, max]`` is the info's ``normalisation["range"]``, so the map can be inverted) or each
    image file. NaN or infinite values are an error whatever the normalisation. A folder of
    images of different sizes is resized to ``size``, unless ``same_size`` (the folder is one
    series, as ``padis3d reconstruct`` reads it), which makes mixed sizes an error. The info's
    ``orientation`` says how the file was stored, where that came from, and the plane.
    """
    from padis3d.io.orientation import CANONICAL, PLANES, add_slice_axis, describe, parse_codes, reorient

    path = Path(path)
    if size is not None and size < 1:
        raise PadisError(f"image size must be >= 1 pixel, got {size}")
    fmt = detect_format(path)
    if fmt == "images":
        if series is not None:
            raise PadisError(f"--series picks a DICOM series; {path} holds PNG/JPEG images")
        given = parse_codes(orientation, 2) if orientation is not None else None
        items = read_image_folder(path)
        sizes = {img.shape[:2] for _, img in items}
        if len(sizes) > 1 and (size is None or same_size):
            first = {img.shape[:2]: f.name for f, img in reversed(items)}
            example = ", ".join(f"{name} is {h}x{w}" for (h, w), name in sorted(first.items())[:3])
            raise PadisError(f"images in {path} have different sizes ({example})"
                             + (": one series needs one image size; resize them to one size first" if same_size
                                else ": pass a size to resize them"))
        norm = [hu_window(img, window, str(f)) if window else min_max(img, str(f)) for f, img in items]
        chw = [n[None] if n.ndim == 2 else n.transpose(2, 0, 1) for n in norm]
        if given is not None:
            chw = [reorient(c, add_slice_axis(given), CANONICAL) for c in chw]
        out = np.concatenate([_resize(c[None], size) for c in chw])
        kind = {"kind": "hu_window", "window": list(window)} if window else {"kind": "min_max_per_image"}
        oriented = {"stored": describe(given) if given else "PL", "from": "declared" if given else "as stored",
                    "plane": "axial"}
        plane = 0
    else:
        from padis3d.io.canonical import read_canonical

        vol = read_canonical(path, orientation=orientation, series=series, fmt=fmt)
        if window is None and (fmt == "nifti" or vol.units == "HU"):
            window = HU_WINDOW
        stack, plane = vol.stack(axis)
        if window:
            stack, kind = hu_window(stack, window, str(path)), {"kind": "hu_window", "window": list(window)}
        else:
            lo, hi = min_max_range(stack, str(path))
            stack, kind = (np.asarray(stack, np.float32) - lo) / (hi - lo), {"kind": "min_max_per_volume",
                                                                             "range": [lo, hi]}
        out = _resize(np.ascontiguousarray(stack)[:, None], size)
        oriented = {"stored": describe(vol.stored), "from": vol.source_of_orientation, "plane": PLANES[plane][0]}
    out = np.clip(out, 0.0, 1.0).astype(np.float32)
    oriented["canonical"] = describe(CANONICAL)
    return out, {"source": str(path), "format": fmt, "axis": plane, "slices": list(range(out.shape[0])),
                 "size": size, "normalisation": kind, "orientation": oriented}
