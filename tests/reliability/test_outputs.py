"""Outputs are claimed before any work (issue 13, classes 1-3): an input is never overwritten or
mixed with outputs, an unwritable output fails before sampling or training starts, a folder in
use by another run is refused, and a resumed run refuses other settings."""

from __future__ import annotations

import hashlib
import json
import shlex

import numpy as np
import pytest

from padis3d.cli.outputs import LOCK_NAME, folder_lock
from tests.prior.prior_helpers import blob_images
from tests.reliability.helpers import assert_clean_failure, ct_volume, nifti_volume, run_cli
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture

TRAIN = ["--features", "16", "32", "--size", "16", "--patch-sizes", "8", "16", "--batch", "2", "--threads", "1",
         "--no-progress", "--checkpoint-minutes", "0"]


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def deblur(files, out, *extra):  # noqa: F811
    return ["reconstruct", "--task", "deblur", "--checkpoint", str(files / "tiny.pt"), "--size", "16", "--steps", "1",
            "--inner", "1", "--threads", "1", "--no-progress", "--out", str(out), *extra]


def denoise(files, inp, out, *extra):  # noqa: F811
    return ["reconstruct", "--task", "denoise", "--checkpoint", str(files / "tiny.pt"), "--input", str(inp),
            "--size", "12", "--steps", "2", "--band", "4", "--threads", "1", "--no-progress", "--out", str(out), *extra]


@pytest.fixture
def never_works(monkeypatch):
    """Fail the test if sampling or training starts: every check must come before the work."""
    import padis3d.solvers.reconstruct as rec
    import padis3d.training.loop as loop
    import padis3d.volume.pipeline as pipeline

    def refuse(*_a, **_k):
        raise AssertionError("the work started before the outputs were checked")
    for module, name in ((rec, "reconstruct"), (loop, "train"), (pipeline, "prepare_volume")):
        monkeypatch.setattr(module, name, refuse)


# -- class 1: an input is never overwritten, an input folder never receives outputs ---------------
def test_denoise_output_that_would_replace_its_input_is_refused(files, tmp_path, never_works):  # noqa: F811
    inp = nifti_volume(tmp_path / "reconstruction.nii.gz", ct_volume((12, 12, 8)))
    before = digest(inp)
    rc, err = run_cli(denoise(files, inp, tmp_path))
    assert rc == 2 and "would overwrite the input" in err and err.count("\n") == 1, err
    assert digest(inp) == before


@pytest.mark.parametrize("case", ["out is the input file", "out is the input folder", "out inside the input folder"])
def test_out_equal_to_or_inside_an_input_is_refused(files, tmp_path, case, never_works):  # noqa: F811
    from skimage.io import imsave

    folder = tmp_path / "pngs"
    folder.mkdir()
    imsave(folder / "a.png", (blob_images(1, 16)[0, 0].numpy() * 255).astype(np.uint8), check_contrast=False)
    inp, out = {"out is the input file": (folder / "a.png", folder / "a.png"),
                "out is the input folder": (folder, folder),
                "out inside the input folder": (folder, folder / "run")}[case]
    rc, err = run_cli(deblur(files, out, "--input", str(inp)))
    assert rc == 2 and "input" in err and "Traceback" not in err, err
    assert sorted(p.name for p in folder.iterdir()) == ["a.png"]


def test_train_out_equal_to_data_folder_is_refused(tmp_path, never_works):
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "imgs.npy", blob_images(4, 16)[:, 0].numpy())
    rc, err = run_cli(["train", "--data", str(data), "--out", str(data), "--steps", "1", *TRAIN])
    assert_clean_failure(rc, err, "input folder", data / "missing", "train")
    assert sorted(p.name for p in data.iterdir()) == ["imgs.npy"]


# -- class 2: what cannot be written fails before the work --------------------------------------
def test_unwritable_outputs_fail_before_any_work(files, tmp_path, never_works):  # noqa: F811
    image = files / "image.npy"
    (tmp_path / "a_file").write_text("x")
    rc, err = run_cli(deblur(files, tmp_path / "a_file", "--input", str(image)))
    assert rc == 2 and "is not a folder" in err, err
    rc, err = run_cli(deblur(files, tmp_path / "a_file" / "sub", "--input", str(image)))
    assert rc == 2 and "cannot write into" in err, err
    (tmp_path / "taken" / "reconstruction.npy").mkdir(parents=True)
    rc, err = run_cli(deblur(files, tmp_path / "taken", "--input", str(image)))
    assert rc == 2 and "exists as a folder" in err, err
    rc, err = run_cli(deblur(files, "/sys/padis3d-test-out", "--input", str(image)))  # read-only, even for root
    assert_clean_failure(rc, err, "cannot write into", tmp_path / "never", "reconstruct")


