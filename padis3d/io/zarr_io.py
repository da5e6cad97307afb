"""zarr arrays (a store path, optionally a component inside a group)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from padis3d.errors import PadisError
from padis3d.io.normalize import require_nonempty


def read_zarr(path: str | Path, component: str | None = None):
    """Open a zarr array read-only (lazy; slice it to read). Groups need ``component`` unless
    they hold exactly one array."""
    import zarr

    path = Path(path)
    if not path.exists():
        raise PadisError(f"zarr store {path} does not exist")
    try:
        node = zarr.open(str(path), mode="r") if component is None else zarr.open(str(path), mode="r", path=component)
    except Exception as exc:  # noqa: BLE001
        raise PadisError(f"cannot open zarr store {path} ({type(exc).__name__}: {exc})") from exc
    if isinstance(node, zarr.Group):
        arrays = list(node.array_keys())
        if not arrays:
            raise PadisError(f"zarr store {path} is empty (a group without arrays): write the image or volume "
                             f"into it first")
        if len(arrays) != 1:
            raise PadisError(f"zarr group {path} holds arrays {arrays}: name one with component=...")
        node = node[arrays[0]]
    if node.ndim not in (2, 3):
        raise PadisError(f"zarr array {path} has shape {node.shape}: expected a 2D image or a 3D volume")
    require_nonempty(node.shape, f"zarr store {path}")
    return node


def zarr_slices(path: str | Path, axis: int = 0, component: str | None = None) -> np.ndarray:
    """All slices ``(n, a, b)`` float32 along ``axis`` of a zarr array."""
    arr = read_zarr(path, component)
    data = np.asarray(arr[...], dtype=np.float32)
    return data[None] if data.ndim == 2 else np.moveaxis(data, axis, 0)
