"""Folders of PNG/JPEG images (scikit-image) and ``.npy`` arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from padis3d.errors import PadisError
from padis3d.io.normalize import require_nonempty

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_image_file(path: str | Path) -> np.ndarray:
    """One image as float32 ``(H, W)`` (gray) or ``(H, W, 3)`` (RGB; alpha dropped)."""
    from skimage.io import imread

    path = Path(path)
    try:
        img = np.asarray(imread(path), dtype=np.float32)
    except Exception as exc:  # noqa: BLE001
        raise PadisError(f"cannot read image {path} ({type(exc).__name__}: {exc})") from exc
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[-1] == 3)):
        raise PadisError(f"image {path} has shape {img.shape}: expected gray (H, W) or RGB (H, W, 3)")
    return img


def read_image_folder(path: str | Path) -> list[tuple[Path, np.ndarray]]:
    """All PNG/JPEG images of a folder (sorted by name) with their paths; all gray or all RGB.
    A single PNG/JPEG file gives a list of one."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return [(path, read_image_file(path))]
    if not path.is_dir():
        raise PadisError(f"image folder {path} does not exist")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise PadisError(f"image folder {path} has no PNG/JPEG files")
    out = [(f, read_image_file(f)) for f in files]
    kinds = {img.ndim for _, img in out}
    if len(kinds) > 1:
        raise PadisError(f"image folder {path} mixes gray and RGB images: convert them to one kind")
    return out


def read_npy(path: str | Path) -> np.ndarray:
    """A ``.npy`` array (memory-mapped) of 2 or 3 dimensions."""
    path = Path(path)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise PadisError(f"cannot read {path} as .npy ({type(exc).__name__}: {exc})") from exc
    if not isinstance(arr, np.ndarray):  # np.load opens a zip (.npz) whatever its suffix
        raise PadisError(f"{path} is not a .npy array (an .npz or other archive); save one array with numpy.save")
    if arr.ndim not in (2, 3):
        raise PadisError(f"{path} has shape {arr.shape}: expected a 2D image or a 3D stack/volume")
    require_nonempty(arr.shape, str(path))
    return arr
