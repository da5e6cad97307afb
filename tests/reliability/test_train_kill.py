"""``padis3d train`` killed with SIGKILL at an arbitrary moment (checkpoints every step, so
the kill often lands mid-write) and rerun with ``--resume``: every file left in the run
folder loads, and the resumed run ends with bit-identical weights to an uninterrupted one.
(The volume reconstruction's kill/resume is tests/volume/test_volume_kill.py.)"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from padis3d.priors.checkpoint import read_checkpoint
from tests.prior.prior_helpers import blob_images
from tests.reliability.helpers import env

STEPS = 20


def command(data, out, *extra):
    return [sys.executable, "-m", "padis3d.cli.train", "--data", str(data), "--out", str(out), "--steps", str(STEPS),
            "--features", "16", "32", "--size", "16", "--patch-sizes", "8", "16", "--batch", "2", "--seed", "5",
            "--checkpoint-minutes", "0", "--threads", "1", "--no-progress", *extra]


def weights(path):
    ckpt = read_checkpoint(path)
    return ckpt["model"], ckpt["ema"], ckpt["meta"]["steps"]


def assert_every_file_loads(folder) -> None:
    """Whatever the kill left behind is whole: checkpoints load, PNGs decode, model cards read."""
    from skimage.io import imread

    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert "state.pt" in names, names
    for p in folder.iterdir():
        if p.name.startswith("."):
            continue  # an atomic writer's temporary file: never read, removed by the next run
        if p.suffix == ".pt":
            assert read_checkpoint(p)["meta"]["steps"] >= 1
        elif p.suffix == ".png":
            assert imread(p).ndim == 3
        elif p.suffix == ".md":
            assert "padis3d" in p.read_text()
        else:
            raise AssertionError(f"unexpected output {p.name}")


@pytest.mark.slow
def test_sigkill_then_resume_matches_the_uninterrupted_run(tmp_path):
    data = tmp_path / "imgs.npy"
    np.save(data, blob_images(4, 16)[:, 0].numpy())
    subprocess.run(command(data, tmp_path / "full"), check=True, env=env(), capture_output=True)
    model, ema, steps = weights(tmp_path / "full" / "state.pt")
    assert steps == STEPS

    rng = random.Random(8)  # a reproducible "random" moment: after step k, plus a few milliseconds
    kill_after, delay = rng.randint(3, 10), rng.uniform(0.0, 0.15)
    out = tmp_path / "cut"
    proc = subprocess.Popen(command(data, out), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if read_checkpoint(out / "state.pt")["meta"]["steps"] >= kill_after:
                break
        except Exception:  # noqa: BLE001 - not written yet
            pass
        time.sleep(0.01)
    time.sleep(delay)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = weights(out / "state.pt")[2]
    assert kill_after <= killed_at < STEPS
    assert_every_file_loads(out)

    rerun = subprocess.run(command(data, out, "--resume"), env=env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"from step {killed_at} to {STEPS}" in rerun.stdout
    assert_every_file_loads(out)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # stale temporary files removed
    resumed_model, resumed_ema, steps = weights(out / "state.pt")
    assert steps == STEPS
    for expected, got in [(model, resumed_model), (ema, resumed_ema)]:
        assert expected.keys() == got.keys()
        for name in expected:
            assert torch.equal(expected[name], got[name]), name
    full_prior, resumed_prior = (read_checkpoint(d / "prior.pt")["ema"] for d in (tmp_path / "full", out))
    assert all(torch.equal(full_prior[name], resumed_prior[name]) for name in full_prior)
