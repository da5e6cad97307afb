"""``padis3d train --downsample F``: the low-resolution training data of a two-scale prior is exactly
the block average of the full-resolution chest CT training block (slices 0-99, never the test
slices), and the factor reaches the checkpoint meta and the model card."""

from __future__ import annotations

import argparse

import pytest
import torch

from padis3d import load_prior
from padis3d.cli.train import _images, add_train_arguments
from padis3d.cli.train import main as train_main
from padis3d.training.data import block_downsample, chest_ct_training_volume


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return parser.parse_args(["--out", "unused", *argv])


@pytest.mark.slow
def test_cube_training_data_is_the_block_average_of_the_training_block():
    full, full_info = chest_ct_training_volume(32)
    low, extra, info = _images(parsed("--mode", "cube", "--downsample", "4"), 32)
    assert extra is None and low.shape == (1, 1, 25, 8, 8)
    by_hand = full.reshape(1, 1, 25, 4, 8, 4, 8, 4).double().mean((3, 5, 7))  # every 4x4x4 block's mean
    torch.testing.assert_close(low.double(), by_hand, rtol=0, atol=1e-6)
    assert info["slices"] == list(range(100)) and info["downsample"] == [4, 4, 4]
    assert info["full_shape"] == [100, 32, 32] and info["shape"] == [25, 8, 8]
    # 3 divides neither 100 nor 32: the last block along each axis averages the voxels it has
    low3, info3 = block_downsample(full, 3, full_info)
    assert low3.shape == (1, 1, 34, 11, 11) and info3["shape"] == [34, 11, 11]
    torch.testing.assert_close(low3[0, 0, -1, -1, -1].double(), full[0, 0, 99:, 30:, 30:].double().mean())
    torch.testing.assert_close(low3[0, 0, 0, 0, 0].double(), full[0, 0, :3, :3, :3].double().mean())
    torch.testing.assert_close(low3[0, 0, 33, 5, 2].double(), full[0, 0, 99:, 15:18, 6:9].double().mean())


def test_2d_training_data_is_averaged_in_plane_only():
    full, _, _ = _images(parsed("--mode", "patch", "--subset", "12"), 32)
    low, _, info = _images(parsed("--mode", "patch", "--subset", "12", "--downsample", "2"), 32)
    assert low.shape == (12, 1, 16, 16) and info["downsample"] == [2, 2]
    torch.testing.assert_close(low, full.reshape(12, 1, 16, 2, 16, 2).mean((3, 5)), rtol=0, atol=1e-6)


@pytest.mark.slow
def test_the_factor_is_in_the_checkpoint_meta_and_model_card(tmp_path):
    out = tmp_path / "low"
    assert train_main(["--mode", "cube", "--size", "16", "--downsample", "2", "--features", "8", "16",
                       "--patch-sizes", "4", "--batch", "2", "--steps", "1", "--no-progress", "--out", str(out)]) == 0
    prior = load_prior(out / "prior.pt")
    assert prior.meta["downsample"] == [2, 2, 2] and prior.image_shape == (50, 8, 8)
    assert prior.meta["run_options"]["downsample"] == 2
    assert "block average by [2, 2, 2]" in (out / "prior.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--downsample", "0"], "integer in 1..64"),
    (["--downsample", "x"], "expected an integer"),
    (["--mode", "slab", "--downsample", "2"], "--downsample is for --mode cube"),
])
def test_bad_factors_are_refused_in_one_line(tmp_path, capsys, argv, message):
    assert train_main([*argv, "--out", str(tmp_path / "run"), "--steps", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and not (tmp_path / "run").exists()
