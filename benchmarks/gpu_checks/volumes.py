"""The checks' test volume: the bundled chest CT where installed, else random ellipsoids."""

from __future__ import annotations

from typing import Any


def chest_available() -> bool:
    try:
        from padis3d.io.sample_data import chest_ct_path

        chest_ct_path()
        return True
    except (FileNotFoundError, ImportError):
        return False


def test_volume(n: int, source: str) -> tuple[Any, tuple[float, float], str]:
    """An ``n^3`` volume, its intensity window and what it is: the bundled chest CT (HU, area-averaged then
    linearly resampled to ``n^3``) or random ellipsoids in [0, 1]."""
    import numpy as np
    import torch

    if source == "auto":
        source = "chest" if chest_available() else "ellipsoids"
    if source == "chest":
        from padis3d.io.normalize import HU_WINDOW
        from padis3d.io.sample_data import chest_ct_volume_hu

        hu = torch.from_numpy(chest_ct_volume_hu())[None, None]  # (1, 1, 133, 512, 512)
        small = torch.nn.functional.adaptive_avg_pool3d(hu, (min(n, hu.shape[2]), n, n))
        vol = torch.nn.functional.interpolate(small, size=(n, n, n), mode="trilinear", align_corners=False)
        return vol[0, 0].numpy().astype(np.float32), tuple(float(v) for v in HU_WINDOW), \
            f"bundled chest CT resampled to {n}^3"
    from padis3d.training.phantoms import random_ellipsoids

    return random_ellipsoids(1, n, seed=0)[0], (0.0, 1.0), f"random ellipsoids {n}^3 (seed 0)"
