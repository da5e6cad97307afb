import pytest
import torch

from padis3d.errors import PadisError
from padis3d.priors.patch import PatchPrior
from tiling import TileGrid


class TinyDenoiser(torch.nn.Module):
    """A small conv net with the denoiser signature ``(x, sigma, positions)``."""

    def __init__(self, channels: int = 1, ndim: int = 2):
        super().__init__()
        conv = torch.nn.Conv2d if ndim == 2 else torch.nn.Conv3d
        self.net = torch.nn.Sequential(conv(channels + ndim + 1, 8, 3, padding=1), torch.nn.Tanh(),
                                       conv(8, channels, 3, padding=1))
        torch.nn.init.normal_(self.net[0].weight, std=0.3)

    def forward(self, x, sigma, positions):
        s = sigma.reshape(-1, *[1] * (x.ndim - 1)).expand(x.shape[0], 1, *x.shape[2:])
        return x + self.net(torch.cat([x, positions, s.log()], 1))


@pytest.fixture
def denoiser():
    torch.manual_seed(0)
    return TinyDenoiser().double()


def test_patch_score_is_the_sum_of_tile_scores(denoiser):
    """score(x) = Σ_k G_kᵀ s_k(G_k x) for the drawn shift, and -x/σ² on the border."""
    prior = PatchPrior(denoiser, (20, 18), 8)
    x = torch.randn(2, 1, *prior.state_shape, dtype=torch.float64)
    sigma, shift = 0.3, (3, 1)
    score = prior.score(x, sigma, shift=shift)
    g = prior.grid
    expected = -x / sigma ** 2
    for b in range(2):
        for k0 in range(g.counts[0]):
            for k1 in range(g.counts[1]):
                sl = (b, slice(None), slice(shift[0] + 8 * k0, shift[0] + 8 * k0 + 8),
                      slice(shift[1] + 8 * k1, shift[1] + 8 * k1 + 8))
                tile = x[sl][None]
                pos = g.positions(shift, torch.tensor([k0 * g.counts[1] + k1]), dtype=torch.float64)
                d = denoiser(tile, torch.tensor([sigma], dtype=torch.float64), pos)
                expected[sl] = ((d - tile) / sigma ** 2)[0]
    assert torch.allclose(score, expected, atol=1e-10)


def test_whole_image_mode_is_the_network_score(denoiser):
    prior = PatchPrior(denoiser, (12, 10), None)
    assert prior.state_shape == (12, 10)
    x = torch.randn(1, 1, 12, 10, dtype=torch.float64)
    pos = TileGrid.whole((12, 10)).positions((0, 0), dtype=torch.float64)
    direct = (denoiser(x, torch.tensor([0.5], dtype=torch.float64), pos) - x) / 0.25
    assert torch.allclose(prior.score(x, 0.5), direct, atol=1e-12)


def test_random_shift_is_redrawn_each_evaluation(denoiser):
    prior = PatchPrior(denoiser, (20, 18), 8)
    x = torch.randn(1, 1, *prior.state_shape, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    outs = [prior.denoise(x, 0.3, generator=g) for _ in range(6)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    border = torch.ones(prior.state_shape, dtype=torch.bool)
    border[prior.grid.image_slices()] = False
    # zero on the border outside each evaluation's tiles: never more non-zero voxels than the window allows
    window = prior.grid.window_shape[0] * prior.grid.window_shape[1]
    assert all(int((o[0, 0] != 0).sum()) <= window for o in outs)


def test_streamed_vjp_equals_plain_autograd(denoiser):
    x = torch.randn(1, 1, 28, 30, dtype=torch.float64)
    target = torch.randn(1, 1, 20, 18, dtype=torch.float64)
    plain = PatchPrior(denoiser, (20, 18), 8)
    streamed = PatchPrior(denoiser, (20, 18), 8, max_batch=2)
    assert streamed.streamed_vjp and not plain.streamed_vjp

    def cotangent(d):  # gradient of 0.5 ||crop(D) - target||² w.r.t. D
        return plain.embed(plain.crop(d) - target)
    d1, g1 = plain.denoise_vjp(x, 0.2, cotangent, shift=(2, 5))
    d2, g2 = streamed.denoise_vjp(x, 0.2, cotangent, shift=(2, 5))
    assert torch.allclose(d1, d2) and torch.allclose(g1, g2, atol=1e-12)
    # and both equal autograd through the assembled map
    from tiling import map_tiles
    xr = x.clone().requires_grad_(True)
    d = map_tiles(plain.tile_fn(0.2), xr, plain.grid, (2, 5))
    (g3,) = torch.autograd.grad(0.5 * ((plain.crop(d) - target) ** 2).sum(), xr)
    assert torch.allclose(g1, g3, atol=1e-12)


def test_tile_must_suit_the_network():
    class Configured(torch.nn.Module):
        class config:
            multiple = 4
    with pytest.raises(PadisError, match="multiples of 4"):
        PatchPrior(Configured(), (20, 20), 6)


def test_image_denoiser_puts_noise_of_std_sigma_on_the_padding(denoiser):
    """PnP's image denoiser hands the network a sampler-like state: the image unchanged, noise of
    std σ where the canvas is padding (zeros there are tiles no training patch looks like), then
    the grid shift, both from the one generator; it equals the prior's denoiser of that state."""
    prior = PatchPrior(denoiser, (20, 18), 8)
    image = torch.rand(1, 1, 20, 18, dtype=torch.float64)
    sigma = 0.4
    state = prior.embed_noisy(image, sigma, torch.Generator().manual_seed(3))
    assert torch.equal(prior.crop(state), image)
    padding = state[0, 0][prior.embed(torch.ones_like(image))[0, 0] == 0]
    assert padding.numel() > 300 and abs(float(padding.std()) / sigma - 1) < 0.15
    g = torch.Generator().manual_seed(3)
    by_hand = prior.crop(prior.denoise(prior.embed_noisy(image, sigma, g), sigma, generator=g))
    assert torch.equal(prior.image_denoiser(sigma, torch.Generator().manual_seed(3))(image), by_hand)
    g = torch.Generator().manual_seed(3)
    prior.embed_noisy(image, sigma, g)  # the same shift, zeros on the padding
    zeros = prior.crop(prior.denoise(prior.embed(image), sigma, shift=prior.grid.random_shift(g)))
    assert not torch.allclose(by_hand, zeros, atol=1e-3)
