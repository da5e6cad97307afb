"""`padis3d train` end to end on small inputs: modes, resume, export, clear errors."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from padis3d.priors.checkpoint import load_prior, read_checkpoint
from padis3d.cli.train import add_train_arguments, main, run_train
from tests.prior.prior_helpers import blob_images

SMALL = ["--features", "16", "32", "--size", "16", "--patch-sizes", "8", "16", "--batch", "2", "--no-progress"]


@pytest.fixture
def npy(tmp_path):
    path = tmp_path / "imgs.npy"
    np.save(path, blob_images(4, 24)[:, 0].numpy())
    return str(path)


def test_patch_run_resume_and_export(tmp_path, npy, capsys):
    out, exp = tmp_path / "run", tmp_path / "ship" / "p.pt"
    assert main(["--data", npy, "--out", str(out), "--steps", "3", "--export", str(exp), *SMALL]) == 0
    assert main(["--data", npy, "--out", str(out), "--steps", "3", *SMALL]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["--data", npy, "--out", str(out), "--steps", "5", "--resume", *SMALL]) == 0
    meta = read_checkpoint(out / "state.pt")["meta"]
    assert meta["steps"] == 5 and len(meta["commands"]) == 2 and meta["data"]["format"] == "npy"
    prior = load_prior(exp)
    assert prior.meta["steps"] == 3 and prior.config.position_axes == (0, 1)
    assert exp.with_suffix(".md").read_text().count("padis3d train ") == 1  # a command that reruns (issue 13)
    assert exp.with_suffix(".loss.png").is_file()


def test_whole_image_and_no_positions_modes(tmp_path, npy):
    assert main(["--data", npy, "--out", str(tmp_path / "w"), "--steps", "2", "--mode", "whole", *SMALL]) == 0
    whole = load_prior(tmp_path / "w" / "prior.pt")
    assert whole.config.position_axes == () and whole.meta["patch_sizes"] == [None]
    assert main(["--data", npy, "--out", str(tmp_path / "n"), "--steps", "2", "--no-positions", *SMALL]) == 0
    assert load_prior(tmp_path / "n" / "prior.pt").config.position_axes == ()


def test_slab_mode_on_the_default_data(tmp_path):
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "s"), "--steps", "1", "--mode", "slab", *SMALL])
    assert run_train(args) == 0
    prior = load_prior(tmp_path / "s" / "prior.pt")
    assert prior.config.channels == 3 and prior.config.position_axes == (1, 2)  # in-plane; z is opt-in
    assert prior.meta["data"]["slices"] == list(range(100))  # training slices only
    assert prior.meta["data"]["slice_jump_slabs"] is False
    args = parser.parse_args(["--out", str(tmp_path / "j"), "--steps", "1", "--mode", "slab", "--slab-jumps", *SMALL])
    assert run_train(args) == 0
    assert load_prior(tmp_path / "j" / "prior.pt").meta["data"]["slice_jump_slabs"] is True


def test_bad_arguments_give_clear_errors(tmp_path, npy, capsys):
    assert main(["--data", npy, "--out", str(tmp_path / "r"), "--resume", *SMALL]) == 2
    assert "state.pt does not exist" in capsys.readouterr().err
    assert main(["--data", npy, "--out", str(tmp_path / "r"), "--patch-sizes", "9", "--features", "16", "32", "--size", "24", "--steps", "1"]) == 2
    assert "divisible by 2" in capsys.readouterr().err
    assert main(["--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_presets_name_the_library_configs():
    from padis3d.priors.network import CPU_CONFIG, PAPER_GPU_CONFIG
    from padis3d.cli.train import PRESETS, network_config

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    args = parser.parse_args(["--out", "x"])
    assert network_config(PRESETS["paper-gpu"]["network"], args) == PAPER_GPU_CONFIG
    assert network_config(PRESETS["cpu"]["network"], args, channels=3).channels == 3
    assert PRESETS["paper-gpu"]["size"] == 256 and PRESETS["paper-gpu"]["patch_sizes"] == [16, 32, 56]
    small = network_config("CPU_CONFIG", parser.parse_args(["--out", "x", "--features", "8", "16"]))
    assert small.features == (8, 16) and small.norm_num_groups == 8 and small != CPU_CONFIG


def test_sigterm_writes_a_checkpoint_and_exits_cleanly(tmp_path, npy):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.Popen([sys.executable, "-m", "padis3d.cli.train", "--data", npy, "--out", str(tmp_path / "t"),
                             "--steps", "1000000", *SMALL], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("padis3d train:")  # the loop (and its SIGTERM handler) starts next
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    meta = read_checkpoint(tmp_path / "t" / "state.pt")["meta"]
    assert 0 < meta["steps"] < 1000000
