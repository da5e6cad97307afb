"""``padis3d reconstruct`` on a NIfTI volume: affine and header kept, per-plane metrics,
resume from the work folder, clear errors."""

import json

import nibabel as nib
import numpy as np
import pytest

from padis3d import cli
from padis3d.priors.coarse_weight import CoarseWeight, save_weight
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture


@pytest.fixture
def volume(tmp_path):
    rng = np.random.default_rng(0)
    data = np.full((16, 16, 12), -1000.0, np.float32)  # (i, j, k) = (x, y, z), HU
    data[4:12, 3:13, 2:10] = 40.0 + 20 * rng.standard_normal((8, 10, 8))
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    affine[:3, 3] = [-10, 20, -30]
    path = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def run(files, volume, out, *extra):  # noqa: F811
    denoiser = [] if "--task" in extra else ["--denoiser", "dds"]  # --denoiser: --task denoise only
    return cli.main(["reconstruct", "--task", "denoise", *denoiser, "--checkpoint", str(files / "tiny.pt"),
                     "--input", str(volume), "--size", "16", "--steps", "3", "--band", "4", "--no-progress",
                     "--out", str(out), *extra])


def test_nifti_in_nifti_out_with_its_geometry(files, volume, tmp_path):  # noqa: F811
    assert run(files, volume, tmp_path / "out") == 0
    result = nib.load(tmp_path / "out" / "reconstruction.nii.gz")
    source = nib.load(volume)
    assert result.shape == source.shape and np.allclose(result.affine, source.affine)
    assert np.allclose(result.header.get_zooms(), source.header.get_zooms())
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {"psnr_axial", "psnr_coronal", "psnr_sagittal", "ssim_3views"} <= set(report["metrics"]["dds"])
    assert report["tile"] == [1, 16, 16] and report["resumed_from_step"] == 0
    values = np.asarray(result.dataobj)
    assert -1000 <= values.min() and values.max() <= 1000 and values.std() > 10  # back in HU, in the window


