"""Determinism (same seed, two processes, bit-identical result; the report records seed and
versions), peak memory under ``--memory-budget-mb`` (2D and 3D), and a full disk while the
volume sampler writes its zarr state (a clear error; the committed step survives)."""

from __future__ import annotations

import errno
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.reliability.helpers import ct_volume, env, nifti_volume, run_cli, run_subprocess
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture

OVERHEAD_MB = 32
"""Documented fixed overhead of a budgeted run over the same command on a tiny input: allocator
slack and the image-sized arrays the budget does not cover (state, measurements, baseline,
output: 0.25 MiB each at 256², 0.5 MiB per volume copy at 8x128x128). The budget covers the
tiles in flight, their positions, outputs and gradients, and the network's activations per tile
(measured as the tensors autograd saves, an upper bound for forward-only passes). Measured on a
loaded 2-core CPU: 2D 256², 4 MiB budget: +11 MiB (without the activation term, or without a
budget: ~+310 MiB); 3D 8x128x128, 8 MiB budget: +30 MiB (no budget: +47 MiB). The 3D overhead
grows with the volume (the report's whole-volume SSIM holds ~12 float64 copies), so keep the
volume small here."""


def peak_rss_mb(argv: list[str]) -> float:
    """Peak RSS (MiB) of ``python -m padis3d.cli ARGV`` run by a fresh wrapper process, so
    RUSAGE_CHILDREN holds that one child only."""
    wrapper = ("import json, resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, "
               "text=True); print(json.dumps([p.returncode, p.stderr[-2000:], "
               "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))")
    done = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "padis3d.cli", *argv], env=env(),
                          capture_output=True, text=True, check=True)
    rc, err, kib = json.loads(done.stdout)
    assert rc == 0, err
    return kib / 1024


@pytest.mark.slow
def test_same_seed_is_bit_identical_across_processes_and_the_report_says_how(files, tmp_path):  # noqa: F811
    import monai
    import torch

    argv = ["reconstruct", "--task", "ct", "--views", "8", "--checkpoint", str(files / "tiny.pt"), "--input",
            str(files / "image.npy"), "--size", "32", "--steps", "3", "--inner", "2", "--seed", "7", "--threads", "1",
            "--no-progress"]
    for name in ("a", "b"):
        proc = run_subprocess([*argv, "--out", str(tmp_path / name)])
        assert proc.returncode == 0, proc.stderr
    a, b = (np.load(tmp_path / n / "reconstruction.npy") for n in "ab")
    assert a.tobytes() == b.tobytes() and a.std() > 0
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["seed"] == 7 and report["settings"]["seed"] == 7
    assert report["versions"]["torch"] == torch.__version__ and report["versions"]["monai"] == monai.__version__
    assert {"padis3d", "numpy"} <= set(report["versions"])
    assert json.loads((tmp_path / "b" / "report.json").read_text())["metrics"] == report["metrics"]


@pytest.mark.slow
def test_2d_peak_memory_stays_within_budget_plus_overhead(files, tmp_path):  # noqa: F811
    np.save(tmp_path / "big.npy", np.random.default_rng(0).uniform(0, 1, (256, 256)).astype(np.float32))
    common = ["reconstruct", "--task", "deblur", "--checkpoint", str(files / "tiny.pt"), "--steps", "1", "--inner",
              "1", "--threads", "1", "--no-progress"]
    base = peak_rss_mb([*common, "--input", str(files / "image.npy"), "--size", "32", "--out", str(tmp_path / "s")])
    budget = 4
    peak = peak_rss_mb([*common, "--input", str(tmp_path / "big.npy"), "--size", "256", "--tile", "16",
                        "--memory-budget-mb", str(budget), "--out", str(tmp_path / "b")])
    assert peak - base <= budget + OVERHEAD_MB, (base, peak)


@pytest.mark.slow
def test_3d_peak_memory_stays_within_budget_plus_overhead(files, tmp_path):  # noqa: F811
    small = nifti_volume(tmp_path / "small.nii.gz", ct_volume((16, 16, 8)))
    big = nifti_volume(tmp_path / "big.nii.gz", ct_volume((128, 128, 8)))
    common = ["reconstruct", "--task", "denoise", "--denoiser", "dds", "--checkpoint", str(files / "tiny.pt"), "--steps", "1", "--band",
              "4", "--tile", "16", "--threads", "1", "--no-progress"]
    base = peak_rss_mb([*common, "--input", str(small), "--size", "16", "--out", str(tmp_path / "s")])
    budget = 8
    peak = peak_rss_mb([*common, "--input", str(big), "--size", "128", "--memory-budget-mb", str(budget),
                        "--out", str(tmp_path / "b")])
    assert peak - base <= budget + OVERHEAD_MB, (base, peak)


def test_disk_full_while_writing_zarr_state_is_a_clear_error_and_keeps_the_committed_step(files, tmp_path,  # noqa: F811
                                                                                           monkeypatch):
    import zarr.storage

    vol = nifti_volume(tmp_path / "vol.nii.gz", ct_volume())
    argv = ["reconstruct", "--task", "denoise", "--denoiser", "dds", "--checkpoint", str(files / "tiny.pt"), "--input", str(vol),
            "--size", "16", "--steps", "4", "--band", "4", "--seed", "3", "--no-progress"]
    assert run_cli([*argv, "--out", str(tmp_path / "full")])[0] == 0
    out = tmp_path / "cut"
    progress = out / "work" / "progress.json"
    real_set = zarr.storage.LocalStore.set

    async def set_until_full(self, key, value):
        if progress.exists() and json.loads(progress.read_text())["step"] >= 2 and "state" in str(self.root):
            raise OSError(errno.ENOSPC, "No space left on device")
        return await real_set(self, key, value)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", set_until_full)
    rc, err = run_cli([*argv, "--out", str(out)])
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "no space left on the device while writing the work state in" in err and str(out / "work") in err
    assert "resumes from the last committed step (2)" in err
    assert json.loads(progress.read_text())["step"] == 2  # the committed progress is intact
    assert not (out / "reconstruction.nii.gz").exists() and not (out / "report.json").exists()

    monkeypatch.setattr(zarr.storage.LocalStore, "set", real_set)  # space freed: the same command resumes
    rc, err = run_cli([*argv, "--out", str(out)])
    assert rc == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["resumed_from_step"] == 2 and report["seed"] == 3 and "torch" in report["versions"]
    import nibabel as nib
    expected, got = (np.asarray(nib.load(d / "reconstruction.nii.gz").dataobj) for d in (tmp_path / "full", out))
    assert np.array_equal(expected, got)


def test_disk_full_in_an_atomic_write_keeps_the_previous_file(tmp_path, monkeypatch):
    from pathlib import Path

    from padis3d.atomic import write_json
    from padis3d.errors import PadisError

    target = tmp_path / "progress.json"
    write_json(target, {"step": 5})

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(PadisError, match=r"no space left on the device while writing .*progress.json.*the previous "
                                         r"file is unchanged"):
        write_json(target, {"step": 6})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"step": 5}
    assert [p.name for p in tmp_path.iterdir()] == ["progress.json"]  # no temporary file left


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_outputs_get_the_permissions_of_a_plain_file(tmp_path, umask):
    import os

    from padis3d.atomic import write_json

    old = os.umask(umask)
    try:
        write_json(tmp_path / "report.json", {"a": 1})
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    mode = lambda name: (tmp_path / name).stat().st_mode & 0o777  # noqa: E731
    assert mode("report.json") == mode("plain.txt") == 0o666 & ~umask