def test_bad_export_fails_before_training(tmp_path, never_works):
    data = tmp_path / "imgs.npy"
    np.save(data, blob_images(4, 16)[:, 0].numpy())
    (tmp_path / "dir.pt").mkdir()
    for export, fragment in ((tmp_path / "dir.pt", "exists as a folder"), ("/sys/padis3d.pt", "cannot write into")):
        rc, err = run_cli(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "1",
                           "--export", str(export), *TRAIN])
        assert_clean_failure(rc, err, fragment, tmp_path / "run", "train")


# -- class 3: one run per folder; a resumed run keeps its settings -----------------------------------
def test_folder_in_use_is_refused_and_released_after(files, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    out.mkdir()
    with folder_lock(out):
        rc, err = run_cli(deblur(files, out, "--input", str(files / "image.npy")))
        assert rc == 2 and "in use by another padis3d run" in err, err
        assert not (out / "report.json").exists()
    assert not (out / LOCK_NAME).exists()
    assert run_cli(deblur(files, out, "--input", str(files / "image.npy")))[0] == 0
    assert (out / "report.json").exists() and not (out / LOCK_NAME).exists()


def test_stale_lock_file_of_a_killed_run_does_not_block(files, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("12345")  # left by a SIGKILLed run: no process holds its flock
    assert run_cli(deblur(files, out, "--input", str(files / "image.npy")))[0] == 0


def test_volume_rerun_with_other_settings_is_refused_unless_restart(files, tmp_path):  # noqa: F811
    inp = nifti_volume(tmp_path / "vol.nii.gz", ct_volume((12, 12, 8)))
    out = tmp_path / "out"
    assert run_cli(denoise(files, inp, out, "--denoiser", "dds"))[0] == 0
    first = digest(out / "reconstruction.nii.gz")
    rc, err = run_cli(denoise(files, inp, out, "--denoiser", "dds", "--rho", "0.5"))
    assert rc == 2 and "other settings (rho 1.0 -> 0.5)" in err and "--restart" in err, err
    assert digest(out / "reconstruction.nii.gz") == first  # the finished result is untouched
    assert run_cli(denoise(files, inp, out, "--denoiser", "dds"))[0] == 0  # the same command still resumes
    assert run_cli(denoise(files, inp, out, "--denoiser", "dds", "--rho", "0.5", "--restart"))[0] == 0
    assert json.loads((out / "report.json").read_text())["settings"]["rho"] == 0.5


def test_volume_rerun_with_another_precision_is_refused_unless_restart(files, tmp_path):  # noqa: F811
    inp = nifti_volume(tmp_path / "vol.nii.gz", ct_volume((12, 12, 8)))
    out = tmp_path / "out"
    assert run_cli(denoise(files, inp, out, "--denoiser", "dds", "--precision", "fp32"))[0] == 0
    rc, err = run_cli(denoise(files, inp, out, "--denoiser", "dds", "--precision", "bf16"))
    assert rc == 2 and "prior or precision" in err and "--restart" in err, err
    assert run_cli(denoise(files, inp, out, "--denoiser", "dds", "--precision", "bf16", "--restart"))[0] == 0
    assert json.loads((out / "report.json").read_text())["precision"] == "bf16"


def test_train_resume_with_other_options_is_refused(tmp_path):
    data = tmp_path / "imgs.npy"
    np.save(data, blob_images(4, 16)[:, 0].numpy())
    out = tmp_path / "run"
    assert run_cli(["train", "--data", str(data), "--out", str(out), "--steps", "2", *TRAIN])[0] == 0
    rc, err = run_cli(["train", "--data", str(data), "--out", str(out), "--steps", "4", "--resume", "--lr", "1e-3",
                       *TRAIN])
    assert rc == 2 and "--lr None -> 0.001" in err, err
    assert run_cli(["train", "--data", str(data), "--out", str(out), "--steps", "4", "--resume", *TRAIN])[0] == 0


def test_model_card_command_reruns(tmp_path):
    """The command recorded in the prior (and its model card) parses as a ``padis3d`` command line."""
    from padis3d.cli.main import build_parser
    from padis3d.priors.checkpoint import read_checkpoint

    data = tmp_path / "imgs.npy"
    np.save(data, blob_images(4, 16)[:, 0].numpy())
    assert run_cli(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "1", *TRAIN])[0] == 0
    command = read_checkpoint(tmp_path / "run" / "prior.pt")["meta"]["commands"][-1]
    assert command in (tmp_path / "run" / "prior.md").read_text()
    words = shlex.split(command)
    assert words[:2] == ["padis3d", "train"]
    args = build_parser().parse_args(words[1:])
    assert args.steps == 1 and str(args.data) == str(data)
