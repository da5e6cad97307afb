"""Training crops use exactly the TileGrid position convention; padding targets are zero."""

from __future__ import annotations

import pytest
import torch

from padis3d.training.data import PatchSampler, crop_positions, scaled_batch_sizes, slab_samples, training_subset
from padis3d.errors import PadisError
from padis3d.priors.slice_jump import jump_permutation
from tiling.grid import TileGrid


@pytest.mark.parametrize("shape,tile", [((40, 40), 16), ((37, 29), 8), ((12, 10, 9), 4)])
def test_crop_positions_equal_tilegrid_positions(shape, tile):
    grid = TileGrid(shape, tile)
    shift = tuple(m - 1 for m in grid.pad)
    expected = grid.positions(shift)
    offsets = []
    for t in range(grid.num_tiles):
        idx = [int(i) for i in grid.unravel(torch.tensor([t]))]
        offsets.append([s + k * p for s, k, p in zip(shift, idx, grid.tile)])
    got = crop_positions(shape, grid.pad, grid.tile, torch.tensor(offsets))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_sampler_patches_are_crops_of_the_padded_image_with_their_positions():
    images = torch.rand(3, 1, 24, 24) + 1.0  # strictly positive inside the image
    sampler = PatchSampler(images, [8, 16], [0.5, 0.5], batch=4)
    assert sampler.batch_sizes == [16, 4]
    gen = torch.Generator().manual_seed(1)
    seen_padding = False
    for _ in range(10):
        b = sampler.sample(gen)
        p = b.size
        grid = TileGrid((24, 24), p)
        assert b.patches.shape[1:] == (1, p, p) and b.positions.shape[1:] == (2, p, p)
        inside = (b.positions.abs() <= 1 + 1e-6).all(dim=1, keepdim=True)
        assert torch.equal(b.patches > 0, inside)  # zero exactly where a position is outside the image
        seen_padding |= bool((~inside).any())
        # recover each crop's image indices from its positions and compare the pixels
        for patch, pos in zip(b.patches, b.positions):
            iy = torch.round((pos[0, :, 0] + 1) * 23 / 2).long()
            ix = torch.round((pos[1, 0, :] + 1) * 23 / 2).long()
            canvas_y, canvas_x = iy + grid.pad[0], ix + grid.pad[1]
            assert (canvas_y >= 0).all() and (canvas_y < grid.canvas_shape[0]).all()
            assert (canvas_x >= 0).all() and (canvas_x < grid.canvas_shape[1]).all()
            assert any(torch.equal(patch[0], grid.pad_image(images)[j, 0][canvas_y][:, canvas_x]) for j in range(3))
    assert seen_padding


def test_whole_image_mode_has_no_padding_and_fixed_positions():
    images = torch.rand(2, 1, 16, 16)
    b = PatchSampler(images, [None], batch=2).sample(torch.Generator().manual_seed(0))
    assert b.patches.shape == (2, 1, 16, 16)
    torch.testing.assert_close(b.positions, TileGrid.whole((16, 16)).positions((0, 0)).expand(2, -1, -1, -1))


def test_slab_samples_and_extra_coordinate_channel():
    vol = torch.arange(5.0)[:, None, None].expand(5, 8, 8)
    slabs, z = slab_samples(vol, 3)
    assert slabs.shape == (3, 3, 8, 8)
    assert torch.equal(slabs[1, :, 0, 0], torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(z[:, 0], torch.tensor([-0.5, 0.0, 0.5]))
    b = PatchSampler(slabs, [4], batch=6, extra_coords=z).sample(torch.Generator().manual_seed(0))
    assert b.positions.shape == (6, 3, 4, 4)
    centre = b.patches.amax(dim=(2, 3))[:, 1]  # the middle slice's value = its z index (if not all padding)
    for zc, c, pos in zip(b.positions[:, 0, 0, 0], centre, b.positions):
        assert torch.all(pos[0] == zc)
        if c > 0:
            assert zc == pytest.approx(-1 + 2 * float(c) / 4)


def test_slice_jump_slabs_are_the_ones_the_jump_prior_denoises():
    vol = torch.arange(9.0)[:, None, None].expand(9, 4, 4)
    slabs, z = slab_samples(vol, 3, jumps=True)
    assert slabs.shape == (7 + 3, 3, 4, 4)  # 7 adjacent slabs, then the jump slabs starting at 0, 1, 2
    assert torch.equal(slabs[6, :, 0, 0], torch.tensor([6.0, 7.0, 8.0]))
    for i in range(3):
        assert torch.equal(slabs[7 + i, :, 0, 0], torch.tensor([i, i + 3.0, i + 6.0]))
    torch.testing.assert_close(z[7:, 0], torch.tensor([-1 + 2 * c / 8 for c in (3.0, 4.0, 5.0)]))
    # the same slice triples as the prior's jump permutation of a 9-row canvas
    perm = jump_permutation(9, 3, 3, 0)
    assert {tuple(slabs[7 + i, :, 0, 0].long().tolist()) for i in range(3)} == \
        {tuple(perm[3 * m:3 * m + 3].tolist()) for m in range(3)}
    with pytest.raises(PadisError, match="slice-jump"):
        slab_samples(vol[:6], 3, jumps=True)


def test_batch_scaling_subsets_and_bad_input():
    assert scaled_batch_sizes([16, 32, 48], 8, (128, 128)) == [72, 18, 8]
    sub = training_subset(12, range(100))
    assert len(sub) == 12 and sub[0] == 0 and sub[-1] == 99 and len(set(sub)) == 12
    with pytest.raises(PadisError):
        training_subset(0, range(100))
    with pytest.raises(PadisError, match="patch size"):
        PatchSampler(torch.rand(2, 1, 16, 16), [32])
    with pytest.raises(PadisError, match="probabilities"):
        PatchSampler(torch.rand(2, 1, 16, 16), [8, 16], [1.0])
    with pytest.raises(PadisError, match="channels"):
        PatchSampler(torch.rand(16, 16), [8])


def test_default_dataset_subsets_never_touch_test_slices():
    from padis3d.training.data import chest_ct_training_images
    from padis3d.io.sample_data import TEST_SLICES

    images, info = chest_ct_training_images(32, subset=12)
    assert images.shape == (12, 1, 32, 32) and 0 <= images.min() and images.max() <= 1
    assert len(info["slices"]) == 12 and not set(info["slices"]) & set(TEST_SLICES)
    assert max(info["slices"]) < 100 and info["normalisation"]["window"] == [-1000.0, 1000.0]
