"""``recipes/nifti_out_of_core.py --smoke`` end to end in a subprocess, with the shipped patch
prior: a NIfTI out with the input's affine moved to the first reconstructed slice, peak memory measured and below budget + model +
fixed overhead, metrics finite and recorded, and a rerun that reuses the finished outputs."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from padis3d.io.nifti import resampled_affine

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not (ROOT / "checkpoints" / "chest128_patch.pt").exists(), reason="shipped checkpoint missing")
def test_recipe_smoke(tmp_path):
    rng = np.random.default_rng(0)
    hu = np.full((32, 32, 14), -1000.0, np.float32)  # (x, y, z): a body with two organs, in HU
    x, y = np.mgrid[0:32, 0:32]
    hu[(x - 16) ** 2 / 160 + (y - 16) ** 2 / 100 < 1] = 40.0
    hu[(x - 11) ** 2 + (y - 15) ** 2 < 16] = -800.0
    hu += 20 * rng.standard_normal(hu.shape).astype(np.float32)
    affine = np.array([[-0.9, 0, 0, 30], [0, 0.9, 0.1, -20], [0, 0, 3.0, -100], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(hu, affine), tmp_path / "scan.nii.gz")
    cmd = [sys.executable, str(ROOT / "recipes" / "nifti_out_of_core.py"), "--smoke", "--input",
           str(tmp_path / "scan.nii.gz"), "--threads", "1", "--no-progress", "--out", str(tmp_path / "out")]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    summary = json.loads((tmp_path / "out" / "recipe.json").read_text())
    out = nib.load(tmp_path / "out" / "run" / summary["output"])
    assert summary["output"] == "reconstruction.nii.gz" and out.shape == (32, 32, 12)  # middle 12 slices, 32x32
    source = nib.load(tmp_path / "scan.nii.gz")
    first = (14 - 12) // 2  # the middle 12 slices start at slice 1: the output's voxel (0, 0, 0) is there
    assert np.allclose(out.affine, resampled_affine(affine, (0, 0, first)))
    assert np.allclose(out.header.get_zooms(), source.header.get_zooms())
    mem = summary["memory"]
    allowance = (32 + mem["model_mb"] + mem["overhead_mb"]) * 1.1  # the README's allowance, measured overhead
    assert 100 < mem["overhead_mb"] < mem["peak_rss_mb"] <= mem["limit_mb"] == pytest.approx(allowance, abs=0.2)
    assert mem["below_limit"] and "peak memory" in done.stdout
    assert summary["method"] == "tweedie" and summary["steps"] == 1
    for name in ("noisy", "tweedie"):
        m = summary["metrics"][name]
        assert {"psnr_axial", "psnr_coronal", "psnr_sagittal", "ssim_3views", "psnr_volume"} <= set(m)
        assert all(math.isfinite(v) for v in m.values())
    assert summary["seed"] == 0 and {"torch", "nibabel", "padis3d"} <= set(summary["versions"])

    again = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "already done" in again.stdout
