"""Slice-jump slabs: each evaluation denoises either adjacent slabs or slabs of slices
``i, i+k, i+2k``, through the same tiling engine (a row permutation of the canvas)."""

import pytest
import torch

from padis3d.errors import PadisError
from padis3d.priors.patch import PatchPrior
from padis3d.priors.slice_jump import SliceJumpPrior, jump_permutation

K, SHAPE, TILE = 3, (23, 16, 16), (3, 8, 8)
W = torch.tensor([[0.5, 0.3, 0.1], [0.2, 0.6, 0.4], [0.0, 0.7, 0.1]])  # not symmetric: a wrong adjoint shows


def mix(tiles: torch.Tensor, sigma: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
    """A linear "denoiser" mixing the k slices of a slab (folded into channels) by W."""
    return torch.einsum("ij,njyx->niyx", W, tiles)


def by_hand(x: torch.Tensor, grid, shift: tuple[int, ...], jump: bool) -> torch.Tensor:
    """Expected output: every slab (adjacent or jump) mixed by W, voxels outside the window 0."""
    out, z_shift = torch.zeros_like(x), shift[0]
    slabs = [list(range(z_shift + j * K, z_shift + (j + 1) * K)) for j in range(grid.counts[0])]
    if jump:
        blocks = grid.counts[0] // K
        slabs = [[z_shift + b * K * K + m + t * K for t in range(K)] for b in range(blocks) for m in range(K)] \
            + slabs[blocks * K:]
    for rows in slabs:
        out[:, :, rows] = torch.einsum("ij,bjyx->biyx", W, x[:, 0, rows])[:, None]
    inside = torch.zeros_like(x, dtype=torch.bool)
    inside[(..., *(slice(s, s + k * p) for s, k, p in zip(shift, grid.counts, grid.tile)))] = True
    return out * inside


def test_jump_permutation_makes_slabs_of_every_kth_slice():
    perm = jump_permutation(30, 3, 9, 2)
    assert perm[:2].tolist() == [0, 1] and perm[29].item() == 29  # outside the blocks: unchanged
    assert perm[2:11].tolist() == [2, 5, 8, 3, 6, 9, 4, 7, 10]
    assert perm[11:20].tolist() == [11, 14, 17, 12, 15, 18, 13, 16, 19]
    assert sorted(perm.tolist()) == list(range(30))


def test_each_evaluation_uses_adjacent_or_jump_slabs_and_both_occur():
    prior = SliceJumpPrior(mix, SHAPE, TILE, fold_axes=(0,), min_shifts=(K, 1, 1))
    plain = PatchPrior(mix, SHAPE, TILE, fold_axes=(0,), min_shifts=(K, 1, 1))
    x = torch.randn(1, 1, *prior.state_shape, generator=torch.Generator().manual_seed(0))
    seen = set()
    for seed in range(12):
        g = torch.Generator().manual_seed(seed)
        shift = prior.grid.random_shift(torch.Generator().manual_seed(seed))
        d = prior.denoise(x, 0.5, generator=g)
        jump = not torch.allclose(d, plain.denoise(x, 0.5, shift=shift), atol=1e-6)
        assert torch.allclose(d, by_hand(x, prior.grid, shift, jump), atol=1e-5)
        seen.add(jump)
    assert seen == {False, True}


@pytest.mark.parametrize("streamed", [False, True])
def test_vjp_is_the_adjoint_of_the_same_evaluation(streamed):
    prior = SliceJumpPrior(mix, SHAPE, TILE, fold_axes=(0,), min_shifts=(K, 1, 1), streamed_vjp=streamed,
                           max_batch=5)
    gen = torch.Generator().manual_seed(1)
    u, v = (torch.randn(1, 1, *prior.state_shape, generator=gen) for _ in range(2))
    for seed in range(6):  # both partitions among these seeds
        d_u = prior.denoise(u, 0.5, generator=torch.Generator().manual_seed(seed))
        d, grad = prior.denoise_vjp(u, 0.5, lambda _: v, generator=torch.Generator().manual_seed(seed))
        assert torch.allclose(d, d_u, atol=1e-6)  # same shift and partition as denoise
        assert torch.dot(d_u.flatten(), v.flatten()).item() == pytest.approx(torch.dot(u.flatten(), grad.flatten()).item(),
                                                                             rel=1e-5)


def test_slice_jump_needs_a_slab_axis():
    with pytest.raises(PadisError, match="slab prior"):
        SliceJumpPrior(mix, SHAPE, (1, 8, 8), fold_axes=(0,))
