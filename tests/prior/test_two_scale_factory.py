"""``two_scale_prior_from``: the fine prior as ``volume_prior_from`` builds it, the coarse prior over the
block-averaged shape with the factor read from its checkpoint meta; the result's block averages are
the coarse prior's denoised image and its detail the fine prior's (``B U = I``), also for a volume whose
slice count the factor does not divide."""

from __future__ import annotations

import pytest
import torch

from padis3d import load_prior
from padis3d.errors import PadisError
from padis3d.priors.checkpoint import FORMAT_PRIOR, atomic_save
from padis3d.priors.factory import two_scale_prior_from, volume_prior_from
from padis3d.priors.network import EDMDenoiser
from padis3d.priors.patch import PatchPrior
from padis3d.priors.two_scale import block_average, upsample_nearest
from tests.prior.prior_helpers import perturbed, tiny_config


def save(path, dims: int, patch: int, shape: list[int], downsample: list[int] | None, seed: int):
    """A tiny untrained (perturbed) prior file of ``dims`` spatial dimensions, in-plane positions."""
    config = tiny_config(features=(8, 16), spatial_dims=dims, position_axes=(1, 2) if dims == 3 else (0, 1))
    meta = {"image_shape": shape, "patch_sizes": [patch], "mode": "cube" if dims == 3 else "patch"}
    if downsample is not None:
        meta["downsample"] = downsample
    atomic_save({"format": FORMAT_PRIOR, "format_version": 1, "config": config.to_dict(),
                 "ema": perturbed(EDMDenoiser(config), seed).state_dict(), "meta": meta}, path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_scale")
    return {"fine": save(root / "fine.pt", 3, 8, [16, 16, 16], [1, 1, 1], 0),
            "coarse": save(root / "coarse.pt", 3, 4, [4, 4, 4], [4, 4, 4], 1),
            "coarse2d": save(root / "coarse2d.pt", 2, 4, [4, 4], [4, 4], 2),
            "full": save(root / "full.pt", 3, 4, [16, 16, 16], None, 3)}


def test_the_factor_comes_from_the_meta_and_each_scale_does_its_part(files):
    shape = (10, 16, 16)  # 10 slices: the last coarse slice is a partial block of 2
    two = two_scale_prior_from(files["fine"], files["coarse"], shape)
    assert two.factor == (4, 4, 4) and two.coarse.grid.shape == (3, 4, 4) and two.coarse.grid.tile == (4, 4, 4)
    assert two_scale_prior_from(files["fine"], files["coarse"], shape, tile=2).coarse.grid.tile == (2, 2, 2)
    assert isinstance(two.fine, PatchPrior) and two.fine.grid.shape == shape and two.fine.grid.tile == (8, 8, 8)
    assert two.state_shape == two.fine.state_shape
    x = two.embed(torch.rand(1, 1, *shape, generator=torch.Generator().manual_seed(0)))
    sigma = 0.4
    d = two.denoise(x, sigma, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)  # the same draws: the fine shift, the coarse shift, its padding noise
    fine_shift = two.fine.grid.random_shift(g)
    d_fine = two.fine.denoise(x, sigma, shift=fine_shift)
    coarse_shift = two.coarse.grid.random_shift(g)
    xc = two.coarse.embed(block_average(two.crop(x), 4))
    outside = two.coarse.embed(torch.zeros(1, 1, *two.coarse.grid.shape)) == 0  # noisy padding, by hand
    outside &= two.coarse.embed(torch.ones(1, 1, *two.coarse.grid.shape)) == 0
    assert outside.any()
    xc = xc + sigma / 8 * outside * torch.randn(xc.shape, generator=g)
    d_coarse = two.coarse.crop(two.coarse.denoise(xc, sigma / 8, shift=coarse_shift))
    image = two.crop(d)
    torch.testing.assert_close(block_average(image, 4), d_coarse, rtol=1e-5, atol=1e-6)  # B D = D_c(B x; σ/8)

    def detail(v):
        return v - upsample_nearest(block_average(v, 4), 4, shape)
    torch.testing.assert_close(detail(image), detail(two.crop(d_fine)), rtol=1e-5, atol=1e-6)  # (I - P) D = (I - P) D_f
    assert (block_average(two.crop(d_fine), 4) - d_coarse).abs().max() > 1e-3  # the coarse prior changed something
    # a loaded prior and a prior already built over the shape are accepted as the fine prior
    loaded = two_scale_prior_from(load_prior(files["fine"]), load_prior(files["coarse"]), shape)
    built = two_scale_prior_from(volume_prior_from(load_prior(files["fine"]), shape), files["coarse"], shape)
    for other in (loaded, built):
        torch.testing.assert_close(other.denoise(x, sigma, generator=torch.Generator().manual_seed(5)), d)


def test_a_2d_coarse_prior_averages_in_plane_and_bad_pairs_are_refused(files):
    two = two_scale_prior_from(files["fine"], files["coarse2d"], (10, 16, 16))
    assert two.factor == (1, 4, 4) and two.coarse.grid.shape == (10, 4, 4) and two.coarse.fold_axes == (0,)
    x = two.embed(torch.rand(1, 1, 10, 16, 16, generator=torch.Generator().manual_seed(1)))
    assert two.coarse_sigma(1.0, 3) == pytest.approx(1 / 4)
    assert torch.isfinite(two.denoise(x, 0.3, generator=torch.Generator().manual_seed(2))).all()
    with pytest.raises(PadisError, match="trained at full resolution"):
        two_scale_prior_from(files["fine"], files["full"], (10, 16, 16))
    with pytest.raises(PadisError, match="not the two-scale prior's"):
        two_scale_prior_from(volume_prior_from(load_prior(files["fine"]), (12, 16, 16)), files["coarse"], (10, 16, 16))
    with pytest.raises(PadisError, match="3D prior; it cannot be the coarse prior of a 2D image"):
        two_scale_prior_from(files["fine"], files["coarse"], (16, 16))


def test_the_coarse_tile_is_no_deeper_than_twice_the_coarse_slices(tmp_path):
    from padis3d.priors.factory import coarse_tile

    path = save(tmp_path / "low.pt", 3, 8, [25, 32, 32], [4, 4, 4], 4)
    prior = load_prior(path)
    prior.meta["patch_sizes"] = [8, 16]
    assert coarse_tile(prior, (25, 32, 32)) == 16 and coarse_tile(prior, (8, 32, 32)) == 16
    assert coarse_tile(prior, (6, 32, 32)) == 8 and coarse_tile(prior, (3, 32, 32)) == 8  # the test block: 6
    assert two_scale_prior_from(files_fine(tmp_path), prior, (23, 16, 16)).coarse.grid.tile == (8, 8, 8)


def files_fine(root):
    return save(root / "fine.pt", 3, 8, [16, 16, 16], [1, 1, 1], 0)
