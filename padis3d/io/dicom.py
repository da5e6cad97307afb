"""DICOM files or series (pydicom): one acquisition, ordered along its slice normal, rescaled
with RescaleSlope/Intercept (the Modality LUT), with its orientation from the headers.

One acquisition per run: a folder whose files belong to several series (SeriesInstanceUID) is
refused with the list of series (UID, description, slices), unless one is chosen (``series=``,
``--series``): two series of one size would otherwise be interleaved into one volume.

Slice order and orientation: the slices are sorted by their ImagePositionPatient projected
on the slice normal (the cross product of the ImageOrientationPatient cosines), so a series
stored in any order, or acquired superior -> inferior, comes out in one order, and its
``(slice, row, column)`` axes get patient directions (:mod:`padis3d.io.orientation`: DICOM's
LPS ``+x`` is the patient's left, ``+y`` posterior, ``+z`` superior). Without
ImageOrientationPatient the stored order is kept and taken as canonical (axial, SPL).

Missing rescale tags, deliberately: the CT Image Module makes RescaleSlope and
RescaleIntercept required (type 1, DICOM PS3.3 C.8.2.1), and CT pixels are commonly stored
unsigned with an intercept of -1024, so a CT slice without them has unknown HU; guessing
1/0 would silently shift every value by ~1000 HU. Such a CT file is an error that says so.
For other modalities (MR, CR, ...) the tags are optional and their absence means the
identity Modality LUT (slope 1, intercept 0, PS3.3 C.11.1): the stored values are used as
they are, reported as ``"raw"`` units (min-max normalised downstream, not HU-windowed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from padis3d.errors import PadisError
from padis3d.io.orientation import CANONICAL, Codes, direction_code

Units = Literal["HU", "raw"]


def _header(path: Path) -> Any:
    import pydicom

    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for broken files
        raise PadisError(f"cannot read DICOM file {path} ({type(exc).__name__}: {exc})") from exc


def read_dicom_file(path: str | Path) -> tuple[np.ndarray, float, Units]:
    """One DICOM slice: ``(rows, cols)`` float32 after the Modality LUT, its position along the
    slice normal (:func:`slice_position`) and its units: ``"HU"`` for CT (rescale tags
    required), ``"raw"`` for other modalities without rescale tags."""
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array.astype(np.float32)
    except Exception as exc:  # noqa: BLE001
        raise PadisError(f"cannot read DICOM file {path} ({type(exc).__name__}: {exc})") from exc
    if pixels.ndim != 2 or pixels.size == 0:
        raise PadisError(f"DICOM file {path} holds pixel data of shape {pixels.shape}: expected one 2D slice")
    modality = str(ds.get("Modality", "CT")).upper()  # no Modality: treat as CT, the safe reading
    has_rescale = "RescaleSlope" in ds and "RescaleIntercept" in ds
    if modality == "CT" and not has_rescale:
        raise PadisError(f"DICOM file {path} lacks RescaleSlope/RescaleIntercept, so HU are unknown "
                         f"(both are required for CT images); add them (e.g. slope 1, intercept -1024) or "
                         f"convert the series to NIfTI")
    slope = float(ds.get("RescaleSlope", 1.0))
    intercept = float(ds.get("RescaleIntercept", 0.0))
    return pixels * slope + intercept, slice_position(ds), "HU" if modality == "CT" else "raw"


def _cosines(ds: Any) -> tuple[np.ndarray, np.ndarray] | None:
    iop = ds.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        return None
    row, col = np.asarray(iop[:3], dtype=np.float64), np.asarray(iop[3:], dtype=np.float64)
    if not (np.isfinite(row).all() and np.isfinite(col).all()) or np.linalg.norm(np.cross(row, col)) < 1e-3:
        return None
    return row, col


def slice_position(ds: Any) -> float:
    """Where a slice lies along its normal: ImagePositionPatient projected on the cross product of
    the ImageOrientationPatient cosines (its z without them; InstanceNumber without a position)."""
    pos = ds.get("ImagePositionPatient")
    if pos is None:
        return float(ds.get("InstanceNumber", 0))
    cos = _cosines(ds)
    normal = np.cross(*cos) if cos is not None else np.array([0.0, 0.0, 1.0])
    return float(np.asarray(pos, dtype=np.float64) @ normal)


def stored_orientation(ds: Any) -> Codes:
    """The ``(slice, row, column)`` orientation of a series sorted by :func:`slice_position`:
    the normal, the column cosine (down the rows), the row cosine (along a row)."""
    cos = _cosines(ds)
    if cos is None:
        return CANONICAL
    row, col = cos
    return direction_code(np.cross(row, col)), direction_code(col), direction_code(row)


@dataclass(frozen=True)
class DicomSeries:
    """One acquisition: its files sorted along the slice normal, and what identifies it."""

    uid: str
    description: str
    files: tuple[Path, ...]
    orientation: Codes


def _files(path: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(path, (str, Path)):
        path = Path(path)
        if path.is_file():
            return [path]
        if not path.is_dir():
            raise PadisError(f"DICOM path {path} does not exist")
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise PadisError(f"DICOM folder {path} is empty")
        return files
    files = [Path(p) for p in path]
    if not files:
        raise PadisError("empty list of DICOM files")
    return files


def find_series(path: str | Path | Sequence[str | Path], series: str | None = None) -> DicomSeries:
    """The one series in ``path`` (a file, a folder or a list of files), headers only. Several
    series are refused with their list, unless ``series`` names one by UID (or a unique prefix)."""
    groups: dict[str, list[tuple[float, Path, Any]]] = {}
    for f in _files(path):
        ds = _header(f)
        groups.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((slice_position(ds), f, ds))
    where = path if isinstance(path, (str, Path)) else Path(_files(path)[0]).parent
    if series is not None:
        chosen = [uid for uid in groups if uid == series] or [uid for uid in groups if uid.startswith(series)]
        if len(chosen) != 1:
            raise PadisError(f"--series {series} {'matches no' if not chosen else 'matches several'} series in "
                             f"{where}: {_listing(groups)}")
        uid = chosen[0]
    elif len(groups) > 1:
        raise PadisError(f"{where} holds {len(groups)} DICOM series; one run reads one acquisition: pick one with "
                         f"--series UID ({_listing(groups)})")
    else:
        uid = next(iter(groups))
    entries = sorted(groups[uid], key=lambda e: e[0])
    first = entries[0][2]
    return DicomSeries(uid, str(first.get("SeriesDescription", "")), tuple(f for _, f, _ in entries),
                       stored_orientation(first))


def _listing(groups: dict[str, list]) -> str:
    items = []
    for uid, entries in groups.items():
        desc = str(entries[0][2].get("SeriesDescription", "")) or "no description"
        items.append(f"{uid or '(no SeriesInstanceUID)'}: {desc!r}, {len(entries)} slices")
    return "; ".join(items)


@overload
def read_dicom(path: str | Path | Sequence[str | Path], *, with_units: Literal[False] = False,
               series: str | None = None) -> np.ndarray: ...
@overload
def read_dicom(path: str | Path | Sequence[str | Path], *, with_units: Literal[True],
               series: str | None = None) -> tuple[np.ndarray, Units]: ...


def read_dicom(path: str | Path | Sequence[str | Path], *, with_units: bool = False, series: str | None = None):
    """A DICOM file ``(1, rows, cols)``, or a series (a folder, or a list of files) ``(n, rows, cols)``
    sorted along its slice normal (stored orientation: :func:`find_series`), HU for CT, stored
    values for other modalities (see the module docstring). ``with_units=True`` also returns
    ``"HU"`` or ``"raw"``."""
    found = find_series(path, series)
    slices = [read_dicom_file(f) for f in found.files]
    shapes = {s[0].shape for s in slices}
    if len(shapes) > 1:
        raise PadisError(f"DICOM series {found.files[0].parent} mixes slice shapes {sorted(shapes)}: keep one series "
                         f"per folder")
    units = {s[2] for s in slices}
    if len(units) > 1:
        raise PadisError(f"DICOM series {found.files[0].parent} mixes CT (HU) and other modalities: keep one series "
                         f"per folder")
    data = np.stack([s[0] for s in slices])
    return (data, units.pop()) if with_units else data
