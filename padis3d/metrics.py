"""PSNR / SSIM with ``data_range = 1`` after clipping both images to [0, 1]
(scikit-image implementations, default 7-pixel uniform SSIM window), per image and
for volumes as the mean over axial, coronal and sagittal slices and over the whole volume.

Volumes are ``(z, y, x)`` in display order (``padis3d.io.sample_data``): axial slices index
axis 0, coronal axis 1, sagittal axis 2.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from padis3d.errors import PadisError

ArrayLike = np.ndarray | torch.Tensor
VIEWS = {"axial": 0, "coronal": 1, "sagittal": 2}


def _pair(pred: ArrayLike, target: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p, t = (np.asarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
            for a in (pred, target))
    if p.shape != t.shape:
        raise PadisError(f"prediction {p.shape} and reference {t.shape} must have the same shape")
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise PadisError("metrics got NaN or Inf values; check the reconstruction")
    return np.clip(p, 0.0, 1.0), np.clip(t, 0.0, 1.0)


def psnr(pred: ArrayLike, target: ArrayLike) -> float:
    """PSNR in dB over all pixels (any shape), data range 1 after clipping (inf if equal)."""
    p, t = _pair(pred, target)
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(t, p, data_range=1.0))


def ssim(pred: ArrayLike, target: ArrayLike) -> float:
    """SSIM of one 2D image or 3D volume (skimage, data range 1 after clipping)."""
    p, t = _pair(pred, target)
    if p.ndim not in (2, 3):
        raise PadisError(f"ssim needs a 2D image or 3D volume, got shape {p.shape}")
    return float(structural_similarity(t, p, data_range=1.0))


def image_metrics(pred: ArrayLike, target: ArrayLike) -> dict[str, np.ndarray]:
    """Per-image PSNR and SSIM of ``(B, C, H, W)`` batches: arrays of shape ``(B*C,)``."""
    p, t = _pair(pred, target)
    if p.ndim != 4:
        raise PadisError(f"image_metrics needs (batch, channels, H, W), got shape {p.shape}")
    p, t = p.reshape(-1, *p.shape[2:]), t.reshape(-1, *t.shape[2:])
    return {"psnr": np.array([psnr(a, b) for a, b in zip(p, t)]),
            "ssim": np.array([ssim(a, b) for a, b in zip(p, t)])}


def volume_metrics(pred: ArrayLike, target: ArrayLike) -> dict[str, float]:
    """Volume ``(z, y, x)`` metrics: ``{psnr,ssim}_{axial,coronal,sagittal}`` (mean over the
    slices of that orientation), ``*_3views`` (mean of the three), ``*_volume`` (whole volume,
    SSIM with a 3D window)."""
    p, t = _pair(pred, target)
    if p.ndim != 3 or min(p.shape) < 7:
        raise PadisError(f"volume_metrics needs a (z, y, x) volume at least 7 voxels per axis, got {p.shape}")
    out: dict[str, float] = {}
    for name, ax in VIEWS.items():
        ps, ts = np.moveaxis(p, ax, 0), np.moveaxis(t, ax, 0)
        out[f"psnr_{name}"] = float(np.mean([psnr(a, b) for a, b in zip(ps, ts)]))
        out[f"ssim_{name}"] = float(np.mean([ssim(a, b) for a, b in zip(ps, ts)]))
    for m in ("psnr", "ssim"):
        out[f"{m}_3views"] = float(np.mean([out[f"{m}_{v}"] for v in VIEWS]))
    out["psnr_volume"], out["ssim_volume"] = psnr(p, t), ssim(p, t)
    return out


SSIM_WINDOW, SSIM_K1, SSIM_K2 = 7, 0.01, 0.03  # skimage's defaults, used by ssim() above


def _ssim_map(p: np.ndarray, t: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """skimage's SSIM map (uniform 7-voxel window along ``axes``, sample covariance, data
    range 1) of float64 arrays; only values at least 3 voxels from every edge along ``axes``
    are meaningful, and those do not depend on the boundary mode."""
    from scipy.ndimage import uniform_filter1d

    def filt(a: np.ndarray) -> np.ndarray:
        for ax in axes:
            a = uniform_filter1d(a, SSIM_WINDOW, axis=ax)
        return a

    ux, uy = filt(p), filt(t)
    cov_norm = SSIM_WINDOW ** len(axes) / (SSIM_WINDOW ** len(axes) - 1)
    vx = cov_norm * (filt(p * p) - ux * ux)
    vy = cov_norm * (filt(t * t) - uy * uy)
    vxy = cov_norm * (filt(p * t) - ux * uy)
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))


def metrics_band_bytes(plane_voxels: int) -> int:
    """Bytes :func:`volume_metrics_banded` holds per slice of a band (float64 copies and SSIM maps)."""
    return 12 * 8 * plane_voxels


def volume_metrics_banded(pred: ArrayLike, target: ArrayLike, rows: int = 16) -> dict[str, float]:
    """:func:`volume_metrics` of two ``(z, y, x)`` arrays read ``rows`` axial slices at a time
    (zarr arrays, memory maps or numpy), never whole: the same keys and, up to float rounding
    (~1e-12), the same values.

    Every plane is used. Axial PSNR/SSIM are per slice of the band; coronal and sagittal PSNR
    accumulate each plane's squared error over the bands; SSIM's 7-voxel window needs 3
    slices either side along z, so each band is read with a halo of 3 slices and contributes
    the rows of the coronal, sagittal and 3D SSIM maps whose window it holds whole (skimage
    crops 3 voxels at every edge, so no row depends on the boundary). Memory: about
    ``(rows + 6) * metrics_band_bytes(y * x)`` bytes."""
    if tuple(pred.shape) != tuple(target.shape):
        raise PadisError(f"prediction {tuple(pred.shape)} and reference {tuple(target.shape)} must have the same shape")
    if len(pred.shape) != 3 or min(pred.shape) < SSIM_WINDOW:
        raise PadisError(f"volume_metrics needs a (z, y, x) volume at least 7 voxels per axis, got {tuple(pred.shape)}")
    nz, ny, nx = (int(s) for s in pred.shape)
    h = SSIM_WINDOW // 2
    rows = max(1, int(rows))
    sq = {"axial": np.zeros(nz), "coronal": np.zeros(ny), "sagittal": np.zeros(nx)}
    ss = {"axial": np.zeros(nz), "coronal": np.zeros(ny), "sagittal": np.zeros(nx)}
    sq_total = ss_volume = 0.0
    for z0 in range(0, nz, rows):
        z1 = min(z0 + rows, nz)
        a, b = max(0, z0 - h), min(nz, z1 + h)
        p, t = _pair(pred[a:b], target[a:b])
        own = slice(z0 - a, z1 - a)
        d2 = (p[own] - t[own]) ** 2
        sq["axial"][z0:z1] = d2.sum(axis=(1, 2))
        sq["coronal"] += d2.sum(axis=(0, 2))
        sq["sagittal"] += d2.sum(axis=(0, 1))
        sq_total += float(d2.sum())
        del d2
        ss["axial"][z0:z1] = _ssim_map(p[own], t[own], (1, 2))[:, h:-h, h:-h].mean(axis=(1, 2))
        i0, i1 = max(z0, h), min(z1, nz - h)  # rows whose z window lies inside the volume
        if i1 > i0:
            inner = slice(i0 - a, i1 - a)
            ss["coronal"] += _ssim_map(p, t, (0, 2))[inner, :, h:-h].sum(axis=(0, 2))
            ss["sagittal"] += _ssim_map(p, t, (0, 1))[inner, h:-h, :].sum(axis=(0, 1))
            ss_volume += float(_ssim_map(p, t, (0, 1, 2))[inner, h:-h, h:-h].sum())
    plane = {"axial": ny * nx, "coronal": nz * nx, "sagittal": nz * ny}
    crop = {"axial": (ny - 2 * h) * (nx - 2 * h), "coronal": (nz - 2 * h) * (nx - 2 * h),
            "sagittal": (nz - 2 * h) * (ny - 2 * h)}
    out: dict[str, float] = {}
    with np.errstate(divide="ignore"):
        for name in VIEWS:
            out[f"psnr_{name}"] = float(np.mean(10 * np.log10(plane[name] / sq[name])))
            out[f"ssim_{name}"] = float(np.mean(ss[name] / (1 if name == "axial" else crop[name])))
        for m in ("psnr", "ssim"):
            out[f"{m}_3views"] = float(np.mean([out[f"{m}_{v}"] for v in VIEWS]))
        out["psnr_volume"] = float(10 * np.log10(nz * ny * nx / np.float64(sq_total)))
    out["ssim_volume"] = ss_volume / ((nz - 2 * h) * (ny - 2 * h) * (nx - 2 * h))
    return out
