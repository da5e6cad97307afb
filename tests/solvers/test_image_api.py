"""``padis3d.reconstruct_image``, the library call behind ``padis3d reconstruct`` for 2D tasks: the same
file gives the command's result bit for bit; an array is reconstructed like the file that holds it;
bad input is one clear PadisError."""

import json

import numpy as np
import pytest

import padis3d
from padis3d import cli
from padis3d.errors import PadisError
from tests.solvers.test_reconstruct_cli import files  # noqa: F401 - the tiny prior fixture


@pytest.fixture
def image(tmp_path):
    rng = np.random.default_rng(2)
    x = np.full((16, 16), -700.0, np.float32)
    x[4:12, 3:13] = 50.0 + 20 * rng.standard_normal((8, 10))
    np.save(tmp_path / "img.npy", x)
    return x


def test_library_call_equals_the_command(files, image, tmp_path):  # noqa: F811
    argv = ["reconstruct", "--task", "deblur", "--kernel", "3", "--sampler", "dds", "--checkpoint", str(files / "tiny.pt"),
            "--input", str(tmp_path / "img.npy"), "--size", "16", "--steps", "2", "--seed", "2", "--threads", "1",
            "--no-progress", "--out", str(tmp_path / "cli")]
    assert cli.main(argv) == 0
    expected = np.load(tmp_path / "cli" / "reconstruction.npy")
    report = json.loads((tmp_path / "cli" / "report.json").read_text())
    result = padis3d.reconstruct_image(tmp_path / "img.npy", "deblur", kernel=3, prior=files / "tiny.pt", size=16,
                                       sampler="dds", steps=2, seed=2)
    assert np.array_equal(result.in_units(), expected)
    assert result.metrics == report["metrics"] and result.settings.to_dict() == report["settings"]
    assert result.write(tmp_path / "api" / "rec").suffix == ".npy"
    assert np.array_equal(np.load(tmp_path / "api" / "rec.npy"), expected)
    from_array = padis3d.reconstruct_image(image, "deblur", kernel=3, prior=files / "tiny.pt", size=16,
                                           sampler="dds", steps=2, seed=2)
    assert from_array.truth.min() == 0 and from_array.truth.max() == 1
    assert np.allclose(from_array.in_units(), expected, atol=1e-3)
    assert set(result.metrics) == {"blurred", "dds"} and result.seconds > 0 and result.peak_rss_mb > 0


@pytest.mark.parametrize("make, message", [
    (lambda x: np.stack([x, x]), r"shape \(2, 16, 16\); a 2D reconstruction needs an \(H, W\) image"),
    (lambda x: np.where(x > 0, np.inf, x), "contains NaN or infinite values"),
    (lambda x: np.zeros_like(x), "is constant"),
    (lambda x: x[:5], "too small to reconstruct"),
])
def test_bad_input_is_one_clear_error(files, image, make, message):  # noqa: F811
    with pytest.raises(PadisError, match=message):
        padis3d.reconstruct_image(make(image), "deblur", prior=files / "tiny.pt", size=16, steps=1)
