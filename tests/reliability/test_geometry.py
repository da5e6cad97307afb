"""Outputs sit where their inputs were (issue 13, item 4): world geometry of ``--slices`` and of
in-plane resampling, the input's units back in the output, non-square images kept at their
aspect or refused, and the intensity scaling said out loud.

The solvers are replaced by ones that return the measurements of an identity operator (noise
0, ``--kernel 1``), so the output is the input as the pipeline read, normalised, resampled and
wrote it: what is tested is the geometry and units, not the tiny prior's quality."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from tests.reliability.helpers import assert_clean_failure, run_cli
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture

AFFINE = np.array([[0.0, -0.9, 0.0, 12.0],  # voxel axes rotated and flipped against world axes
                   [0.8, 0.0, 0.0, -20.0],
                   [0.0, 0.0, 2.5, -30.0],
                   [0.0, 0.0, 0.0, 1.0]])


def hu_volume(shape=(32, 32, 12)) -> np.ndarray:
    """``(x, y, z)`` HU: air, a 40 HU block, and a 400 HU plate in one slice per 3 (so slices differ)."""
    data = np.full(shape, -1000.0, np.float32)
    data[6:26, 4:28, :] = 40.0
    data[10:14, 10:22, ::3] = 400.0
    data[:, :, 5] += 100.0 * (np.arange(shape[0])[:, None] > 16)  # slice 5 is unlike every other
    return data


@pytest.fixture
def identity_solvers(monkeypatch):
    """2D: the result is the baseline (the measurements); volumes: the result is the measurements."""
    from padis3d.solvers import reconstruct as solvers
    from padis3d.volume import runner

    monkeypatch.setattr(solvers, "reconstruct", lambda prior, op, y, settings, baseline, callback, adapt=None: baseline)

    def run(self, output, callback=None):
        output[...] = np.clip(np.asarray(self.y[...]), 0, 1)
        return output
    monkeypatch.setattr(runner.VolumeRun, "run", run)


def world(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    return (affine @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]


def grid_points(shape) -> np.ndarray:
    return np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, len(shape))


def test_volume_slices_and_resize_keep_world_geometry_and_hu(files, identity_solvers, tmp_path):  # noqa: F811
    path = tmp_path / "vol.nii.gz"
    data = hu_volume()
    nib.save(nib.Nifti1Image(data, AFFINE), path)
    a, b, zoom = 3, 11, 2.0  # slices [3, 11), 32 -> 16 in-plane
    rc, err = run_cli(["reconstruct", "--task", "denoise", "--denoiser", "dds", "--noise", "0", "--checkpoint",
                       str(files / "tiny.pt"), "--input", str(path), "--slices", str(a), str(b), "--size", "16",
                       "--steps", "1", "--tile", "8", "--band", "4", "--no-progress", "--out", str(tmp_path / "o")])
    assert rc == 0, err
    out = nib.load(tmp_path / "o" / "reconstruction.nii.gz")
    assert out.shape == (16, 16, b - a)
    ijk = grid_points(out.shape)
    # output voxel (i, j, k) is the centre of input voxels [2i, 2i + 2) x [2j, 2j + 2) of slice k + a
    src = np.c_[(ijk[:, 0] + 0.5) * zoom - 0.5, (ijk[:, 1] + 0.5) * zoom - 0.5, ijk[:, 2] + a]
    assert np.allclose(world(out.affine, ijk), world(AFFINE, src), atol=1e-4)
    assert np.allclose(out.header.get_zooms(), (0.8 * zoom, 0.9 * zoom, 2.5), atol=1e-5)
    values = np.asarray(out.dataobj)
    assert abs(values[5:11, 3:13, :].mean() - data[12:22, 6:26, a:b].mean()) < 60  # HU, not [0, 1]
    assert np.median(values[[0, -1]]) == pytest.approx(-1000, abs=1)  # air stays air
    # the slice that is unlike the others comes out at its own world position
    per_slice = values[9:12, 3:13].mean(axis=(0, 1))  # input x 18..24, y 6..26: 40 HU, 140 HU in slice 5
    assert int(np.argmax(per_slice)) + a == 5 and per_slice.max() - np.median(per_slice) > 60


def test_2d_task_on_a_nifti_writes_the_slice_geometry_and_hu(files, identity_solvers, tmp_path, capsys):  # noqa: F811
    path = tmp_path / "vol.nii.gz"
    data = hu_volume()
    nib.save(nib.Nifti1Image(data, AFFINE), path)
    k = 7
    rc = run_cli(["reconstruct", "--task", "deblur", "--kernel", "1", "--noise", "0", "--checkpoint",
                  str(files / "tiny.pt"), "--input", str(path), "--slice", str(k), "--size", "16", "--steps", "1",
                  "--inner", "1", "--no-progress", "--out", str(tmp_path / "o")])[0]
    assert rc == 0
    out = nib.load(tmp_path / "o" / "reconstruction.nii.gz")
    assert out.shape == (16, 16, 1) and not np.allclose(out.affine, np.eye(4))
    ij = grid_points((16, 16))
    src = np.c_[(ij + 0.5) * 2 - 0.5, np.full(len(ij), k)]
    assert np.allclose(world(out.affine, np.c_[ij, np.zeros(len(ij))]), world(AFFINE, src), atol=1e-4)
    values = np.asarray(out.dataobj)[..., 0]
    assert values[4:12, 3:13].mean() == pytest.approx(40, abs=15)  # the 40 HU block, in HU
    assert values[0, 0] == pytest.approx(-1000, abs=1)
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["normalisation"]["kind"] == "hu_window" and report["normalisation"]["window"] == [-1000, 1000]
    assert report["normalisation"]["output_units"] == "input" and report["normalisation"]["zoom"] == [2.0, 2.0]


def test_raw_hu_npy_says_its_min_max_scaling_and_comes_back_in_its_units(files, identity_solvers, tmp_path,  # noqa: F811
                                                                         capsys):
    image = np.full((32, 32), -1000.0, np.float32)
    image[8:24, 8:24] = 60.0
    image[12:20, 12:20] = 1400.0
    np.save(tmp_path / "hu.npy", image)
    argv = ["reconstruct", "--task", "deblur", "--kernel", "1", "--noise", "0", "--checkpoint", str(files / "tiny.pt"),
            "--input", str(tmp_path / "hu.npy"), "--size", "32", "--steps", "1", "--inner", "1", "--no-progress"]
    from padis3d import cli

    assert cli.main([*argv, "--out", str(tmp_path / "o")]) == 0
    said = capsys.readouterr().out
    assert "min-max" in said and "[-1000, 1400]" in said and "--window" in said
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["normalisation"]["kind"] == "min_max_per_volume"
    assert report["normalisation"]["range"] == [-1000.0, 1400.0]
    assert np.allclose(np.load(tmp_path / "o" / "reconstruction.npy"), image, atol=0.05)
    assert cli.main([*argv, "--window", "-1000", "1000", "--out", str(tmp_path / "w")]) == 0
    assert "HU window [-1000, 1000]" in capsys.readouterr().out
    assert np.load(tmp_path / "w" / "reconstruction.npy").max() == pytest.approx(1000)  # clipped by the window


@pytest.mark.parametrize("task, shape", [("deblur", (24, 16)), ("sr", (24, 16))])
def test_non_square_image_is_reconstructed_at_its_own_aspect(files, identity_solvers, tmp_path, task,  # noqa: F811
                                                             shape):
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (48, 32)).astype(np.float32)
    np.save(tmp_path / "rect.npy", image)
    rc, err = run_cli(["reconstruct", "--task", task, *(["--kernel", "1"] if task == "deblur" else ["--factor", "4"]),
                       "--noise", "0", "--checkpoint", str(files / "tiny.pt"), "--input", str(tmp_path / "rect.npy"), "--size", "24",
                       "--steps", "1", "--inner", "1", "--no-progress", "--out", str(tmp_path / task)])
    assert rc == 0, err
    result = np.load(tmp_path / task / "reconstruction.npy")
    assert result.shape == shape  # 48 x 32 -> longer side 24, aspect kept, not stretched to 24 x 24
    report = json.loads((tmp_path / task / "report.json").read_text())
    assert report["normalisation"]["input_shape"] == [48, 32] and report["normalisation"]["zoom"] == [2.0, 2.0]
    if task == "deblur":  # the identity blur returns the resized input itself
        from skimage.transform import resize

        assert np.allclose(result, resize(image, shape, anti_aliasing=True, order=1), atol=1e-4)


@pytest.mark.parametrize("task", ["ct", "ct-fan"])
def test_non_square_image_is_refused_by_the_ct_tasks(files, tmp_path, task):  # noqa: F811
    np.save(tmp_path / "rect.npy", np.random.default_rng(0).uniform(0, 1, (48, 32)).astype(np.float32))
    out = tmp_path / "o"
    rc, err = run_cli(["reconstruct", "--task", task, "--checkpoint", str(files / "tiny.pt"), "--input",
                       str(tmp_path / "rect.npy"), "--size", "32", "--no-progress", "--out", str(out)])
    assert_clean_failure(rc, err, "48x32 pixels, not square", out)


def test_non_square_volume_is_refused_before_any_work(files, tmp_path):  # noqa: F811
    np.save(tmp_path / "rect.npy", np.random.default_rng(0).uniform(0, 1, (8, 24, 16)).astype(np.float32))
    out = tmp_path / "o"
    rc, err = run_cli(["reconstruct", "--task", "denoise", "--checkpoint", str(files / "tiny.pt"), "--input",
                       str(tmp_path / "rect.npy"), "--size", "16", "--no-progress", "--out", str(out)])
    assert_clean_failure(rc, err, "need square slices", out)


def test_resampled_affine_composes_and_matches_skimage_centres():
    from padis3d.io.nifti import resampled_affine

    a = AFFINE
    twice = resampled_affine(resampled_affine(a, (0, 0, 2), (2, 2, 1)), (0, 0, 1), (1.5, 1.5, 1))
    assert np.allclose(twice, resampled_affine(a, (0, 0, 3), (3, 3, 1)))
