"""DDP with 2 CPU processes (gloo, torchrun) matches one process fed the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from padis3d.priors.checkpoint import read_checkpoint
from padis3d.training.loop import new_state, train
from tests.prior.prior_helpers import ddp_setup

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def test_two_process_ddp_equals_single_process(tmp_path):
    cfg, sampler, s = ddp_setup()
    single = train(new_state(cfg, s), sampler, s, tmp_path / "single", {"source": "synthetic"})
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(HERE / "ddp_worker.py"), str(tmp_path / "ddp")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = read_checkpoint(tmp_path / "ddp" / "state.pt")
    assert ddp["meta"]["world_size"] == 2 and ddp["meta"]["steps"] == 3
    initial = new_state(cfg, s).model.state_dict()
    moved = 0
    for name, p in single.model.state_dict().items():
        torch.testing.assert_close(ddp["model"][name], p, rtol=1e-5, atol=1e-6, msg=name)
        moved += not torch.equal(p, initial[name])
    assert moved > 10
    # the logged global loss is the mean over both processes' shares
    for (_, l1, _), (_, l2, _) in zip(single.history, ddp["meta"]["history"]):
        assert abs(l1 - l2) < 1e-5 * max(1.0, abs(l1))


def test_train_cli_under_torchrun_exits_cleanly(tmp_path):
    """Both ranks of ``padis3d-train`` leave together and tear their process group down (exit 0)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "padis3d.cli.train", "--size", "16", "--features", "8", "16", "--patch-sizes", "8",
                           "--batch", "2", "--steps", "2", "--no-progress", "--out", str(tmp_path / "run")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = read_checkpoint(tmp_path / "run" / "state.pt")
    assert state["meta"]["world_size"] == 2 and state["meta"]["steps"] == 2
