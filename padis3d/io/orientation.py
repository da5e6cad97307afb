"""The one array orientation every reader hands to a prior, and the way back to the file's own.

Every volume leaves :mod:`padis3d.io` as a ``(z, y, x)`` array in the **canonical orientation**
``SPL``: axis 0 runs inferior -> superior, axis 1 anterior -> posterior (anterior at the top of
a displayed slice), axis 2 the patient's right -> left (their left on the right of the image):
axial slices in the radiological display convention. The shipped priors were trained on the
bundled chest CT in this orientation (:func:`padis3d.io.sample_data.chest_ct_volume_hu`), and
a position-aware prior pays for every flip or transpose of its input.

Letters name the patient direction an axis *increases toward* (nibabel's convention: ``L``,
``R``, ``A``, ``P``, ``S``, ``I``). NIfTI takes them from its affine (``nibabel.aff2axcodes``),
DICOM from ImageOrientationPatient and the slice normal, and formats without geometry (npy,
zarr, PNG) are taken as stored in canonical order unless the user declares their orientation
(``--orientation``). The 2D planes of a volume are again fixed orientations (:data:`PLANES`):
coronal and sagittal slices have the superior end at the top.

Written here, not taken from a library: nibabel reorients whole images
(``nibabel.orientations``, used below for every transform), but has no notion of a band of
slices read lazily from a file, which the out-of-core readers and writers need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from padis3d.errors import PadisError

Codes = tuple[str, ...]

CANONICAL: Codes = ("S", "P", "L")
"""The ``(z, y, x)`` orientation of every array handed to a prior (see the module docstring)."""

PLANES: dict[int, tuple[str, Codes]] = {
    0: ("axial", ("S", "P", "L")),
    1: ("coronal", ("P", "I", "L")),
    2: ("sagittal", ("L", "I", "P")),
}
"""``--axis`` of a volume with geometry: the plane, and the ``(slice, row, column)`` orientation of its stack."""

_PAIRS = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S"}


def parse_codes(text: str | Sequence[str], ndim: int | None = None) -> Codes:
    """``"SPL"`` (or ``("S", "P", "L")``) -> ``("S", "P", "L")``; PadisError unless every letter is
    one of L R A P S I and no two name the same patient axis."""
    codes = tuple(str(c).upper() for c in (text if not isinstance(text, str) else list(text)))
    if ndim is not None and len(codes) != ndim:
        raise PadisError(f"orientation {''.join(codes)!r} names {len(codes)} axes; the array has {ndim}")
    bad = [c for c in codes if c not in _PAIRS]
    axes = [c if c in "LAS" else _PAIRS[c] for c in codes if c in _PAIRS]
    if bad or len(set(axes)) != len(axes) or not 2 <= len(codes) <= 3:
        raise PadisError(f"orientation {''.join(codes)!r}: give 2 or 3 letters from L/R, A/P, S/I, one per axis and "
                         f"each patient axis once (e.g. SPL: slices inferior->superior, rows anterior->posterior, "
                         f"columns right->left)")
    return codes


def _ornt(codes: Codes) -> np.ndarray:
    from nibabel.orientations import axcodes2ornt

    return axcodes2ornt(codes)


def transform(source: Codes, target: Codes) -> np.ndarray:
    """The nibabel orientation transform that turns an array in ``source`` into ``target``
    (``nibabel.orientations.apply_orientation``). For 2D codes the slice letter is implied."""
    if len(source) == 2:
        source, target = add_slice_axis(source), add_slice_axis(target)
    from nibabel.orientations import ornt_transform

    return ornt_transform(_ornt(source), _ornt(target))


def add_slice_axis(codes: Codes) -> Codes:
    """2D ``(row, col)`` codes -> ``(slice, row, col)`` codes: the patient axis they lack, as S, A or L, put first."""
    used = {c if c in "LAS" else _PAIRS[c] for c in codes}
    return (next(c for c in "SAL" if c not in used), *codes)


def reorient(array: np.ndarray, source: Codes, target: Codes = CANONICAL) -> np.ndarray:
    """``array`` (orientation ``source``, 2 or 3 axes) as ``target``: only flips and transposes."""
    if tuple(source) == tuple(target):
        return array
    from nibabel.orientations import apply_orientation

    t = transform(tuple(source), tuple(target))
    return np.ascontiguousarray(apply_orientation(array[None] if array.ndim == 2 else array, t)[
        0 if array.ndim == 2 else slice(None)])


def nifti_codes(affine: np.ndarray) -> Codes:
    """The orientation of a NIfTI's voxel array read as ``(k, j, i)`` = ``(z, y, x)``: its affine's
    axis codes (``nibabel.aff2axcodes``, the closest patient axes of an oblique grid), reversed."""
    from nibabel import aff2axcodes

    codes = aff2axcodes(np.asarray(affine, dtype=np.float64))
    if None in codes:
        raise PadisError("the NIfTI affine does not orient its voxel axes (a zero or degenerate column); "
                         "fix the header's qform/sform")
    return tuple(reversed(codes))


def direction_code(vector: Sequence[float]) -> str:
    """The patient direction a DICOM (LPS) direction cosine points to most: ``+x`` is L, ``+y`` P, ``+z`` S."""
    v = np.asarray(vector, dtype=np.float64)
    axis = int(np.argmax(np.abs(v)))
    return ("LR", "PA", "SI")[axis][0 if v[axis] > 0 else 1]


@dataclass(frozen=True)
class SliceOrientation:
    """How a stored ``(z, y, x)`` volume maps to the canonical one when both keep the stored
    slice axis as their slice axis (what band-by-band streaming needs): ``flip_z`` reverses the
    slice order, ``transform`` (nibabel's) maps a stored band to a canonical band."""

    stored: Codes

    def __post_init__(self) -> None:
        t = transform(self.stored, CANONICAL)
        if int(t[0, 0]) != 0:
            raise PadisError(f"the volume's slices are not axial (stored orientation {''.join(self.stored)}: its "
                             f"slice axis runs {self.stored[0]}); the volume tasks stream axial slices, so reslice "
                             f"it to axial first (e.g. nibabel.as_closest_canonical) or declare its orientation")

    @property
    def flip_z(self) -> bool:
        return int(transform(self.stored, CANONICAL)[0, 1]) == -1

    @property
    def identity(self) -> bool:
        return tuple(self.stored) == CANONICAL

    def stored_range(self, z0: int, z1: int, nz: int) -> tuple[int, int]:
        """The stored slices ``[a, b)`` that hold canonical slices ``[z0, z1)`` of ``nz``."""
        return (nz - z1, nz - z0) if self.flip_z else (z0, z1)

    def to_canonical(self, band: np.ndarray) -> np.ndarray:
        """A stored band ``(n, y, x)`` in canonical orientation (slices reversed if ``flip_z``)."""
        return reorient(band, self.stored, CANONICAL)

    def to_stored(self, band: np.ndarray) -> np.ndarray:
        """A canonical band back in the stored orientation."""
        return reorient(band, CANONICAL, self.stored)

    def canonical_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """The canonical shape of a stored array of ``shape``."""
        return _moved(shape, transform(self.stored, CANONICAL))

    def stored_shape_of(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """The stored shape of a canonical array of ``shape``."""
        return _moved(shape, transform(CANONICAL, self.stored))


def _moved(shape: Sequence[int], t: np.ndarray) -> tuple[int, ...]:
    out = [0] * len(shape)
    for axis, (to, _) in enumerate(t):
        out[int(to)] = int(shape[axis])
    return tuple(out)


def plane_stack(volume: np.ndarray, axis: int) -> np.ndarray:
    """The slices of a canonical ``(z, y, x)`` volume along ``axis`` (0 axial, 1 coronal, 2
    sagittal), each in its plane's display orientation (:data:`PLANES`)."""
    if axis not in PLANES:
        raise PadisError(f"slice axis {axis} must be 0 (axial), 1 (coronal) or 2 (sagittal)")
    return reorient(volume, CANONICAL, PLANES[axis][1])


def describe(codes: Codes) -> str:
    """``('S', 'P', 'L')`` -> ``'SPL'``."""
    return "".join(codes)
