"""Volumes read and written band by band along the axial axis, so that a volume larger than
RAM is never whole in memory. Arrays are ``(z, y, x)`` float32 in the file's units and in the
canonical orientation (:mod:`padis3d.io.orientation`: axial slices inferior -> superior,
anterior at the top, the patient's left on the right), as in :mod:`padis3d.io.volume_file`.
A file stored otherwise (a NIfTI's ``(k, j, i)`` per its affine, a DICOM series per its
ImageOrientationPatient, npy/zarr as declared) is flipped and transposed band by band on
reading and back on writing (:class:`padis3d.io.orientation.SliceOrientation`): its slice axis
must be axial, since a band of slices is read from the file's own slice axis.

Why hand-written: nibabel reads any slab of a NIfTI through its array proxy (used here, with
the file kept open so that consecutive slabs of a ``.nii.gz`` are one forward pass through
the gzip stream), but it writes an image only from a whole in-memory array. The NIfTI writer
here emits the header nibabel itself would write (``Nifti1Image.update_header`` then
``header.write_to``, checked byte for byte in ``tests/volume/test_volume_stream.py``) and
then the voxels band by band: NIfTI data are Fortran-ordered, so a C-ordered band of axial
slices ``(z, y, x)`` is exactly the next block of the file. A ``.nii.gz`` is compressed on
the fly (gzip level 1, nibabel's default). ``.npy`` is read and written with plain file
reads/writes after its ``numpy.lib.format`` header, not through ``np.memmap``: every page a
memory map touches counts in the process's resident memory, so a memory-mapped pass over a
large file would look (and, under pressure, behave) like loading it.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from padis3d.atomic import atomic_path
from padis3d.errors import PadisError
from padis3d.io.normalize import require_finite
from padis3d.io.orientation import CANONICAL, SliceOrientation, nifti_codes, parse_codes

Reader = Callable[[int, int], np.ndarray]


@dataclass
class VolumeSource:
    """A lazily read volume of ``shape = (z, y, x)`` (canonical); ``read(z0, z1)`` returns axial
    slices. ``orientation`` maps the file's stored ``(z, y, x)`` (of ``stored_shape``) to it."""

    source: Path
    kind: str  # nifti | zarr | dicom | npy
    shape: tuple[int, int, int]
    affine: np.ndarray | None = None
    header: Any = None
    _reader: Reader | None = field(default=None, repr=False)
    orientation: SliceOrientation = field(default_factory=lambda: SliceOrientation(CANONICAL))
    stored_shape: tuple[int, int, int] | None = None
    stored_codes: tuple[str, ...] | None = None
    orientation_from: str = "as stored"

    @property
    def compressed(self) -> bool:
        return self.source.name.lower().endswith(".gz")

    def read(self, z0: int, z1: int) -> np.ndarray:
        """Slices ``[z0, z1)`` as float32 ``(z1 - z0, y, x)``; NaN or Inf is a :class:`PadisError`."""
        if not 0 <= z0 <= z1 <= self.shape[0]:
            raise PadisError(f"slices [{z0}, {z1}) are outside 0..{self.shape[0]} of {self.source}")
        band = np.ascontiguousarray(self._reader(z0, z1), dtype=np.float32)
        require_finite(band, str(self.source))
        return band

    def min_max(self, rows: int) -> tuple[float, float]:
        """Smallest and largest voxel, one band of ``rows`` slices at a time."""
        lo, hi = np.inf, -np.inf
        for z0 in range(0, self.shape[0], rows):
            band = self.read(z0, min(z0 + rows, self.shape[0]))
            lo, hi = min(lo, float(band.min())), max(hi, float(band.max()))
        return lo, hi


