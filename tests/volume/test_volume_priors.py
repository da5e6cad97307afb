"""A true 3D prior on P^3 cubes: trained by ``padis3d train --mode cube`` and used through the
same tiling engine and solver code as slab and slice priors."""

import torch

from padis3d import load_prior
from padis3d.priors.factory import volume_prior_from
from padis3d.cli.train import main as train_main


def test_cube_prior_trains_and_denoises_a_volume_tile_by_tile(tmp_path):
    out = tmp_path / "cube"
    assert train_main(["--mode", "cube", "--size", "16", "--features", "8", "16", "--patch-sizes", "8",
                       "--batch", "2", "--steps", "2", "--no-progress", "--out", str(out)]) == 0
    prior = load_prior(out / "prior.pt")
    assert prior.config.spatial_dims == 3 and prior.config.position_axes == (1, 2)
    vp = volume_prior_from(prior, (10, 16, 16))
    assert vp.grid.tile == (8, 8, 8) and vp.fold_axes == ()
    x = torch.randn(1, 1, *vp.state_shape, generator=torch.Generator().manual_seed(0))
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    d = vp.denoise(x, 0.5, generator=g())
    # the same shift, tile by tile by hand: the network on each cube with its (z, y, x) positions
    shift = vp.grid.random_shift(g())
    tiles = vp.grid.extract(x, shift)
    pos = vp.grid.positions(shift)
    with torch.no_grad():
        expect = vp.grid.scatter(prior(tiles, torch.full((len(tiles),), 0.5), pos), shift)
    assert torch.allclose(d, expect, atol=1e-5)
    covered = torch.zeros_like(d, dtype=torch.bool)
    covered[(..., *(slice(s, s + k * p) for s, k, p in zip(shift, vp.grid.counts, vp.grid.tile)))] = True
    assert covered.sum() < d.numel() and torch.equal(d[~covered], torch.zeros_like(d[~covered]))  # border is 0


def test_slab_boundaries_move_for_any_number_of_slices(tmp_path):
    out = tmp_path / "slab"
    assert train_main(["--mode", "slab", "--slab", "3", "--size", "16", "--features", "8", "16", "--patch-sizes", "8",
                       "--batch", "2", "--steps", "1", "--no-progress", "--out", str(out)]) == 0
    prior = load_prior(out / "prior.pt")
    for z in (23, 24, 25):  # plain K = Z // 3 + 1 would leave 23 slices a single z partition
        vp = volume_prior_from(prior, (z, 16, 16))
        assert vp.grid.tile == (3, 8, 8) and vp.fold_axes == (0,)
        g = torch.Generator().manual_seed(0)
        starts = {(vp.grid.random_shift(g)[0] - vp.grid.pad[0]) % 3 for _ in range(60)}
        assert starts == {0, 1, 2}  # every slab phase relative to the image occurs


def test_slice_jump_from_a_slab_checkpoint_only_and_in_memory_only(tmp_path):
    import numpy as np
    import pytest

    from padis3d.errors import PadisError
    from padis3d.operators import ParallelBeam2D
    from padis3d.priors.slice_jump import SliceJumpPrior
    from padis3d.volume.runner import VolumeRun, VolumeSettings

    for mode in ("slab", "patch"):
        assert train_main(["--mode", mode, "--size", "16", "--features", "8", "16", "--patch-sizes", "8",
                           "--batch", "2", "--steps", "1", "--no-progress", "--out", str(tmp_path / mode)]) == 0
    vp = volume_prior_from(load_prior(tmp_path / "slab" / "prior.pt"), (23, 16, 16), slice_jump=True)
    assert isinstance(vp, SliceJumpPrior) and vp.grid.tile == (3, 8, 8)
    with pytest.raises(PadisError, match="slice-jump slabs need a slab prior"):
        volume_prior_from(load_prior(tmp_path / "patch" / "prior.pt"), (23, 16, 16), slice_jump=True)
    op = ParallelBeam2D(16, views=4)
    with pytest.raises(PadisError, match="slice-jump slabs run in memory"):
        VolumeRun(vp, op, np.zeros((23, *op.out_shape), np.float32), tmp_path / "work", VolumeSettings(steps=2))
    assert not (tmp_path / "work").exists()
