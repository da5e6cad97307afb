"""Training never writes a corrupt prior and never loses a run (issue 13, classes 6 and 7):
non-finite weights are refused at the checkpoint, nonsense options are refused instead of being
replaced by defaults, and Ctrl-C (SIGINT) checkpoints like SIGTERM and exits 130."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from padis3d.errors import PadisError
from padis3d.priors.checkpoint import read_checkpoint
from padis3d.training.data import PatchSampler
from padis3d.training.loop import TrainSettings, new_state, save_checkpoints
from tests.prior.prior_helpers import blob_images, tiny_config
from tests.reliability.helpers import assert_clean_failure, env, run_cli

TRAIN = ["--features", "16", "32", "--size", "16", "--patch-sizes", "8", "16", "--batch", "2", "--threads", "1",
         "--no-progress"]


@pytest.fixture
def npy(tmp_path):
    path = tmp_path / "imgs.npy"
    np.save(path, blob_images(4, 16)[:, 0].numpy())
    return path


def test_non_finite_weights_are_never_written(tmp_path):
    sampler = PatchSampler(blob_images(2, 16), [8], batch=2)
    state = new_state(tiny_config(), TrainSettings())
    save_checkpoints(state, {"history": [], "steps": 0}, tmp_path, [])
    good = read_checkpoint(tmp_path / "prior.pt")["ema"]
    with torch.no_grad():
        next(state.ema.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(PadisError, match="not finite: nothing was written"):
        save_checkpoints(state, {"history": [], "steps": 1}, tmp_path, [tmp_path / "export.pt"])
    kept = read_checkpoint(tmp_path / "prior.pt")["ema"]
    assert all(torch.equal(good[k], kept[k]) for k in good) and not (tmp_path / "export.pt").exists()
    assert sampler.sizes == [8]


@pytest.mark.parametrize("options, fragment", [
    (["--patch-probs", "0.9", "0.9"], "must sum to 1"),
    (["--patch-probs", "1.0"], "gives 1 values for 2 patch sizes"),
    (["--batch-sizes", "2"], "gives 1 values for 2 patch sizes"),
    (["--grad-clip", "nan"], "--grad-clip"),
    (["--steps", "0"], "--steps"),
    (["--steps", "-5"], "--steps"),
    (["--size", "0"], "--size"),
    (["--batch", "0"], "--batch"),
    (["--ema-halflife", "0"], "--ema-halflife"),
    (["--lr", "-1"], "--lr"),
    (["--features", "0"], "--features"),
    (["--res-blocks", "-1"], "--res-blocks"),
    (["--threads", "0"], "--threads"),
])
def test_nonsense_training_options_are_refused(tmp_path, npy, options, fragment):
    rc, err = run_cli(["train", "--data", str(npy), "--out", str(tmp_path / "run"), "--steps", "1", *TRAIN, *options])
    assert_clean_failure(rc, err, fragment, tmp_path / "run", "train")


@pytest.mark.slow
def test_sigint_checkpoints_and_exits_130(tmp_path, npy):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "padis3d", "train", "--data", str(npy), "--out", str(out),
                             "--steps", "1000000", *TRAIN], env=env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("padis3d train:")  # the loop (and its handlers) start next
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    assert "stopped by SIGINT" in proc.stdout.read()
    steps = read_checkpoint(out / "state.pt")["meta"]["steps"]
    assert 0 < steps < 1000000 and read_checkpoint(out / "prior.pt")["meta"]["steps"] == steps