def _three_d(path: Path, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise PadisError(f"{path} holds an array of shape {tuple(shape)}; a volume task needs a 3D volume "
                         f"(for a 2D image use a 2D task: ct, ct-fan, deblur, sr)")
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def _open_nifti(path: Path) -> VolumeSource:
    import nibabel as nib

    try:  # no memory map (see the module docstring); one open file for sequential slabs
        img = nib.load(path, mmap=False, keep_file_open=True)
        shape = tuple(img.shape)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for broken files
        raise PadisError(f"cannot read NIfTI file {path} ({type(exc).__name__}: {exc})") from exc
    from padis3d.io.nifti_size import check_nifti_size

    check_nifti_size(path, img)  # before any band is read or allocated
    nx, ny, nz = _three_d(path, shape)
    proxy = img.dataobj

    def read(z0: int, z1: int) -> np.ndarray:
        try:
            slab = np.asarray(proxy[:, :, z0:z1], dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - a truncated file fails only when its data are read
            raise PadisError(f"cannot read NIfTI file {path}: slices {z0}..{z1 - 1} are unreadable "
                             f"({type(exc).__name__}: {exc})") from exc
        return slab.transpose(2, 1, 0)

    return VolumeSource(path, "nifti", (nz, ny, nx), img.affine, img.header, read)


def _open_npy(path: Path) -> VolumeSource:
    from padis3d.io import read_npy

    mm = read_npy(path)  # validates; only its header page is touched
    shape = _three_d(path, mm.shape)
    dtype, offset, fortran = mm.dtype, int(mm.offset), not mm.flags.c_contiguous
    del mm
    row = int(np.prod(shape[1:]))

    def read(z0: int, z1: int) -> np.ndarray:
        if fortran:  # rare: a band is not contiguous in the file; slice a fresh memory map
            return np.array(np.load(path, mmap_mode="r")[z0:z1])
        with open(path, "rb") as f:
            f.seek(offset + z0 * row * dtype.itemsize)
            flat = np.fromfile(f, dtype=dtype, count=(z1 - z0) * row)
        if flat.size != (z1 - z0) * row:
            raise PadisError(f"{path} is truncated: slices {z0}..{z1} are missing")
        return flat.reshape(z1 - z0, *shape[1:])

    return VolumeSource(path, "npy", shape, _reader=read)


def _open_zarr(path: Path) -> VolumeSource:
    from padis3d.io import read_zarr

    arr = read_zarr(path)
    return VolumeSource(path, "zarr", _three_d(path, arr.shape), _reader=lambda z0, z1: arr[z0:z1])


def _open_dicom(path: Path, series: str | None = None) -> VolumeSource:
    """A DICOM series, sorted along its slice normal from the headers; pixels are read per band."""
    import pydicom

    from padis3d.io.dicom import find_series, read_dicom_file

    found = find_series(path, series)
    shapes = set()
    for f in found.files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        shapes.add((int(ds.Rows), int(ds.Columns)))
    if len(shapes) > 1:
        raise PadisError(f"DICOM series {path} mixes slice shapes {sorted(shapes)}: keep one series per folder")
    ordered = found.files
    (rows, cols), = shapes
    return VolumeSource(path, "dicom", (len(ordered), rows, cols),
                        _reader=lambda z0, z1: np.stack([read_dicom_file(f)[0] for f in ordered[z0:z1]]),
                        stored_codes=found.orientation)


def open_volume(path: str | Path, *, orientation: str | None = None, series: str | None = None) -> VolumeSource:
    """A lazily read 3D volume from NIfTI, zarr, a DICOM series (HU) or ``.npy``, whose bands come
    out in the canonical ``(z, y, x)`` orientation (see the module docstring). ``orientation``
    declares how an npy/zarr array is stored (default: canonical); ``series`` picks a DICOM series."""
    from dataclasses import replace

    from padis3d.io import detect_format

    path = Path(path)
    kind = detect_format(path)
    openers = {"nifti": _open_nifti, "npy": _open_npy, "zarr": _open_zarr, "dicom": _open_dicom}
    if kind not in openers:
        raise PadisError(f"{path} is a folder of 2D images; a volume task needs NIfTI, zarr, DICOM or .npy")
    if series is not None and kind != "dicom":
        raise PadisError(f"--series picks a DICOM series; {path} is {kind}")
    stored = openers[kind](path, series) if kind == "dicom" else openers[kind](path)
    if kind == "nifti":
        codes, how = nifti_codes(stored.affine), "affine"
    elif kind == "dicom":
        codes, how = stored.stored_codes, "dicom"
    else:
        codes = parse_codes(orientation, 3) if orientation is not None else CANONICAL
        how = "declared" if orientation is not None else "as stored"
    if orientation is not None and kind in ("nifti", "dicom") and parse_codes(orientation, 3) != tuple(codes):
        raise PadisError(f"--orientation {orientation} contradicts {path}'s own geometry ({''.join(codes)} from its "
                         f"{'affine' if kind == 'nifti' else 'headers'}); leave --orientation out for NIfTI and DICOM")
    oriented = SliceOrientation(tuple(codes))
    nz = stored.shape[0]
    read_stored = stored._reader

    def read(z0: int, z1: int) -> np.ndarray:
        a, b = oriented.stored_range(z0, z1, nz)
        return oriented.to_canonical(np.asarray(read_stored(a, b)))

    return replace(stored, shape=oriented.canonical_shape(stored.shape), _reader=read, orientation=oriented,
                   stored_shape=stored.shape, stored_codes=tuple(codes), orientation_from=how)


# -- writing ------------------------------------------------------------------------------------
def nifti_header_like(like: VolumeSource, shape_zyx: tuple[int, int, int], zoom_yx: float = 1.0,
                      z_offset: int = 0) -> Any:
    """The float32 NIfTI header nibabel would write for a ``(z, y, x)`` volume cut from ``like``
    at its stored slice ``z_offset`` (``shape_zyx`` and ``z_offset`` in the file's own order) and resized in-plane by ``zoom_yx``
    input voxels per output voxel (affine from :func:`padis3d.io.nifti.resampled_affine`: voxel
    axes scaled, origin moved to the centre of the first output voxel; zooms scaled)."""
    import nibabel as nib

    from padis3d.io.nifti import resampled_affine

    affine = resampled_affine(like.affine, (0, 0, z_offset), (zoom_yx, zoom_yx, 1))
    header = like.header.copy()
    header.set_data_dtype(np.float32)
    # A zero-stride stand-in: the image only reads the shape and dtype of its data here.
    stand_in = np.broadcast_to(np.float32(0), tuple(reversed(shape_zyx)))
    img = nib.Nifti1Image(stand_in, affine, header)
    zooms = like.header.get_zooms()
    img.header.set_zooms((zooms[0] * zoom_yx, zooms[1] * zoom_yx, zooms[2]))
    img.update_header()
    hdr = img.header
    slope = hdr["scl_slope"].item() if hdr.has_data_slope else np.nan
    inter = hdr["scl_inter"].item() if hdr.has_data_intercept else np.nan
    if np.all(np.isnan((slope, inter))):  # as nibabel's writer: float32 data need no scaling
        hdr.set_slope_inter(1.0, 0.0)
    return hdr


def volume_suffix(like: VolumeSource) -> str:
    """The suffix of a volume written like ``like`` (:func:`write_volume_bands`)."""
    if like.kind == "nifti":
        return ".nii.gz" if like.compressed else ".nii"
    return ".npy"


def write_volume_bands(path: str | Path, like: VolumeSource, shape_zyx: tuple[int, int, int], band: Reader,
                       rows: int, zoom_yx: float = 1.0, z_offset: int = 0) -> Path:
    """Write the canonical ``(z, y, x)`` volume whose slices ``[z0, z1)`` are ``band(z0, z1)``
    atomically, ``rows`` slices at a time, back in ``like``'s own orientation and format family: NIfTI (``.nii.gz`` if ``like`` was
    compressed, else ``.nii``) with its header and its affine moved to the output's grid (first
    slice ``z_offset`` of ``like``, ``zoom_yx`` input voxels per output voxel in-plane), otherwise
    ``.npy``. Returns the path."""
    path = Path(path)
    nz, oriented = shape_zyx[0], like.orientation
    stored_shape = oriented.stored_shape_of(shape_zyx)
    if oriented.flip_z:  # the cut's first stored slice
        z_offset = like.shape[0] - (z_offset + nz)

    def stored_band(a: int, b: int) -> np.ndarray:  # stored slices [a, b) of the output
        c0, c1 = oriented.stored_range(a, b, nz)
        return oriented.to_stored(_checked(band, c0, c1, shape_zyx))

    if like.kind == "nifti":
        path = path.with_name(path.name.split(".")[0] + volume_suffix(like))
        hdr = nifti_header_like(like, stored_shape, zoom_yx, z_offset)
        dtype = hdr.get_data_dtype()
        with atomic_path(path) as tmp:
            with (gzip.open(tmp, "wb", compresslevel=1) if like.compressed else open(tmp, "wb")) as f:
                hdr.write_to(f)
                f.write(b"\0" * (int(hdr.get_data_offset()) - f.tell()))
                for z0 in range(0, nz, rows):
                    f.write(stored_band(z0, min(z0 + rows, nz)).astype(dtype, copy=False).tobytes())
        return path
    path = path.with_suffix(volume_suffix(like))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
                                                 "fortran_order": False, "shape": tuple(stored_shape)})
        for z0 in range(0, nz, rows):
            f.write(stored_band(z0, min(z0 + rows, nz)).astype("<f4", copy=False).tobytes())
    return path


def _checked(band: Reader, z0: int, z1: int, shape_zyx: tuple[int, int, int]) -> np.ndarray:
    out = np.ascontiguousarray(band(z0, z1))
    if out.shape != (z1 - z0, *shape_zyx[1:]):
        raise PadisError(f"band {z0}..{z1} has shape {out.shape}, expected {(z1 - z0, *shape_zyx[1:])}")
    return out
