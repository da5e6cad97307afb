"""Issue 27, class 6: a run that fails before its result exists removes every folder it created, the
parents it created included, and its prepared arrays; it never removes a folder or a file that existed
before, and a resumable volume run's committed progress from an earlier run is kept."""

from __future__ import annotations

import json

import numpy as np
import pytest

from padis3d.cli.runner import missing_folders
from tests.reliability.helpers import ct_volume, nifti_volume, run_cli
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture


def tree(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def denoise(files, inp, out, *extra):  # noqa: F811
    return ["reconstruct", "--task", "denoise", "--denoiser", "dds", "--checkpoint", str(files / "tiny.pt"),
            "--input", str(inp), "--size", "12", "--steps", "2", "--band", "4", "--threads", "1", "--no-progress",
            "--out", str(out), *extra]


@pytest.fixture
def volumes(tmp_path):
    good = nifti_volume(tmp_path / "good.nii.gz", ct_volume((12, 12, 8)))
    bad = ct_volume((12, 12, 8))
    bad[4, 4, 6] = np.nan  # found by the preparation, after the work folder was made
    return good, nifti_volume(tmp_path / "nan.nii.gz", bad)


def test_missing_folders_lists_what_would_be_created(tmp_path):
    assert missing_folders(tmp_path / "new" / "a" / "b") == [tmp_path / "new", tmp_path / "new" / "a",
                                                            tmp_path / "new" / "a" / "b"]
    assert missing_folders(tmp_path) == []


@pytest.mark.parametrize("command", ["reconstruct", "reconstruct-volume", "train", "sample"])
def test_failed_run_removes_the_parents_it_created(files, tmp_path, monkeypatch, command):  # noqa: F811
    """A checkpoint (or state) that does not exist, found after the output folder was claimed."""
    import padis3d.cli.prior_kind as prior_kind

    monkeypatch.setattr(prior_kind, "check_prior_kind", lambda *_a: None)  # let the run meet the missing file
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    out = "new/a/b"
    argv = {"reconstruct": ["reconstruct", "--checkpoint", "none.pt", "--out", out],
            "reconstruct-volume": ["reconstruct", "--task", "denoise", "--checkpoint", "none.pt", "--out", out],
            "train": ["train", "--resume", "none.pt", "--out", out],
            "sample": ["sample", "--checkpoint", "none.pt", "--out", out]}[command]
    rc, err = run_cli(argv)
    assert rc == 2 and "none.pt" in err and len(err.strip().splitlines()) == 1, err
    assert tree(tmp_path) == before  # neither new/a/b nor new/a nor new


def test_failed_run_keeps_folders_and_files_that_existed(files, tmp_path, volumes):  # noqa: F811
    (tmp_path / "mine" / "sub").mkdir(parents=True)
    (tmp_path / "mine" / "sub" / "keep.txt").write_text("mine")
    (tmp_path / "mine" / "empty").mkdir()
    before = tree(tmp_path)
    rc, err = run_cli(denoise(files, volumes[1], tmp_path / "mine" / "out" / "x",
                              "--work-dir", str(tmp_path / "mine" / "empty")))
    assert rc == 2 and "NaN" in err, err
    assert tree(tmp_path) == before  # the empty folder that existed stays; what the run made is gone
    assert (tmp_path / "mine" / "sub" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("work", ["OUT/work", "new/w"])
def test_work_dir_of_an_input_with_nan_keeps_no_prepared_arrays(files, tmp_path, volumes, work):  # noqa: F811
    before = tree(tmp_path)
    extra = [] if work == "OUT/work" else ["--work-dir", str(tmp_path / work)]
    rc, err = run_cli(denoise(files, volumes[1], tmp_path / "out", *extra))
    assert rc == 2 and "contains NaN or infinite values" in err and len(err.strip().splitlines()) == 1, err
    assert tree(tmp_path) == before


def test_committed_progress_of_an_earlier_run_is_kept(files, tmp_path, volumes, monkeypatch):  # noqa: F811
    """A run interrupted after its first level keeps its progress; a later run on the folder that fails
    (here: its scheduler cannot be reached) leaves that progress as it was, and the run resumes from it."""
    import padis3d.cli.scheduler as scheduler
    from padis3d.volume import runner

    out = tmp_path / "out"
    original = runner.VolumeRun.run

    def interrupted(self, output, callback=None):
        def stop(info):
            if callback is not None:
                callback(info)
            raise KeyboardInterrupt
        return original(self, output, callback=stop)
    monkeypatch.setattr(runner.VolumeRun, "run", interrupted)
    rc, err = run_cli(denoise(files, volumes[0], out))
    assert rc == 130, err
    progress = json.loads((out / "work" / "progress.json").read_text())
    assert progress["step"] >= 1
    kept = {p: p.read_bytes() for p in (out / "work").rglob("*") if p.is_file()}
    monkeypatch.setattr(runner.VolumeRun, "run", original)
    monkeypatch.setattr(scheduler, "CONNECT_TIMEOUT_S", 1.0)
    rc, err = run_cli(denoise(files, volumes[0], out, "--scheduler", "tcp://127.0.0.1:1"))
    assert rc == 2 and "cannot reach a dask scheduler" in err, err
    assert {p: p.read_bytes() for p in (out / "work").rglob("*") if p.is_file()} == kept
    rc, err = run_cli(denoise(files, volumes[0], out))
    assert rc == 0, err
    assert json.loads((out / "report.json").read_text())["resumed_from_step"] == progress["step"]
