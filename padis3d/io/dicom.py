"""DICOM files or series (pydicom), rescaled with RescaleSlope/Intercept (the Modality LUT).

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
from pathlib import Path
from typing import Literal, overload

import numpy as np

from padis3d.errors import PadisError

Units = Literal["HU", "raw"]


def read_dicom_file(path: str | Path) -> tuple[np.ndarray, float, Units]:
    """One DICOM slice: ``(rows, cols)`` float32 after the Modality LUT, its position along the
    slice normal (``ImagePositionPatient`` z, else ``InstanceNumber``) and its units: ``"HU"``
    for CT (rescale tags required), ``"raw"`` for other modalities without rescale tags."""
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
    values = pixels * slope + intercept
    pos = ds.get("ImagePositionPatient")
    z = float(pos[2]) if pos is not None else float(ds.get("InstanceNumber", 0))
    return values, z, "HU" if modality == "CT" else "raw"


@overload
def read_dicom(path: str | Path | Sequence[str | Path], *, with_units: Literal[False] = False) -> np.ndarray: ...
@overload
def read_dicom(path: str | Path | Sequence[str | Path], *, with_units: Literal[True]) -> tuple[np.ndarray, Units]: ...


def read_dicom(path: str | Path | Sequence[str | Path], *, with_units: bool = False):
    """A DICOM file ``(1, rows, cols)``, or a series (a folder, or a list of files) ``(n, rows, cols)``
    sorted by slice position: HU for CT, stored values for other modalities (see the module
    docstring). ``with_units=True`` also returns ``"HU"`` or ``"raw"``."""
    if isinstance(path, (str, Path)):
        path = Path(path)
        if path.is_file():
            files = [path]
        elif not path.is_dir():
            raise PadisError(f"DICOM path {path} does not exist")
        else:
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
    units = {s[2] for s in slices}
    if len(units) > 1:
        raise PadisError(f"DICOM series {files[0].parent} mixes CT (HU) and other modalities: keep one series per folder")
    slices.sort(key=lambda s: s[1])
    data = np.stack([s[0] for s in slices])
    return (data, units.pop()) if with_units else data
