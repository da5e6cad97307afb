"""Slab tiles at a volume's ends: real slices in, zero out on the padding (padis3d.priors.slab_ends)."""

from __future__ import annotations

import pytest
import torch

from padis3d.errors import PadisError
from padis3d.priors.patch import PatchPrior
from padis3d.priors.slab_ends import slab_ends_replicated, slab_slice_indices
from tiling import TileGrid

K, DEPTH, SIDE = 3, 7, 6
TILE = (K, None, None)  # whole in-plane axes: only z is tiled


class Recording:
    """A slab 'network': its input times (1 + channel index); keeps every input it is given."""

    def __init__(self):
        self.inputs: list[torch.Tensor] = []

    def __call__(self, x, sigma, positions):
        self.inputs.append(x.clone())
        return x * (1 + torch.arange(x.shape[1], dtype=x.dtype))[None, :, None, None]


def slab_prior(denoiser) -> PatchPrior:
    return PatchPrior(denoiser, (DEPTH, SIDE, SIDE), TILE, fold_axes=(0,), min_shifts=(K, 1, 1))


def test_slice_indices_come_from_the_folded_centre_position():
    grid = TileGrid((DEPTH, SIDE, SIDE), TILE, min_shifts=(K, 1, 1))
    for shift in range(grid.shift_counts[0]):
        pos = grid.positions((shift, 0, 0), dtype=torch.float32).mean(dim=2)  # folded: the slab's centre z
        expected = shift - grid.pad[0] + torch.arange(grid.counts[0])[:, None] * K + torch.arange(K)
        assert torch.equal(slab_slice_indices(pos, DEPTH, K), expected)


@pytest.mark.parametrize("shift", range(5))
def test_end_tiles_get_their_nearest_real_slice_and_give_zero_on_padding(shift):
    """Slice z holds the value z + 1, the padding noise. A tile straddling an end is given its
    nearest real slice in place of each padding slice; D is the network's output on real slices, 0
    elsewhere (by hand); a tile of padding only gives 0."""
    net = Recording()
    prior = slab_prior(slab_ends_replicated(net, DEPTH, K))
    g = prior.grid
    assert g.pad[0] == 5 and g.counts[0] == 4
    volume = (torch.arange(DEPTH, dtype=torch.float64) + 1)[None, None, :, None, None].expand(1, 1, DEPTH, SIDE, SIDE)
    state = prior.embed_noisy(volume, 0.5, torch.Generator().manual_seed(0))
    d = prior.denoise(state, 0.5, shift=(shift, 0, 0))
    expected_d = torch.zeros_like(state)
    (inputs,) = net.inputs  # one batch: the 4 tiles in row order
    for row in range(g.counts[0]):
        zs = range(shift - g.pad[0] + row * K, shift - g.pad[0] + (row + 1) * K)
        real = [z for z in zs if 0 <= z < DEPTH]
        if not real:
            continue
        for j, z in enumerate(zs):
            nearest = min(max(z, real[0]), real[-1])
            assert torch.equal(inputs[row, j], torch.full((SIDE, SIDE), nearest + 1.0, dtype=torch.float64))
            if z in real:
                expected_d[0, 0, g.pad[0] + z] = (z + 1) * (1 + j)
    assert torch.equal(d, expected_d)


def test_tiles_inside_the_volume_and_gradients_are_the_networks_own():
    """A tile with no padding slice is the network's call, unchanged; the streamed VJP of the
    wrapped prior equals plain autograd through the gather, and no gradient reaches the padding."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(K, K, 3, padding=1).double()

    def net(x, s, p):
        return x + torch.tanh(conv(x))

    plain, wrapped = slab_prior(net), slab_prior(slab_ends_replicated(net, DEPTH, K))
    x = torch.randn(1, 1, *plain.state_shape, dtype=torch.float64)
    pad = plain.grid.pad[0]
    a, b = plain.denoise(x, 0.3, shift=(2, 0, 0)), wrapped.denoise(x, 0.3, shift=(2, 0, 0))
    inside = slice(pad, pad + 6)  # shift 2: rows 1 and 2 are slices 0-5, row 3 straddles the end
    assert torch.equal(a[:, :, inside], b[:, :, inside])
    assert not torch.allclose(a[:, :, pad + 6], b[:, :, pad + 6])
    v = torch.randn_like(x)
    streamed = slab_prior(slab_ends_replicated(net, DEPTH, K))
    streamed.streamed_vjp = True
    _, g1 = streamed.denoise_vjp(x, 0.3, lambda d: v, shift=(1, 0, 0))
    _, g2 = wrapped.denoise_vjp(x, 0.3, lambda d: v, shift=(1, 0, 0))
    assert torch.allclose(g1, g2, atol=1e-12) and g2.abs().sum() > 0
    assert not g2[:, :, :pad].any() and not g2[:, :, pad + DEPTH:].any()


def test_one_slice_is_refused():
    with pytest.raises(PadisError, match="at least 2 slices"):
        slab_ends_replicated(Recording(), 1, K)
