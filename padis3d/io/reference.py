"""One 2D slice of an image or volume file for the 2D tasks of ``padis3d reconstruct``, with
what is needed to write the result back where and in the units it came from: the intensity
normalisation that was applied (to invert it), the NIfTI geometry of the slice (its affine on
the reconstruction grid) and the in-plane resampling.

Orientation: the slice is taken from the canonical volume (:mod:`padis3d.io.orientation`), so
the prior sees it as it saw its training slices whatever the file's voxel order; a NIfTI result
goes back in the file's own voxel order with the affine of the input voxels it came from
(:meth:`padis3d.io.canonical.CanonicalVolume.slice_to_file`).

Normalisation, chosen once here for every 2D input: ``--window`` if given; the HU window
-1000..1000 for NIfTI (as the volume tasks and the README's format table have it) and for
DICOM CT; otherwise (``.npy``, zarr, other DICOM) min-max over the whole volume, which is said
on stdout and in ``report.json`` because raw HU in a ``.npy`` then loses its absolute scale;
PNG/JPEG: min-max per image, and the result stays an 8-bit image in [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from padis3d.errors import PadisError
from padis3d.io.canonical import CanonicalVolume
from padis3d.io.orientation import reorient


@dataclass(frozen=True)
class ReferenceSlice:
    """A slice ``image`` ``(H, W)`` float32 in [0, 1] and how it was made from the file.

    ``normalisation``: what mapped the file's values to [0, 1] (``kind`` and ``window`` or
    ``range``); ``units``: ``(lo, hi)`` such that ``lo + (hi - lo) * x`` is back in the file's
    units (None for PNG/JPEG, whose results stay in [0, 1]); ``volume``, ``plane``, ``index``:
    the canonical volume it was cut from (None for PNG/JPEG), the plane and the slice number;
    ``zoom``: input pixels per pixel of ``image`` along (rows, columns)."""

    image: np.ndarray
    source: str
    fmt: str
    input_shape: tuple[int, int]
    normalisation: dict
    units: tuple[float, float] | None
    volume: CanonicalVolume | None = field(default=None, repr=False)
    plane: int = 0
    index: int = 0
    zoom: tuple[float, float] = (1.0, 1.0)
    orientation: dict = field(default_factory=dict)

    def resized(self, shape: tuple[int, int]) -> ReferenceSlice:
        """The slice resampled to ``shape`` (anti-aliased, bilinear, pixel centres aligned as
        :func:`padis3d.io.nifti.resampled_affine` assumes), with its zoom updated."""
        shape = (int(shape[0]), int(shape[1]))
        if shape == self.image.shape:
            return self
        from padis3d.io import _resize_to

        zoom = (self.input_shape[0] / shape[0], self.input_shape[1] / shape[1])
        image = np.clip(_resize_to(self.image[None, None], shape)[0, 0], 0.0, 1.0)
        return replace(self, image=image, zoom=zoom)

    def to_file(self, result: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """A result on the grid of ``image`` as the input file stores it: the array in the file's
        own voxel order (3D with one axis of length 1 for NIfTI; ``(H, W)`` as stored for npy,
        zarr and DICOM) and the NIfTI affine of the input voxels it came from (None without one)."""
        if self.volume is None:  # PNG/JPEG: back to a declared orientation, else as stored
            stored = self.orientation.get("stored", "PL")  # the bundled CT's slices are canonical (SPL)
            return (reorient(result, ("P", "L"), tuple(stored)) if len(stored) == 2 and stored != "PL"
                    else result), None
        ijk, affine = self.volume.slice_to_file(result, self.plane, self.index, self.zoom)
        if self.fmt == "nifti":
            return ijk, affine
        zyx = ijk.transpose(2, 1, 0)
        return (zyx.reshape([n for n in zyx.shape if n != 1] or [1]) if min(zyx.shape) == 1 else zyx), None

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
                "zoom": [float(z) for z in self.zoom], "orientation": self.orientation}


def read_reference_slice(path: str | Path, index: int | None = None, axis: int | None = None,
                         window: tuple[float, float] | None = None, *, orientation: str | None = None,
                         series: str | None = None) -> ReferenceSlice:
    """Slice ``index`` (default: the middle) along plane ``axis`` (0 axial, default) of any
    supported file, canonically oriented, at its own resolution, normalised to [0, 1] as the
    module docstring says. PadisError for a slice out of range or an image with more than one
    channel. ``orientation`` declares how an npy/zarr/PNG input is stored; ``series`` picks a
    DICOM series."""
    from padis3d.io import HU_WINDOW, detect_format, load_training_images

    path = Path(path)
    fmt = detect_format(path)
    volume = None
    if fmt == "images":
        images, info = load_training_images(path, size=None, axis=axis, window=window, same_size=True,
                                            orientation=orientation)
        norm, plane = dict(info["normalisation"]), 0
    else:
        from padis3d.io.canonical import read_canonical
        from padis3d.io.normalize import hu_window, min_max_range

        volume = read_canonical(path, orientation=orientation, series=series, fmt=fmt)
        if window is None and (fmt == "nifti" or volume.units == "HU"):
            window = HU_WINDOW
        stack, plane = volume.stack(axis)
        images = stack[:, None]
        norm = {"kind": "hu_window", "window": list(window)} if window else \
            {"kind": "min_max_per_volume", "range": list(min_max_range(stack, str(path)))}
        info = {"orientation": {"stored": "".join(volume.stored), "from": volume.source_of_orientation,
                                "canonical": "SPL", "plane": ("axial", "coronal", "sagittal")[plane]}}
    k = len(images) // 2 if index is None else int(index)
    if not 0 <= k < len(images):
        raise PadisError(f"--slice {k} is outside 0..{len(images) - 1} of {path}")
    if images.shape[1] != 1:
        raise PadisError(f"{path} has {images.shape[1]} channels; the CT/grey-level tasks need one")
    if norm["kind"] == "hu_window":
        units: tuple[float, float] | None = (float(norm["window"][0]), float(norm["window"][1]))
    elif norm["kind"] == "min_max_per_volume":
        units = (float(norm["range"][0]), float(norm["range"][1]))
    else:
        units = None
    image = np.ascontiguousarray(images[k, 0])
    if volume is not None:
        image = hu_window(image, window, str(path)) if window else \
            np.clip((image - units[0]) / (units[1] - units[0]), 0, 1).astype(np.float32)
    return ReferenceSlice(image, f"{path} slice {k}", fmt, tuple(image.shape), norm, units, volume, plane, k,
                          orientation=info["orientation"])
