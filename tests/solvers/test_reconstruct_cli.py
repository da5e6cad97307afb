"""``padis3d reconstruct`` / ``sample`` end to end on a tiny prior: outputs, determinism,
interruption and clear errors."""

import json

import numpy as np
import pytest
import torch

from padis3d import cli
from padis3d.priors.checkpoint import FORMAT_PRIOR, atomic_save
from padis3d.priors.network import EDMDenoiser
from tests.prior.prior_helpers import blob_images, perturbed, tiny_config


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("recon")
    model = perturbed(EDMDenoiser(tiny_config()))
    atomic_save({"format": FORMAT_PRIOR, "format_version": 1, "config": tiny_config().to_dict(),
                 "ema": model.state_dict(), "meta": {"image_shape": [32, 32], "patch_sizes": [16, 8]}},
                root / "tiny.pt")
    np.save(root / "image.npy", blob_images(1, 32)[0, 0].numpy())
    return root


def run(files, out, *extra):
    return cli.main(["reconstruct", "--checkpoint", str(files / "tiny.pt"), "--input", str(files / "image.npy"),
                     "--size", "32", "--steps", "3", "--inner", "2", "--no-progress", "--out", str(out), *extra])


@pytest.mark.parametrize("task", ["ct", "deblur", "sr"])
def test_reconstruct_writes_result_report_and_figure(files, tmp_path, task):
    assert run(files, tmp_path / task, "--task", task, *["--views", "8"] * (task == "ct")) == 0  # --views: CT only
    report = json.loads((tmp_path / task / "report.json").read_text())
    result = np.load(tmp_path / task / "reconstruction.npy")
    assert result.shape == (32, 32) and np.isfinite(result).all()
    # the default sampler is DDS (one evaluation per level); at 32² the held-out choice does not apply
    assert report["tile"] == [16, 16] and report["settings"]["steps"] == 3 and report["evaluations"] == 3
    assert report["settings"]["sampler"] == "dds" and report["holdout_choice"] is None
    assert set(report["metrics"]) == {"dds", {"ct": "FBP-Hann", "deblur": "blurred", "sr": "bicubic"}[task]}
    assert (tmp_path / task / "comparison.png").stat().st_size > 0


def test_the_default_at_128_is_the_held_out_choice_and_records_it(files, tmp_path):
    assert run(files, tmp_path / "c", "--task", "deblur", "--size", "128") == 0
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    choice = report["holdout_choice"]
    assert set(choice["heldout_loss"]) == {"dds", "dds+tv", "admm-tv"}
    assert choice["chosen"] == min(choice["heldout_loss"], key=choice["heldout_loss"].get)
    assert choice["split"]["unit"] == "measurements" and choice["split"]["fraction"] == 0.15
    assert set(report["metrics"]) == {choice["chosen"], "blurred"}
    # two DDS candidates on the kept part, and the final run unless ADMM-TV won; 3 levels each
    assert report["evaluations"] == 3 * (2 + choice["chosen"].startswith("dds"))
    assert run(files, tmp_path / "off", "--task", "deblur", "--size", "128", "--no-holdout-choice") == 0
    off = json.loads((tmp_path / "off" / "report.json").read_text())
    assert off["holdout_choice"] is None and set(off["metrics"]) == {"dds", "blurred"}
    if choice["chosen"] == "dds":  # the same run: the choice returns the candidate run on all measurements
        assert np.array_equal(np.load(tmp_path / "c" / "reconstruction.npy"),
                              np.load(tmp_path / "off" / "reconstruction.npy"))


def test_same_seed_same_result_other_seed_other_result(files, tmp_path):
    for name, seed in [("a", 3), ("b", 3), ("c", 4)]:
        assert run(files, tmp_path / name, "--seed", str(seed), "--tile", "whole") == 0
    a, b, c = (np.load(tmp_path / n / "reconstruction.npy") for n in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_interrupt_leaves_no_output(files, tmp_path, monkeypatch):
    from padis3d.solvers import reconstruct

    def interrupt(self, info):
        raise KeyboardInterrupt
    monkeypatch.setattr(reconstruct.ProgressBar, "__call__", interrupt)
    assert run(files, tmp_path / "out") == 130
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("extra, message", [
    (["--steps", "0"], "argument --steps: must be an integer in 1.."),  # refused at parse time
    (["--device", "cuda"], "CUDA is not available"),
    (["--sigma-min", "5"], "sigma_min < sigma_max"),
    (["--tile", "9"], "multiples of 2"),
])
def test_bad_options_fail_clearly(files, tmp_path, capsys, extra, message):
    if extra[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert run(files, tmp_path / "bad", *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_missing_checkpoint_and_mismatched_measurements(files, tmp_path, capsys):
    assert cli.main(["reconstruct", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    np.save(tmp_path / "sino.npy", np.zeros((7, 64), np.float32))
    assert run(files, tmp_path / "o", "--measured", str(tmp_path / "sino.npy"), "--views", "8") == 2
    assert "geometry gives (8, 64)" in capsys.readouterr().err


def test_sample_writes_images(files, tmp_path):
    assert cli.main(["sample", "--checkpoint", str(files / "tiny.pt"), "--size", "32", "--count", "2",
                     "--steps", "3", "--inner", "1", "--no-progress", "--out", str(tmp_path)]) == 0
    from skimage.io import imread
    images = sorted(tmp_path.glob("sample_*.png"))
    assert len(images) == 2 and imread(images[0]).shape == (32, 32)
