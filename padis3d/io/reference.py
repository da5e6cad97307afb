"""One 2D slice of an image or volume file for the 2D tasks of ``padis3d reconstruct``, with
what is needed to write the result back where and in the units it came from: the intensity
normalisation that was applied (to invert it), the NIfTI geometry of the slice (its affine on
the reconstruction grid) and the in-plane resampling.

Normalisation, chosen once here for every 2D input: ``--window`` if given; the HU window
-1000..1000 for NIfTI (as the volume tasks and the README's format table have it) and for
DICOM CT; otherwise (``.npy``, zarr, other DICOM) min-max over the whole volume, which is said
on stdout and in ``report.json`` because raw HU in a ``.npy`` then loses its absolute scale;
PNG/JPEG: min-max per image, and the result stays an 8-bit image in [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from padis3d.errors import PadisError


@dataclass(frozen=True)
class ReferenceSlice:
    """A slice ``image`` ``(H, W)`` float32 in [0, 1] and how it was made from the file.

    ``normalisation``: what mapped the file's values to [0, 1] (``kind`` and ``window`` or
    ``range``); ``units``: ``(lo, hi)`` such that ``lo + (hi - lo) * x`` is back in the file's
    units (None for PNG/JPEG, whose results stay in [0, 1]); ``affine``: the slice's NIfTI
    affine on the grid of ``image`` (None for other formats); ``zoom``: input pixels per pixel
    of ``image`` along (rows, columns)."""

    image: np.ndarray
    source: str
    fmt: str
    input_shape: tuple[int, int]
    normalisation: dict
    units: tuple[float, float] | None
    affine: np.ndarray | None
    zoom: tuple[float, float] = (1.0, 1.0)

    def resized(self, shape: tuple[int, int]) -> ReferenceSlice:
        """The slice resampled to ``shape`` (anti-aliased, bilinear, pixel centres aligned as
        :func:`padis3d.io.nifti.resampled_affine` assumes), with its affine and zoom updated."""
        shape = (int(shape[0]), int(shape[1]))
        if shape == self.image.shape:
            return self
        from padis3d.io import _resize_to

        zoom = (self.input_shape[0] / shape[0], self.input_shape[1] / shape[1])
        affine = None
        if self.affine is not None:
            from padis3d.io.nifti import resampled_affine

            step = (zoom[0] / self.zoom[0], zoom[1] / self.zoom[1], 1.0)
            affine = resampled_affine(self.affine, (0, 0, 0), step)
        image = np.clip(_resize_to(self.image[None, None], shape)[0, 0], 0.0, 1.0)
        return replace(self, image=image, affine=affine, zoom=zoom)

    def to_units(self, x: np.ndarray) -> np.ndarray:
        """A result in [0, 1] (clipped) back in the input's units, float32; unchanged if it has none."""
        x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
        if self.units is None:
            return x
        lo, hi = self.units
        return (lo + (hi - lo) * x).astype(np.float32)

    def describe(self) -> str:
        """One line for stdout: the intensity map that was applied and how the output is scaled."""
        n = self.normalisation
        if n["kind"] == "hu_window":
            what = f"HU window [{n['window'][0]:g}, {n['window'][1]:g}] mapped to [0, 1]"
        elif n["kind"] == "min_max_per_volume":
            what = (f"min-max: the input's range [{n['range'][0]:g}, {n['range'][1]:g}] mapped to [0, 1] "
                    f"(no --window given; pass --window LO HI for CT in HU)")
        else:
            what = "min-max per image mapped to [0, 1]"
        back = "output mapped back to the input's units" if self.units is not None else "output in [0, 1]"
        return f"intensity: {what}; {back}"

    def report(self) -> dict:
        """The ``report.json`` entry: normalisation, output units, shapes and zoom."""
        return {**self.normalisation,
                "output_units": "input" if self.units is not None else "[0, 1]",
                "input_shape": list(self.input_shape), "shape": list(self.image.shape),
                "zoom": [float(z) for z in self.zoom]}


def read_reference_slice(path: str | Path, index: int | None = None, axis: int | None = None,
                         window: tuple[float, float] | None = None) -> ReferenceSlice:
    """Slice ``index`` (default: the middle) along ``axis`` of any supported file, at its own
    resolution, normalised to [0, 1] as the module docstring says. PadisError for a slice out of
    range or an image with more than one channel."""
    from padis3d.io import HU_WINDOW, detect_format, load_training_images

    path = Path(path)
    fmt = detect_format(path)
    if window is None and fmt == "nifti":
        window = HU_WINDOW
    images, info = load_training_images(path, size=None, axis=axis, window=window, same_size=True)
    k = len(images) // 2 if index is None else int(index)
    if not 0 <= k < len(images):
        raise PadisError(f"--slice {k} is outside 0..{len(images) - 1} of {path}")
    if images.shape[1] != 1:
        raise PadisError(f"{path} has {images.shape[1]} channels; the CT/grey-level tasks need one")
    norm = dict(info["normalisation"])
    if norm["kind"] == "hu_window":
        units: tuple[float, float] | None = (float(norm["window"][0]), float(norm["window"][1]))
    elif norm["kind"] == "min_max_per_volume":
        units = (float(norm["range"][0]), float(norm["range"][1]))
    else:
        units = None
    affine = None
    if fmt == "nifti":
        from padis3d.io.nifti import nifti_affine, slice_affine

        volume_affine, ndim = nifti_affine(path)
        affine = slice_affine(volume_affine, info["axis"] if ndim == 3 else 2, k if ndim == 3 else 0)
    image = np.ascontiguousarray(images[k, 0])
    return ReferenceSlice(image, f"{path} slice {k}", fmt, tuple(image.shape), norm, units, affine)
