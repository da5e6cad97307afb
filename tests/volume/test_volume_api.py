"""``padis3d.reconstruct_volume``, the library call behind ``padis3d reconstruct`` for volumes: an array in
memory gives the command's result on the same volume saved as .npy, bit for bit; a NIfTI path is read in
the canonical orientation; an interrupted run resumes to the uninterrupted result; bad input is one
clear PadisError; the README's example runs."""

import json
import runpy
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import padis3d
from padis3d import cli
from padis3d.errors import PadisError
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture

ROOT = Path(__file__).resolve().parents[2]
QUICK = dict(size=16, steps=2, band=4, seed=3, precision="fp32")


@pytest.fixture
def zyx():
    """A (z, y, x) volume in HU-like units with structure in every axis."""
    rng = np.random.default_rng(1)
    v = np.full((10, 16, 16), -800.0, np.float32)
    v[2:8, 3:13, 4:12] = 60.0 + 30 * rng.standard_normal((6, 10, 8))
    v[:, 8, :] += 200.0
    return v


def test_array_call_equals_the_command_on_the_same_npy(files, zyx, tmp_path):  # noqa: F811
    np.save(tmp_path / "vol.npy", zyx)
    argv = ["reconstruct", "--task", "ct3d-parallel", "--views", "12", "--span-deg", "120",
            "--checkpoint", str(files / "tiny.pt"), "--input", str(tmp_path / "vol.npy"), "--size", "16",
            "--steps", "2", "--band", "4", "--seed", "3", "--precision", "fp32", "--no-progress"]
    assert cli.main([*argv, "--out", str(tmp_path / "cli")]) == 0
    expected = np.load(tmp_path / "cli" / "reconstruction.npy")
    report = json.loads((tmp_path / "cli" / "report.json").read_text())
    result = padis3d.reconstruct_volume(zyx, "ct3d-parallel", views=12, span_deg=120, prior=files / "tiny.pt",
                                        work_dir=tmp_path / "work", **QUICK)
    assert np.array_equal(result.in_units(0, len(zyx)), expected)
    assert result.metrics == report["metrics"]
    assert result.write(tmp_path / "api" / "rec").suffix == ".npy"
    assert np.array_equal(np.load(tmp_path / "api" / "rec.npy"), expected)
    in_memory = padis3d.reconstruct_volume(zyx, "ct3d-parallel", views=12, span_deg=120, prior=files / "tiny.pt",
                                           **QUICK)  # no work folder: a temporary one, numpy arrays back
    assert isinstance(in_memory.reconstruction, np.ndarray) and in_memory.work_dir is None
    assert np.array_equal(in_memory.in_units(0, len(zyx)), expected)
    assert set(result.metrics) == {"FBP-Hann", "dds"} and result.window == (float(zyx.min()), float(zyx.max()))
    assert result.memory["band_rows"]["prepare"] >= 1 and result.peak_rss_mb > 0
    assert set(result.timings_s) == {"prepare", "sample", "metrics"}


def test_nifti_path_is_read_in_the_canonical_orientation(files, zyx, tmp_path):  # noqa: F811
    """A NIfTI stored LPS-like (x flipped, y as stored): the library sees the canonical (z, y, x) SPL volume."""
    # SPL (z, y, x) -> RAS voxel order (i, j, k): transpose, then R->L and P->A flips undone
    ras = zyx[:, ::-1, ::-1].transpose(2, 1, 0)
    stored = ras[::-1]  # i runs toward L: affine x axis negative
    nib.save(nib.Nifti1Image(np.ascontiguousarray(stored), np.diag([-1.0, 1.0, 2.0, 1.0])), tmp_path / "v.nii.gz")
    window = (-1000.0, 1000.0)
    from_file = padis3d.reconstruct_volume(tmp_path / "v.nii.gz", "denoise", denoiser="dds", prior=files / "tiny.pt",
                                           noise=0.1, **QUICK)
    assert from_file.source.orientation_from == "affine" and "".join(from_file.source.stored_codes) != "SPL"
    assert np.array_equal(from_file.truth, np.clip((zyx - window[0]) / (window[1] - window[0]), 0, 1))
    from_array = padis3d.reconstruct_volume(zyx, "denoise", denoiser="dds", prior=files / "tiny.pt", noise=0.1,
                                            window=window, **QUICK)
    assert np.array_equal(from_file.reconstruction, from_array.reconstruction)
    from_file.write(tmp_path / "out")  # back in the file's own voxel order
    back = np.asarray(nib.load(tmp_path / "out.nii.gz").dataobj)
    assert back.shape == stored.shape
    assert np.allclose(back, from_file.in_units(0, len(zyx))[:, ::-1, ::-1].transpose(2, 1, 0)[::-1])


