"""Random-ellipse phantoms: training data that needs no in-distribution images (issue 15).

Each image is a black background (0) with a random number of filled ellipses (2D) or
ellipsoids (3D) painted in random order: a later ellipse replaces what it covers (painter's
algorithm), so every pixel is the intensity of the last ellipse covering it and the image
lies in ``[0, 1]`` by construction. Per ellipse: centre uniform in ``[-centre, centre]`` per
axis, semi-axes uniform in ``axes`` (fractions of the half-side, so 1.0 reaches the border
from the centre), a uniform random rotation, intensity uniform in ``intensity``.

Coordinates are normalised: pixel ``i`` of ``n`` sits at ``-1 + (2 i + 1) / n`` (pixel centres),
so an ellipse with semi-axes ``a, b`` (normalised) covers ``π (a n/2) (b n/2)`` pixels.

Seeding: image ``i`` of seed ``s`` is drawn from ``numpy.random.default_rng([s, i])``, so the
first ``k`` images of any set of the same seed are identical (a larger set extends a smaller one).
Masks are evaluated on the whole pixel grid at once (no Python loop per pixel); the only Python
loops are over images and over the ellipses of one image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from padis3d.errors import PadisError


@dataclass(frozen=True)
class EllipseSettings:
    """Generator settings (recorded in the training data's info dict).

    ``count``: ellipses per image, inclusive range; ``axes``: semi-axis range as a fraction of
    the half-side; ``centre``: centres uniform in ``[-centre, centre]`` (normalised);
    ``intensity``: intensity range, within ``[0, 1]``.
    """

    count: tuple[int, int] = (3, 12)
    axes: tuple[float, float] = (0.04, 0.6)
    centre: float = 0.6
    intensity: tuple[float, float] = (0.1, 1.0)

    def check(self) -> None:
        lo, hi = self.count
        if not 1 <= lo <= hi:
            raise PadisError(f"ellipse count range {self.count} must satisfy 1 <= lo <= hi")
        if not 0 < self.axes[0] <= self.axes[1]:
            raise PadisError(f"ellipse axes range {self.axes} must satisfy 0 < lo <= hi")
        if not 0 <= self.intensity[0] <= self.intensity[1] <= 1:
            raise PadisError(f"ellipse intensity range {self.intensity} must lie in [0, 1]")
        if not 0 <= self.centre <= 1:
            raise PadisError(f"ellipse centre range {self.centre} must lie in [0, 1]")


def pixel_grid(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Normalised pixel-centre coordinates, one broadcastable array per axis (``-1 + (2i+1)/n``)."""
    nd = len(shape)
    out = []
    for a, n in enumerate(shape):
        view = [1] * nd
        view[a] = n
        out.append(((2.0 * np.arange(n) + 1.0) / n - 1.0).reshape(view))
    return out


def ellipse_mask(grid: list[np.ndarray], centre: np.ndarray, axes: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Boolean mask of the ellipse/ellipsoid ``{x : Σ_j ((R^T (x - c))_j / a_j)² <= 1}``.

    ``grid`` from :func:`pixel_grid` (d arrays), ``centre`` ``(d,)`` and ``axes`` ``(d,)`` normalised,
    ``rotation`` ``(d, d)`` orthogonal (columns = the ellipse's axis directions). Returns the grid's shape.
    """
    d = len(grid)
    shifted = [g - c for g, c in zip(grid, centre)]
    total = 0.0
    for j in range(d):
        u = sum(rotation[i, j] * shifted[i] for i in range(d))  # coordinate along axis j
        total = total + (u / axes[j]) ** 2
    return np.broadcast_to(total <= 1.0, tuple(g.shape[a] for a, g in enumerate(grid)))


def random_rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    """A uniformly random rotation ``(d, d)`` (2D: angle in [0, π); 3D: QR of a Gaussian, det +1)."""
    if d == 2:
        t = rng.uniform(0.0, np.pi)
        return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def random_phantom(rng: np.random.Generator, shape: tuple[int, ...], settings: EllipseSettings) -> np.ndarray:
    """One phantom of ``shape`` (2 or 3 axes), float32 in [0, 1]."""
    grid = pixel_grid(shape)
    d = len(shape)
    image = np.zeros(shape, dtype=np.float32)
    for _ in range(int(rng.integers(settings.count[0], settings.count[1] + 1))):
        centre = rng.uniform(-settings.centre, settings.centre, d)
        axes = rng.uniform(settings.axes[0], settings.axes[1], d)
        value = rng.uniform(*settings.intensity)
        image[ellipse_mask(grid, centre, axes, random_rotation(rng, d))] = value
    return image


def random_ellipses(n: int, size: int | tuple[int, int], seed: int = 0,
                    settings: EllipseSettings = EllipseSettings()) -> np.ndarray:
    """``n`` random-ellipse images ``(n, H, W)`` float32 in [0, 1] (``size`` an int for square)."""
    shape = (size, size) if isinstance(size, int) else tuple(size)
    return _stack(n, shape, seed, settings, 2)


def random_ellipsoids(n: int, size: int | tuple[int, int, int], seed: int = 0,
                      settings: EllipseSettings = EllipseSettings()) -> np.ndarray:
    """``n`` random-ellipsoid volumes ``(n, D, H, W)`` float32 in [0, 1] (``size`` an int for a cube)."""
    shape = (size, size, size) if isinstance(size, int) else tuple(size)
    return _stack(n, shape, seed, settings, 3)


def _stack(n: int, shape: tuple[int, ...], seed: int, settings: EllipseSettings, d: int) -> np.ndarray:
    settings.check()
    if len(shape) != d or min(shape) < 1 or n < 0:
        raise PadisError(f"phantoms need n >= 0 and {d} positive sizes, got n={n}, shape {shape}")
    out = np.empty((n, *shape), dtype=np.float32)
    for i in range(n):
        out[i] = random_phantom(np.random.default_rng([seed, i]), shape, settings)
    return out


def ellipse_training_images(n: int = 1000, size: int = 128, seed: int = 0,
                            settings: EllipseSettings = EllipseSettings()) -> tuple[torch.Tensor, dict]:
    """Training set for ``padis3d train --data ellipses``: ``(n, 1, size, size)`` in [0, 1] and the
    info dict recorded in the checkpoint (generator and every setting)."""
    images = torch.from_numpy(random_ellipses(n, size, seed, settings))[:, None]
    info = {"source": "random ellipses (padis3d.training.phantoms)", "axis": "n/a",
            "orientation": {"canonical": "SPL", "plane": "any", "from": "phantoms"}, "images": n, "size": size,
            "seed": seed, "generator": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()},
            "normalisation": {"kind": "none", "range": [0.0, 1.0]}}
    return images, info