def test_rerun_resumes_from_the_work_folder(files, volume, tmp_path):  # noqa: F811
    assert run(files, volume, tmp_path / "out") == 0
    first = np.asarray(nib.load(tmp_path / "out" / "reconstruction.nii.gz").dataobj)
    assert run(files, volume, tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["resumed_from_step"] == 3
    assert np.array_equal(np.asarray(nib.load(tmp_path / "out" / "reconstruction.nii.gz").dataobj), first)


def test_volume_errors(files, volume, tmp_path, capsys):  # noqa: F811
    np.save(tmp_path / "flat.npy", np.zeros((8, 16, 16), np.float32))
    np.save(tmp_path / "image2d.npy", np.zeros((16, 16), np.float32))
    assert run(files, tmp_path / "image2d.npy", tmp_path / "o1") == 2
    assert "needs a 3D volume" in capsys.readouterr().err
    assert run(files, tmp_path / "flat.npy", tmp_path / "o2") == 2
    assert "constant" in capsys.readouterr().err
    assert run(files, volume, tmp_path / "o3", "--slices", "5", "40") == 2
    assert "outside" in capsys.readouterr().err


def test_cone_beam_without_cuda_fails_before_any_file(files, volume, tmp_path, capsys):  # noqa: F811
    from padis3d.operators.ct import astra_cuda_available

    if astra_cuda_available():
        pytest.skip("this machine has astra CUDA")
    out = tmp_path / "cone"
    assert run(files, volume, out, "--task", "ct3d-cone") == 2
    assert "needs astra with CUDA" in capsys.readouterr().err
    assert not out.exists()


def test_cone_beam_task_runs_the_whole_volume_data_step(files, volume, tmp_path, monkeypatch):  # noqa: F811
    # A 3D operator on the whole volume stands in for astra's cone beam (CUDA only): the task's
    # plumbing (projections, CGLS baseline, whole-volume data step, resume, outputs) is what is tested.
    from padis3d.volume import tasks as volume_tasks
    from padis3d.operators import ParallelBeam3D

    made = []

    def stand_in(shape, views, span):
        made.append((shape, views, span))
        return ParallelBeam3D(shape, views=views, span=span)
    monkeypatch.setattr(volume_tasks, "cone_operator", stand_in)
    out = tmp_path / "cone"
    argv = ["--task", "ct3d-cone", "--views", "12", "--rho", "0.1", "--cg-iters", "20"]
    assert run(files, volume, out, *argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert made[0][0] == (12, 16, 16) and made[0][1] == 12 and made[0][2] == pytest.approx(2 * np.pi)
    assert report["task"] == "ct3d-cone" and set(report["metrics"]) == {"CGLS-20", "dds"}
    # 12 views over 360° of a 16² phantom; the per-plane means are +inf (JSON null) when an all-air plane
    # comes back exact, so the whole-volume PSNR is the check
    assert report["metrics"]["CGLS-20"]["psnr_volume"] > 20
    result = nib.load(out / "reconstruction.nii.gz")
    assert result.shape == nib.load(volume).shape
    first = np.asarray(result.dataobj)
    assert run(files, volume, out, *argv) == 0
    assert json.loads((out / "report.json").read_text())["resumed_from_step"] == 3
    assert np.array_equal(np.asarray(nib.load(out / "reconstruction.nii.gz").dataobj), first)
    assert run(files, volume, tmp_path / "small", *argv, "--memory-budget-mb", "0.05") == 2
    assert not (tmp_path / "small").exists()


def test_tweedie_denoiser_is_one_pass_from_the_noisy_volume(files, volume, tmp_path):  # noqa: F811
    assert run(files, volume, tmp_path / "t", "--denoiser", "tweedie", "--noise", "0.1") == 0
    report = json.loads((tmp_path / "t" / "report.json").read_text())
    assert report["method"] == "tweedie" and set(report["metrics"]) == {"noisy", "tweedie"}
    s = report["settings"]
    assert (s["init"], s["steps"], s["sigma_max"], s["cg_iters"]) == ("measurements", 1, 0.1, 0)
    assert run(files, volume, tmp_path / "z", "--denoiser", "tweedie", "--noise", "0") == 2
    assert not (tmp_path / "z").exists()


def test_two_scale_prior_out_of_core_with_lowres(files, volume, tmp_path, capsys):  # noqa: F811
    from tests.prior.test_two_scale_factory import save

    low = save(tmp_path / "low.pt", 2, 4, [16, 16], [2, 2], 5)  # a tiny in-plane low-resolution prior
    # no weight measured for this pair: refused before any file is written, with the way out
    assert run(files, volume, tmp_path / "two", "--lowres", str(low)) == 2
    err = capsys.readouterr().err
    assert "no coarse weight for low.pt" in err and "calibrate_two_scale.py" in err and not (tmp_path / "two").exists()
    assert run(files, volume, tmp_path / "two", "--lowres", str(low), "--lowres-weight", "1") == 0
    report = json.loads((tmp_path / "two" / "report.json").read_text())
    assert report["lowres"] == {"checkpoint": str(low), "factor": [1, 2, 2], "coarse_tile": [1, 4, 4], "weight": 1.0}
    assert run(files, volume, tmp_path / "one") == 0
    two, one = (np.asarray(nib.load(tmp_path / d / "reconstruction.nii.gz").dataobj) for d in ("two", "one"))
    assert np.abs(two - one).max() > 1.0  # HU: the coarse prior changed the result
    # weight 0: the fine prior alone, to the float (the coarse prior is not run)
    assert run(files, volume, tmp_path / "zero", "--lowres", str(low), "--lowres-weight", "0") == 0
    zero = np.asarray(nib.load(tmp_path / "zero" / "reconstruction.nii.gz").dataobj)
    np.testing.assert_allclose(zero, one, atol=1e-3)
    # a measured weight for the pair is found beside the coarse checkpoint and reported
    save_weight(CoarseWeight((0.1, 1.0), (0.2, 0.7)), files / "tiny.pt", low)
    assert run(files, volume, tmp_path / "measured", "--lowres", str(low)) == 0
    got = json.loads((tmp_path / "measured" / "report.json").read_text())["lowres"]["weight"]
    assert got == {"sigmas": [0.1, 1.0], "weights": [0.2, 0.7]}
    capsys.readouterr()
    assert run(files, volume, tmp_path / "x", "--lowres-weight", "0.5") == 2  # a weight needs a coarse prior
    assert "--lowres-weight 0.5 weighs the two-scale prior's coarse prior: give --lowres" in capsys.readouterr().err
    assert cli.main(["reconstruct", "--task", "denoise", "--lowres-weight", "1.5"]) == 2  # refused at parse time
    assert "--lowres-weight: expected 'measured' or a number in [0, 1], got '1.5'" in capsys.readouterr().err
    assert run(files, volume, tmp_path / "two", "--lowres", str(low), "--lowres-weight", "1") == 0  # resumes
    assert json.loads((tmp_path / "two" / "report.json").read_text())["resumed_from_step"] == 3
    capsys.readouterr()
    assert run(files, volume, tmp_path / "two") == 2  # the same folder without the coarse prior: another run
    assert "other input, geometry, prior or precision" in capsys.readouterr().err
    assert run(files, volume, tmp_path / "two", "--lowres", str(low), "--lowres-weight", "0.5") == 2  # another weight
    assert "other input, geometry, prior or precision" in capsys.readouterr().err
    assert cli.main(["reconstruct", "--task", "ct", "--checkpoint", str(files / "tiny.pt"), "--lowres", str(low),
                     "--out", str(tmp_path / "2d"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--lowres (the two-scale prior) is for the volume tasks" in err[0]
    assert not (tmp_path / "2d").exists()
