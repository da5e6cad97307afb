"""DICOM files or series (pydicom); pixel values converted to HU with RescaleSlope/Intercept."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from padis3d.errors import PadisError


def read_dicom_file(path: str | Path) -> tuple[np.ndarray, float]:
    """One DICOM slice: ``(rows, cols)`` float32 in HU (slope/intercept required) and its position
    along the slice normal (``ImagePositionPatient`` z, else ``InstanceNumber``)."""
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array.astype(np.float32)
    except Exception as exc:  # noqa: BLE001
        raise PadisError(f"cannot read DICOM file {path} ({type(exc).__name__}: {exc})") from exc
    if "RescaleSlope" not in ds or "RescaleIntercept" not in ds:
        raise PadisError(f"DICOM file {path} lacks RescaleSlope/RescaleIntercept, so HU are unknown; "
                         f"add them (e.g. slope 1, intercept -1024) or convert the series to NIfTI")
    if pixels.ndim != 2:
        raise PadisError(f"DICOM file {path} holds pixel data of shape {pixels.shape}: expected one 2D slice")
    hu = pixels * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    pos = ds.get("ImagePositionPatient")
    z = float(pos[2]) if pos is not None else float(ds.get("InstanceNumber", 0))
    return hu, z


def read_dicom(path: str | Path | Sequence[str | Path]) -> np.ndarray:
    """A DICOM file ``(1, rows, cols)``, or a series (a folder, or a list of files) ``(n, rows, cols)``
    sorted by slice position, in HU."""
    if isinstance(path, (str, Path)):
        path = Path(path)
        if path.is_file():
            return read_dicom_file(path)[0][None]
        if not path.is_dir():
            raise PadisError(f"DICOM path {path} does not exist")
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise PadisError(f"DICOM folder {path} is empty")
    else:
        files = [Path(p) for p in path]
        if not files:
            raise PadisError("empty list of DICOM files")
    slices = [read_dicom_file(f) for f in files]
    shapes = {s[0].shape for s in slices}
    if len(shapes) > 1:
        raise PadisError(f"DICOM series {files[0].parent} mixes slice shapes {sorted(shapes)}: keep one series per folder")
    slices.sort(key=lambda s: s[1])
    return np.stack([s[0] for s in slices])
