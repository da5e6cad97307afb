"""PSNR / SSIM with ``data_range = 1`` after clipping both images to [0, 1]
(scikit-image implementations, default 7-pixel uniform SSIM window), per image and
for volumes as the mean over axial, coronal and sagittal slices and over the whole volume.

Volumes are ``(z, y, x)`` in display order (``padis3d.sample_data``): axial slices index
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
