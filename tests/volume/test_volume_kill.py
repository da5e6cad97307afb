"""A volume run killed with SIGKILL mid-way and rerun with the same command ends with exactly
the result of an uninterrupted run, and never leaves a corrupt output behind."""

import os
import signal
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import pytest

from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture
from tests.volume.test_volume_cli import volume  # noqa: F401


def command(files, volume, out):  # noqa: F811
    return [sys.executable, "-m", "padis3d.cli", "reconstruct", "--task", "denoise", "--denoiser", "dds", "--checkpoint",
            str(files / "tiny.pt"), "--input", str(volume), "--size", "16", "--steps", "12", "--band", "4",
            "--threads", "1", "--no-progress", "--out", str(out)]


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_uninterrupted_result(files, volume, tmp_path):  # noqa: F811
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    subprocess.run(command(files, volume, tmp_path / "full"), check=True, env=env, capture_output=True)
    expected = np.asarray(nib.load(tmp_path / "full" / "reconstruction.nii.gz").dataobj)

    out = tmp_path / "cut"
    proc = subprocess.Popen(command(files, volume, out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    progress = out / "work" / "progress.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if progress.exists() and '"step": 3' in progress.read_text():
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "reconstruction.nii.gz").exists()  # nothing half-written
    assert not list(out.glob(".*.tmp*"))
    rerun = subprocess.run(command(files, volume, out), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert np.array_equal(np.asarray(nib.load(out / "reconstruction.nii.gz").dataobj), expected)
