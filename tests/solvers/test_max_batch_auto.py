"""``--max-batch auto`` end to end on the tiny prior: the measured choice is in report.json (2D and
volume tasks), the result equals the run with ``--max-batch <chosen>`` bit for bit, and bad values
are refused at parse time. The choice is forced through the chooser so it is not all tiles (the
default), without asserting anything about real timings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from padis3d import cli
from padis3d.priors import batch_size
from tests.reliability.helpers import ct_volume, nifti_volume
from tests.solvers.test_reconstruct_cli import files, run  # noqa: F401 - the tiny prior fixture


@pytest.fixture
def choose_two(monkeypatch):
    """The chooser picks batch 2 whatever the timings (the real ``choose`` is tested with a fake clock)."""
    monkeypatch.setattr(batch_size, "choose", lambda measured, *a: 2 if 2 in measured else min(measured))


def test_2d_auto_records_the_choice_and_equals_the_chosen_batch(files, tmp_path, choose_two, capsys):  # noqa: F811
    common = ("--task", "ct", "--views", "8", "--sampler", "dds", "--budget", "custom")
    assert run(files, tmp_path / "auto", *common, "--max-batch", "auto") == 0
    assert "--max-batch auto: 2 tiles per call" in capsys.readouterr().out
    report = json.loads((tmp_path / "auto" / "report.json").read_text())
    mb = report["max_batch"]
    assert mb["chosen"] == 2 and mb["tiles_per_evaluation"] == 9 and set(mb["measured"]) == {"1", "2", "4", "8", "9"}
    assert all(s > 0 for s in mb["measured"].values())
    assert run(files, tmp_path / "two", *common, "--max-batch", "2") == 0
    assert json.loads((tmp_path / "two" / "report.json").read_text())["max_batch"] == 2
    auto, two = (np.load(tmp_path / n / "reconstruction.npy") for n in ("auto", "two"))
    assert np.array_equal(auto, two)


def test_2d_auto_within_a_memory_budget_and_padis_vjp(files, tmp_path):  # noqa: F811
    # the real chooser; Algorithm 1 streams its gradients batch by batch with a batch limit
    assert run(files, tmp_path / "auto", "--task", "deblur", "--max-batch", "auto", "--memory-budget-mb", "64") == 0
    chosen = json.loads((tmp_path / "auto" / "report.json").read_text())["max_batch"]["chosen"]
    assert run(files, tmp_path / "n", "--task", "deblur", "--max-batch", str(chosen), "--memory-budget-mb", "64") == 0
    assert np.array_equal(np.load(tmp_path / "auto" / "reconstruction.npy"), np.load(tmp_path / "n" / "reconstruction.npy"))


def test_volume_auto_records_the_choice_and_equals_the_chosen_batch(files, tmp_path, choose_two):  # noqa: F811
    import nibabel as nib

    vol = nifti_volume(tmp_path / "vol.nii.gz", ct_volume((12, 12, 8)))

    def volume(out, *extra):
        return cli.main(["reconstruct", "--task", "denoise", "--checkpoint", str(files / "tiny.pt"), "--input",
                         str(vol), "--size", "12", "--tile", "8", "--steps", "2", "--band", "4", "--denoiser", "dds",
                         "--no-progress", "--out", str(out), *extra])

    assert volume(tmp_path / "auto", "--max-batch", "auto", "--memory-budget-mb", "64") == 0
    mb = json.loads((tmp_path / "auto" / "report.json").read_text())["max_batch"]
    assert mb["chosen"] == 2 and mb["tiles_per_evaluation"] >= 2 and "2" in mb["measured"]
    assert volume(tmp_path / "two", "--max-batch", "2", "--memory-budget-mb", "64") == 0
    auto, two = (np.asarray(nib.load(tmp_path / n / "reconstruction.nii.gz").dataobj) for n in ("auto", "two"))
    assert np.array_equal(auto, two)


def test_sample_accepts_auto(files, tmp_path, capsys):  # noqa: F811
    assert cli.main(["sample", "--checkpoint", str(files / "tiny.pt"), "--size", "16", "--count", "2", "--steps", "2",
                     "--no-progress", "--max-batch", "auto", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "--max-batch auto:" in out and (tmp_path / "s" / "sample_001.png").exists()


@pytest.mark.parametrize("value", ["0", "-1", "x", "1.5", "", "Auto"])
def test_bad_values_are_refused_at_parse_time(files, tmp_path, capsys, value):  # noqa: F811
    assert run(files, tmp_path / "bad", f"--max-batch={value}") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --max-batch: expected an integer in 1.." in err[0] and "'auto'" in err[0]
    assert not (tmp_path / "bad").exists()
