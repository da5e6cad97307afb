"""Random-ellipse phantoms: shape, range, determinism, and that an ellipse is an ellipse."""

from __future__ import annotations

import numpy as np
import pytest

from padis3d.errors import PadisError
from padis3d.training.phantoms import (EllipseSettings, ellipse_mask, ellipse_training_images, pixel_grid,
                                       random_ellipses, random_ellipsoids, random_rotation)


def test_shapes_range_and_determinism():
    a = random_ellipses(5, 32, seed=3)
    assert a.shape == (5, 32, 32) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1 and (a > 0).any(axis=(1, 2)).all()
    assert np.array_equal(a, random_ellipses(5, 32, seed=3))
    assert np.array_equal(a[:3], random_ellipses(3, 32, seed=3))  # a larger set extends a smaller one
    assert not np.array_equal(a, random_ellipses(5, 32, seed=4))
    assert not np.array_equal(a[0], a[1])
    v = random_ellipsoids(2, (8, 12, 16), seed=1)
    assert v.shape == (2, 8, 12, 16) and 0 <= v.min() and v.max() <= 1 and (v > 0).any()


@pytest.mark.parametrize("angle", [0.0, 0.4, 1.3])
def test_ellipse_area_is_pi_a_b_and_rotation_moves_it(angle):
    n = 256
    grid = pixel_grid((n, n))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    a, b = 0.5, 0.2  # normalised semi-axes: 64 and 25.6 pixels
    mask = ellipse_mask(grid, np.array([0.1, -0.05]), np.array([a, b]), rot)
    expected = np.pi * (a * n / 2) * (b * n / 2)
    assert abs(mask.sum() - expected) / expected < 0.01
    # the long axis points along the rotation's first column: the extent along it is 2a
    y, x = np.nonzero(mask)
    pts = np.stack([(2 * y + 1) / n - 1 - 0.1, (2 * x + 1) / n - 1 + 0.05])
    along, across = rot[:, 0] @ pts, rot[:, 1] @ pts
    assert abs(np.abs(along).max() - a) < 2 / n and abs(np.abs(across).max() - b) < 2 / n


def test_ellipsoid_volume_is_four_thirds_pi_abc():
    n = 64
    rng = np.random.default_rng(0)
    rot = random_rotation(rng, 3)
    assert np.allclose(rot @ rot.T, np.eye(3)) and np.isclose(np.linalg.det(rot), 1)
    axes = np.array([0.6, 0.4, 0.3])
    mask = ellipse_mask(pixel_grid((n, n, n)), np.zeros(3), axes, rot)
    expected = 4 / 3 * np.pi * np.prod(axes * n / 2)
    assert abs(mask.sum() - expected) / expected < 0.02


def test_one_ellipse_per_image_has_the_drawn_intensity():
    s = EllipseSettings(count=(1, 1), intensity=(0.5, 0.5))
    img = random_ellipses(3, 32, seed=0, settings=s)
    assert set(np.unique(img)) <= {0.0, 0.5}


def test_training_images_and_bad_settings():
    images, info = ellipse_training_images(4, 16, seed=2)
    assert tuple(images.shape) == (4, 1, 16, 16) and info["images"] == 4 and info["seed"] == 2
    assert info["generator"]["count"] == list(EllipseSettings().count)
    with pytest.raises(PadisError):
        random_ellipses(1, 16, settings=EllipseSettings(intensity=(0.0, 2.0)))
    with pytest.raises(PadisError):
        random_ellipses(1, 16, settings=EllipseSettings(count=(3, 2)))


def test_train_cli_ellipses_source(tmp_path):
    from padis3d.priors.checkpoint import read_checkpoint
    from tests.reliability.helpers import run_cli

    tiny = ["--features", "16", "32", "--size", "16", "--patch-sizes", "8", "16", "--batch", "2", "--steps", "1",
            "--threads", "1", "--no-progress"]
    rc, err = run_cli(["train", "--data", "ellipses", "--ellipse-images", "6", "--out", str(tmp_path / "r"), *tiny])
    assert rc == 0, err
    meta = read_checkpoint(tmp_path / "r" / "state.pt")["meta"]
    assert meta["data"]["images"] == 6 and meta["data"]["generator"]["axes"] == list(EllipseSettings().axes)
    assert meta["run_options"]["ellipse_images"] == 6
    assert "* phantoms: 6 images, seed 0, generator" in (tmp_path / "r" / "prior.md").read_text()
    rc, err = run_cli(["train", "--ellipse-images", "6", "--out", str(tmp_path / "s"), *tiny])
    assert rc == 2 and "--ellipse-images is for --data ellipses" in err
