"""PSNR/SSIM conventions: clipping, data range 1, volume orientations."""

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from padis3d.errors import PadisError
from padis3d.metrics import image_metrics, psnr, ssim, volume_metrics

RNG = np.random.default_rng(0)


def test_psnr_is_data_range_one_after_clipping():
    ref = RNG.random((32, 32)).astype(np.float32)
    pred = ref + 0.1
    clipped = np.clip(pred, 0, 1)
    assert psnr(pred, ref) == pytest.approx(10 * np.log10(1 / np.mean((clipped - ref) ** 2)))
    over = ref.copy()
    over[ref > 0.5] = 7.0  # far out of range: clipped to 1 before comparing
    assert psnr(over, ref) == pytest.approx(psnr(np.clip(over, 0, 1), ref))
    assert psnr(torch.from_numpy(pred), torch.from_numpy(ref)) == pytest.approx(psnr(pred, ref))


def test_ssim_uses_skimage_with_range_one():
    ref = RNG.random((40, 40))
    pred = np.clip(ref + 0.05 * RNG.standard_normal(ref.shape), 0, 1)
    assert ssim(pred, ref) == pytest.approx(structural_similarity(ref, pred, data_range=1.0))
    assert ssim(ref, ref) == pytest.approx(1.0)


def test_image_metrics_per_item():
    ref = torch.rand(3, 1, 24, 24)
    pred = ref.clone()
    pred[1] += 0.1
    m = image_metrics(pred, ref)
    assert m["psnr"].shape == (3,) and np.isinf(m["psnr"][0]) and np.isfinite(m["psnr"][1])
    assert m["ssim"][0] == pytest.approx(1.0) and m["ssim"][1] < 1


def test_volume_metrics_orientations():
    ref = RNG.random((8, 16, 12))
    pred = ref.copy()
    pred[2] = np.clip(pred[2] + 0.2, 0, 1)  # one corrupted axial slice
    m = volume_metrics(pred, ref)
    per_axial = [psnr(pred[k], ref[k]) for k in range(8)]
    finite = [v for v in per_axial if np.isfinite(v)]
    assert len(finite) == 1  # the other axial slices are perfect
    coronal = np.mean([psnr(pred[:, j], ref[:, j]) for j in range(16)])
    sagittal = np.mean([psnr(pred[:, :, i], ref[:, :, i]) for i in range(12)])
    assert m["psnr_coronal"] == pytest.approx(coronal) and m["psnr_sagittal"] == pytest.approx(sagittal)
    assert m["psnr_volume"] == pytest.approx(psnr(pred, ref))
    assert m["ssim_3views"] == pytest.approx(np.mean([m["ssim_axial"], m["ssim_coronal"], m["ssim_sagittal"]]))
    assert m["ssim_volume"] < 1


def test_metric_errors():
    with pytest.raises(PadisError, match="same shape"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(PadisError, match="NaN"):
        psnr(np.full((4, 4), np.nan), np.zeros((4, 4)))
    with pytest.raises(PadisError, match="volume"):
        volume_metrics(np.zeros((4, 4)), np.zeros((4, 4)))
