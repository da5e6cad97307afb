"""Peak memory of ``padis3d reconstruct --task denoise`` does not grow with the volume: two
volumes 4x apart in slices, the same budget, each run in a subprocess whose peak resident set
is read from ``/proc/PID/status`` (``VmHWM``: polled while it runs, and reported by the
command itself at the end). Not ``wait4``'s ``ru_maxrss``: Linux carries the spawning
process's pre-``exec`` address space into it, i.e. this test process and its arrays.

Sizes: 256x256 slices (read and resized to 128x128 band by band), 16 vs 64 slices, so the
input grows by 48 MiB of float32 and each 128x128 work volume by 3 MiB. Holding the input
once, or a few whole work volumes (as the in-memory path did: truth, measurements, baseline,
result and float64 metric copies), would add 50-100 MiB. Run-to-run noise of the peak on
this machine is under 10 MiB (allocator and thread timing), hence the 24 MiB bound."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from padis3d.memory import wait_polling_peak
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture

GROWTH_LIMIT_MB = 24


def peak_rss_mb(cmd: list[str], report: str) -> float:
    """Run ``cmd``; its peak resident memory in MiB (max of polling and its own report)."""
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": os.getcwd()}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    polled = wait_polling_peak(proc)
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    return max(polled, json.loads(open(report).read())["memory"]["peak_rss_mb"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")
def test_peak_memory_does_not_grow_with_the_volume(files, tmp_path):  # noqa: F811
    peaks = {}
    for nz in (16, 64):
        z, y, x = np.mgrid[0:nz, 0:256, 0:256].astype(np.float32)
        np.save(tmp_path / f"v{nz}.npy", np.sin(z / 4) * np.cos(y / 9) + 0.3 * np.sin(x / 5))
        del z, y, x
        out = tmp_path / f"o{nz}"
        peaks[nz] = peak_rss_mb([
            sys.executable, "-m", "padis3d.cli", "reconstruct", "--task", "denoise", "--denoiser", "dds", "--checkpoint",
            str(files / "tiny.pt"), "--input", str(tmp_path / f"v{nz}.npy"), "--size", "128", "--steps", "1",
            "--band", "8", "--threads", "1", "--memory-budget-mb", "8", "--no-progress", "--out", str(out)],
            str(out / "report.json"))
    print(f"peak RSS MiB by slices: {peaks}")
    assert peaks[64] - peaks[16] < GROWTH_LIMIT_MB, peaks