def test_resumed_run_equals_the_uninterrupted_one(files, zyx, tmp_path):  # noqa: F811
    common = dict(task="ct3d-parallel", views=12, prior=files / "tiny.pt", size=16, steps=3, band=4, seed=5,
                  precision="fp32", identity="same run")

    def stop_after_first_level(info):
        if info["stage"] == "sample" and info.get("i") == 0:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        padis3d.reconstruct_volume(zyx, work_dir=tmp_path / "w", callback=stop_after_first_level, **common)
    assert json.loads((tmp_path / "w" / "progress.json").read_text())["step"] == 1
    events = []
    resumed = padis3d.reconstruct_volume(zyx, work_dir=tmp_path / "w", callback=events.append, **common)
    whole = padis3d.reconstruct_volume(zyx, work_dir=tmp_path / "fresh", **common)
    assert resumed.resumed_from_step == 1 and resumed.prepared_reused and whole.resumed_from_step == 0
    assert {"stage": "sample", "start": 1, "n": 3} in events
    assert [e["i"] for e in events if "i" in e] == [1, 2]
    assert np.array_equal(np.asarray(resumed.reconstruction[...]), np.asarray(whole.reconstruction[...]))
    with pytest.raises(PadisError, match="holds a run at step 3 .*run key same run -> other"):
        padis3d.reconstruct_volume(zyx, work_dir=tmp_path / "w", **{**common, "identity": "other"})


@pytest.mark.parametrize("make, message", [
    (lambda v: v[0], r"shape \(16, 16\); a volume reconstruction needs a 3D \(z, y, x\) array"),
    (lambda v: np.where(np.arange(16) == 3, np.nan, v), "contains NaN or infinite values"),
    (lambda v: v[:, :, :12], "are 16x12 .*need square slices"),
    (lambda v: np.zeros_like(v), "is constant"),
])
def test_bad_input_is_one_clear_error(files, zyx, make, message):  # noqa: F811
    with pytest.raises(PadisError, match=message):
        padis3d.reconstruct_volume(make(zyx), prior=files / "tiny.pt", **QUICK)


def test_unknown_setting_is_refused(files, zyx):  # noqa: F811
    with pytest.raises(PadisError, match="unknown sampler setting.*stpes"):
        padis3d.reconstruct_volume(zyx, prior=files / "tiny.pt", stpes=3, size=16)


def test_readme_example_runs(tmp_path, monkeypatch):
    """docs/api/volume_example.py (the README's volume example) on a 32 x 32 x 12 cut of the bundled CT."""
    from padis3d.io.sample_data import chest_ct_path

    nib.save(nib.load(chest_ct_path()).slicer[::16, ::16, 60:72], tmp_path / "scan.nii.gz")
    example = ROOT / "docs" / "api" / "volume_example.py"
    assert len(example.read_text().splitlines()) <= 15
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(example))
    result = namespace["result"]
    assert result.shape == (12, 32, 32) and set(result.metrics) == {"FBP-Hann", "dds"}
    assert nib.load(tmp_path / "reconstruction.nii.gz").shape == (32, 32, 12)
    assert (tmp_path / "work" / "progress.json").exists()


def test_readme_shows_the_example_the_tests_run():
    """The README's "Python: a volume" block is docs/api/volume_example.py without its docstring."""
    code = (ROOT / "docs" / "api" / "volume_example.py").read_text().split('"""', 2)[2].strip()
    readme = (ROOT / "README.md").read_text()
    assert f"```python\n{code}\n```" in readme
