"""Bad input through ``padis3d reconstruct`` (in-process ``main`` and one real subprocess) and
through the Python API: one clear error line, exit 2, no traceback, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from padis3d.priors.checkpoint import load_prior
from padis3d.errors import PadisError
from tests.prior.prior_helpers import tiny_config
from tests.reliability.helpers import (assert_clean_failure, ct_volume, dicom_slice, nifti_volume, run_cli,
                                       run_subprocess)
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture

CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def bad(tmp_path_factory, files):  # noqa: F811
    """One file per kind of bad input (and a good volume to pair with bad options)."""
    import zarr
    from skimage.io import imsave

    root = tmp_path_factory.mktemp("bad")
    vol = ct_volume()
    nifti_volume(root / "good.nii.gz", vol)
    raw = (root / "good.nii.gz").read_bytes()
    (root / "truncated.nii.gz").write_bytes(raw[: len(raw) // 2])
    nan, inf = vol.copy(), vol.copy()
    nan[5, 5, 5], inf[6, 6, 6] = np.nan, np.inf
    nifti_volume(root / "nan.nii.gz", nan)
    nifti_volume(root / "inf.nii.gz", inf)
    nifti_volume(root / "4d.nii.gz", np.stack([vol, vol], -1))
    nifti_volume(root / "2d.nii.gz", vol[:, :, 0])
    zarr.create_group(store=str(root / "group.zarr"))
    zarr.create_array(store=str(root / "zero.zarr"), shape=(0, 16, 16), dtype="f4")
    (root / "mixed").mkdir()
    rng = np.random.default_rng(0)
    imsave(root / "mixed" / "a.png", rng.integers(0, 255, (20, 20), dtype=np.uint8), check_contrast=False)
    imsave(root / "mixed" / "b.png", rng.integers(0, 255, (24, 24), dtype=np.uint8), check_contrast=False)
    dicom_slice(root / "ct_no_rescale.dcm", rng.integers(0, 2000, (16, 16)), "CT", rescale=None)
    ckpt = (files / "tiny.pt").read_bytes()
    (root / "truncated.pt").write_bytes(ckpt[: len(ckpt) // 2])
    torch.save({"state_dict": {"w": torch.zeros(3)}}, root / "foreign.pt")
    return root


def reconstruct(files, out, *extra, two_d: bool = True):  # noqa: F811
    return run_cli(["reconstruct", "--checkpoint", str(files / "tiny.pt"), "--size", "16", "--steps", "2",
                    *["--inner", "1"] * two_d, "--no-progress", "--out", str(out), *extra])  # --inner: 2D only


def denoise(files, out, *extra):  # noqa: F811
    return reconstruct(files, out, "--task", "denoise", "--band", "4", *extra, two_d=False)


# (case id, 2D or 3D task, options ({bad}: the bad-input folder, {files}: the tiny prior's), message fragment)
CASES = [
    ("missing-file", "2d", ["--input", "{bad}/nothing.npy"], "nothing.npy does not exist"),
    ("missing-file-3d", "3d", ["--input", "{bad}/nothing.nii.gz"], "nothing.nii.gz does not exist"),
    ("truncated-nifti", "2d", ["--input", "{bad}/truncated.nii.gz"], "cannot read NIfTI file"),
    ("truncated-nifti-3d", "3d", ["--input", "{bad}/truncated.nii.gz"], "cannot read NIfTI file"),
    ("nan-voxels-3d", "3d", ["--input", "{bad}/nan.nii.gz"], "nan.nii.gz contains NaN or infinite values"),
    ("nan-voxels-2d", "2d", ["--input", "{bad}/nan.nii.gz"], "nan.nii.gz contains NaN or infinite values"),
    ("inf-voxels-hu-window", "2d", ["--input", "{bad}/inf.nii.gz", "--window", "-1000", "1000"],
     "inf.nii.gz contains NaN or infinite values"),
    ("4d-for-3d-task", "3d", ["--input", "{bad}/4d.nii.gz"], "shape (16, 16, 12, 2); a volume task needs a 3D volume"),
    ("4d-for-2d-task", "2d", ["--input", "{bad}/4d.nii.gz"], "expected a 2D image or a 3D volume"),
    ("2d-for-3d-task", "3d", ["--input", "{bad}/2d.nii.gz"], "shape (16, 16); a volume task needs a 3D volume"),
    ("empty-zarr-group", "3d", ["--input", "{bad}/group.zarr"], "group.zarr is empty"),
    ("zero-length-zarr", "2d", ["--input", "{bad}/zero.zarr"], "empty array of shape (0, 16, 16)"),
    ("png-mixed-sizes", "2d", ["--input", "{bad}/mixed"], "different sizes (a.png is 20x20, b.png is 24x24)"),
    ("ct-dicom-no-rescale", "2d", ["--input", "{bad}/ct_no_rescale.dcm"], "lacks RescaleSlope/RescaleIntercept"),
    ("foreign-torch-file", "2d", ["--input", "{files}/image.npy", "--checkpoint", "{bad}/foreign.pt"],
     "foreign.pt is not a padis3d checkpoint"),
    ("truncated-checkpoint", "3d", ["--input", "{bad}/good.nii.gz", "--checkpoint", "{bad}/truncated.pt"],
     "truncated.pt is unreadable or corrupt"),
    ("zero-steps", "2d", ["--input", "{bad}/good.nii.gz", "--steps", "0"], "argument --steps: must be an integer in 1.."),
    ("negative-steps-3d", "3d", ["--input", "{bad}/good.nii.gz", "--steps", "-3"], "argument --steps: must be an integer in 1.."),
    ("zero-inner", "2d", ["--input", "{bad}/good.nii.gz", "--inner", "0"], "argument --inner: must be an integer in 1.."),
    ("budget-below-one-tile", "2d", ["--input", "{bad}/good.nii.gz", "--memory-budget-mb", "0.01"],
     "is smaller than one tile in flight; the minimum is"),
    ("budget-below-one-band-3d", "3d", ["--input", "{bad}/good.nii.gz", "--memory-budget-mb", "0.01"],
     "one band of tiles and one tile in flight need"),
    ("negative-budget", "3d", ["--input", "{bad}/good.nii.gz", "--memory-budget-mb", "-1"],
     "argument --memory-budget-mb: must be a finite number in (0"),
    ("cuda-without-cuda", "2d", ["--input", "{bad}/good.nii.gz", "--device", "cuda"], "CUDA is not available"),
    ("cuda-without-cuda-3d", "3d", ["--input", "{bad}/good.nii.gz", "--device", "cuda"], "CUDA is not available"),
    ("zero-views", "2d", ["--input", "{bad}/good.nii.gz", "--views", "0"], "argument --views: must be an integer in 1.."),
    ("whole-tile-for-volume", "3d", ["--input", "{bad}/good.nii.gz", "--tile", "whole"], "--tile whole is for 2D"),
]


@pytest.mark.parametrize("case, kind, options, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_error_and_no_output(files, bad, tmp_path, case, kind, options,  # noqa: F811
                                                         fragment):
    if "cuda" in case and CUDA:
        pytest.skip("CUDA is available here")
    options = [o.replace("{bad}", str(bad)).replace("{files}", str(files)) for o in options]
    rc, err = (denoise if kind == "3d" else reconstruct)(files, tmp_path / "out", *options)
    assert_clean_failure(rc, err, fragment, tmp_path / "out")


def test_budget_error_names_the_minimum_and_the_minimum_runs(files, bad, tmp_path):  # noqa: F811
    """The minimum in the message is exact: one byte less fails with the same minimum, the minimum itself runs."""
    rc, err = reconstruct(files, tmp_path / "a", "--input", str(bad / "good.nii.gz"), "--memory-budget-mb", "0.01")
    minimum = int(err.split("the minimum is ")[1].split(" bytes")[0])
    assert rc == 2 and f"({minimum / 2**20:.4g} MiB)" in err
    rc, err = reconstruct(files, tmp_path / "b", "--input", str(bad / "good.nii.gz"), "--steps", "1",
                          "--memory-budget-mb", repr((minimum - 1) / 2**20))
    assert_clean_failure(rc, err, f"the minimum is {minimum} bytes", tmp_path / "b")
    rc, err = reconstruct(files, tmp_path / "c", "--input", str(bad / "good.nii.gz"), "--steps", "1",
                          "--memory-budget-mb", repr((minimum + 1) / 2**20))
    assert rc == 0, err
    assert (tmp_path / "c" / "report.json").is_file()


def test_existing_output_folder_is_left_as_it_was(files, bad, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    rc, err = denoise(files, out, "--input", str(bad / "nan.nii.gz"))
    assert rc == 2 and "NaN" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"


def test_real_process_prints_one_line_without_traceback(files, bad, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    proc = run_subprocess(["reconstruct", "--task", "denoise", "--checkpoint", str(files / "tiny.pt"), "--input",
                           str(bad / "truncated.nii.gz"), "--size", "16", "--no-progress", "--out", str(out)])
    assert_clean_failure(proc.returncode, proc.stderr, "truncated.nii.gz", out)
    assert proc.stdout == ""


# -- the Python API ------------------------------------------------------------------------------
def test_api_readers_raise_padis_errors(bad):
    from padis3d.io import load_training_images, read_dicom, read_zarr
    from padis3d.io.volume_file import read_volume

    with pytest.raises(PadisError, match="cannot read NIfTI file .*truncated.nii.gz"):
        read_volume(bad / "truncated.nii.gz")
    with pytest.raises(PadisError, match="contains NaN or infinite values"):
        read_volume(bad / "inf.nii.gz")
    with pytest.raises(PadisError, match=r"shape \(16, 16, 12, 2\): expected a 2D image or a 3D volume"):
        read_volume(bad / "4d.nii.gz")
    with pytest.raises(PadisError, match="is empty"):
        read_zarr(bad / "group.zarr")
    with pytest.raises(PadisError, match=r"empty array of shape \(0, 16, 16\)"):
        read_volume(bad / "zero.zarr")
    with pytest.raises(PadisError, match="different sizes"):
        load_training_images(bad / "mixed", size=16, same_size=True)
    with pytest.raises(PadisError, match="contains NaN or infinite values"):
        load_training_images(bad / "nan.nii.gz", size=16, window=(-1000, 1000))
    with pytest.raises(PadisError, match="lacks RescaleSlope/RescaleIntercept"):
        read_dicom(bad / "ct_no_rescale.dcm")
    # training keeps resizing a mixed-size folder (documented), into one size
    assert load_training_images(bad / "mixed", size=16)[0].shape == (2, 1, 16, 16)


def test_dicom_without_rescale_tags_policy(tmp_path):
    """CT: an error (the tags are required and HU would be guessed). Other modalities: the
    identity Modality LUT (slope 1, intercept 0), values kept as stored, min-max normalised."""
    from padis3d.io import load_training_images, read_dicom

    pixels = np.arange(64, dtype=np.uint16).reshape(8, 8) * 7
    mr = dicom_slice(tmp_path / "mr.dcm", pixels, "MR", rescale=None)
    values, units = read_dicom(mr, with_units=True)
    assert units == "raw" and np.array_equal(values[0], pixels.astype(np.float32))
    images, info = load_training_images(mr, size=None)
    assert info["normalisation"] == {"kind": "min_max_per_volume", "range": [0.0, float(pixels.max())]}
    np.testing.assert_allclose(images[0, 0], pixels / pixels.max(), atol=1e-6)
    ct = dicom_slice(tmp_path / "ct.dcm", pixels, "CT", rescale=(2, -1024))
    values, units = read_dicom(ct, with_units=True)
    assert units == "HU" and np.array_equal(values[0], pixels * 2.0 - 1024)
    with pytest.raises(PadisError, match="ct_bare.dcm lacks RescaleSlope/RescaleIntercept.*required for CT"):
        read_dicom(dicom_slice(tmp_path / "ct_bare.dcm", pixels, "CT", rescale=None))


def test_api_checkpoints_of_another_architecture_or_corrupt(files, bad):  # noqa: F811
    with pytest.raises(PadisError, match="another architecture"):
        load_prior(files / "tiny.pt", config=tiny_config(features=(16, 16)))
    with pytest.raises(PadisError, match="not a padis3d checkpoint"):
        load_prior(bad / "foreign.pt")
    with pytest.raises(PadisError, match="unreadable or corrupt"):
        load_prior(bad / "truncated.pt")
    from padis3d.training.loop import TrainSettings, resume_state
    with pytest.raises(PadisError, match="differs from the requested"):
        resume_state(files / "tiny.pt", TrainSettings(steps=2), tiny_config(features=(32, 64)))


def test_api_ct_detector_too_small_and_bad_angles():
    from padis3d.operators import FanBeam2D, ParallelBeam2D

    with pytest.raises(PadisError, match="covers 16.0 pixels at the rotation centre, less than the 32-pixel image"):
        ParallelBeam2D(32, views=8, detector_bins=16)
    with pytest.raises(PadisError, match="less than the 32-pixel image"):
        ParallelBeam2D(32, views=8, detector_bins=40, detector_spacing=0.5)
    with pytest.raises(PadisError, match="less than the 64-pixel image"):
        FanBeam2D(64, views=8, detector_bins=20)
    assert ParallelBeam2D(32, views=8, detector_bins=32).out_shape == (8, 32)  # exactly the image: fine
    with pytest.raises(PadisError, match="finite non-zero angle"):
        ParallelBeam2D(32, views=8, span=0.0)


def test_api_settings_and_budgets():
    from padis3d.solvers.reconstruct import SamplerSettings
    from padis3d.volume.runner import VolumeSettings
    from tiling import TileGrid, TilingError, plan_batch

    with pytest.raises(PadisError, match="steps and inner must be >= 1"):
        SamplerSettings(steps=-1)
    with pytest.raises(PadisError, match="steps must be >= 1, got 0"):
        VolumeSettings(steps=0)
    with pytest.raises(PadisError, match="band .* must be >= 1"):
        VolumeSettings(band=0)
    with pytest.raises(PadisError, match="0 <= eta <= 1"):
        VolumeSettings(eta=1.5)
    with pytest.raises(TilingError, match=r"the minimum is 4096 bytes \(0.003906 MiB\)"):
        plan_batch(10, 4096, memory_budget=4095)
    assert plan_batch(10, 4096, memory_budget=4096) == 1
    assert TileGrid((32, 32), 16).counts == (3, 3)
