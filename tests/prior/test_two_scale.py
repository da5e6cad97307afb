"""The two-scale prior (padis3d.priors.two_scale) in closed form: on a Gaussian prior whose coarse
part ``P x`` and detail ``(I - P) x`` are independent, a fine prior that is WRONG at the coarse
scale combined with the exact prior of the block averages gives the exact posterior mean
(equation (1)); the fine prior alone does not. Its VJP is the exact Jacobian's transpose, and
B / U satisfy ``B U = I``, ``P = U B`` symmetric, also with per-axis factors that do not divide the
image (partial last blocks), where the combination is exact on the full blocks and, given the
partial blocks' own noise level ``σ / sqrt(m)``, everywhere."""

from __future__ import annotations

import math

import pytest
import torch

from padis3d.errors import PadisError
from padis3d.priors.gaussian import GaussianPrior
from padis3d.priors.two_scale import TwoScalePrior, block_average, block_sizes, upsample_nearest

N, F = 8, 2  # 8x8 images, coarse 4x4


class FullGaussian:
    """``x ~ N(μ, Σ)`` on flattened ``(1, 1, N, N)`` images: exact ``D = μ + Σ (Σ + σ²I)⁻¹ (x - μ)``."""

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor):
        self.mean, self.cov, self.state_shape = mean, cov, (N, N)

    def embed(self, image):
        return image

    def crop(self, state):
        return state

    def gain(self, sigma):
        return self.cov @ torch.linalg.inv(self.cov + sigma ** 2 * torch.eye(len(self.cov), dtype=self.cov.dtype))

    def denoise(self, x, sigma, **_):
        flat = x.reshape(-1) - self.mean
        return (self.mean + self.gain(sigma) @ flat).reshape(x.shape)

    def denoise_vjp(self, x, sigma, cotangent, **_):
        d = self.denoise(x, sigma)
        return d, (self.gain(sigma).T @ cotangent(d).reshape(-1)).reshape(x.shape)


def projection() -> torch.Tensor:
    """``P = U B`` as a matrix on flattened images."""
    eye = torch.eye(N * N, dtype=torch.float64).reshape(N * N, 1, N, N)
    return upsample_nearest(block_average(eye, F), F).reshape(N * N, N * N).T


def priors(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    p = projection()
    up = upsample_nearest(torch.eye(16, dtype=torch.float64).reshape(16, 1, 4, 4), F).reshape(16, N * N).T  # U
    mean_c = torch.rand(16, generator=g, dtype=torch.float64)
    var_c = 0.05 + torch.rand(16, generator=g, dtype=torch.float64) * 0.3
    a = torch.randn(N * N, N * N, generator=g, dtype=torch.float64) / N
    detail = (torch.eye(N * N, dtype=torch.float64) - p) @ (a @ a.T + 0.01 * torch.eye(N * N, dtype=torch.float64)) \
        @ (torch.eye(N * N, dtype=torch.float64) - p)
    true_cov = up @ torch.diag(var_c) @ up.T + detail
    wrong_cov = up @ torch.diag(var_c * 5 + 0.2) @ up.T + detail  # right detail, wrong coarse scale
    mean = up @ mean_c
    truth = FullGaussian(mean, true_cov)
    fine = FullGaussian(up @ (mean_c * 0.3 + 0.5), wrong_cov)
    coarse = GaussianPrior(mean_c.reshape(1, 1, 4, 4), var_c.reshape(1, 1, 4, 4))  # B x = coarse part exactly
    return truth, fine, coarse


def test_block_average_and_nearest_upsampling_make_an_orthogonal_projection():
    p = projection()
    torch.testing.assert_close(p, p.T)
    torch.testing.assert_close(p @ p, p)
    x = torch.rand(2, 1, 6, 4, 8, dtype=torch.float64)
    torch.testing.assert_close(block_average(upsample_nearest(x, 2), 2), x)
    with pytest.raises(PadisError, match="cannot have the shape"):
        upsample_nearest(torch.zeros(1, 1, 4, 4), 2, (9, 8))  # ceil(9 / 2) = 5, not 4
    with pytest.raises(PadisError, match="integer >= 1"):
        block_average(torch.zeros(1, 1, 7, 8), (2, 0))


@pytest.mark.parametrize("sigma", [0.05, 0.3, 2.0])
def test_a_wrong_coarse_scale_is_corrected_to_the_exact_posterior_mean(sigma):
    truth, fine, coarse = priors()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, N, N, generator=g, dtype=torch.float64) + sigma * torch.randn(1, 1, N, N, generator=g,
                                                                                         dtype=torch.float64)
    two = TwoScalePrior(fine, coarse, F)
    exact = truth.denoise(x, sigma)
    assert (fine.denoise(x, sigma) - exact).abs().max() > 1e-3  # the fine prior alone is wrong
    torch.testing.assert_close(two.denoise(x, sigma), exact, rtol=1e-9, atol=1e-10)
    assert two.coarse_sigma(sigma, 2) == pytest.approx(sigma / 2)
    wrong_level = TwoScalePrior(fine, coarse, F)
    wrong_level.coarse_sigma = lambda s, d: s  # type: ignore[method-assign]  # the noise of B x is NOT σ
    assert (wrong_level.denoise(x, sigma) - exact).abs().max() > 1e-4


def test_vjp_is_the_transpose_of_the_exact_jacobian():
    truth, fine, coarse = priors(seed=2)
    two = TwoScalePrior(fine, coarse, F)
    sigma = 0.4
    x = torch.rand(1, 1, N, N, dtype=torch.float64)
    v = torch.randn(1, 1, N, N, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    d, grad = two.denoise_vjp(x, sigma, lambda d: v * 1.0)
    torch.testing.assert_close(d, truth.denoise(x, sigma), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(grad.reshape(-1), truth.gain(sigma).T @ v.reshape(-1), rtol=1e-9, atol=1e-10)
    assert math.isfinite(float(grad.sum()))


# partial blocks: 7 x 8 images with factors (2, 3): coarse 4 x 3, blocks of 6, 4 (last column),
# 3 (last row) and 2 voxels (the corner)
SHAPE, FACTOR = (7, 8), (2, 3)
COARSE = (4, 3)
NV, NC = 7 * 8, 4 * 3


def basis_matrices() -> tuple[torch.Tensor, torch.Tensor]:
    """``B`` ``(NC, NV)`` and ``U`` ``(NV, NC)`` as matrices, built by applying them to unit vectors."""
    eye_v = torch.eye(NV, dtype=torch.float64).reshape(NV, 1, *SHAPE)
    eye_c = torch.eye(NC, dtype=torch.float64).reshape(NC, 1, *COARSE)
    return (block_average(eye_v, FACTOR).reshape(NV, NC).T,
            upsample_nearest(eye_c, FACTOR, SHAPE).reshape(NC, NV).T)


def test_partial_blocks_average_what_they_have_and_still_give_an_orthogonal_projection():
    x = torch.arange(NV, dtype=torch.float64).reshape(1, 1, *SHAPE) ** 1.5
    b = block_average(x, FACTOR)
    assert b.shape == (1, 1, *COARSE)
    for i in range(4):
        for j in range(3):  # each block's own mean, by hand
            torch.testing.assert_close(b[0, 0, i, j], x[0, 0, 2 * i:2 * i + 2, 3 * j:3 * j + 3].mean())
    torch.testing.assert_close(block_sizes(SHAPE, FACTOR)[0, 0], torch.tensor(
        [[6., 6., 4.], [6., 6., 4.], [6., 6., 4.], [3., 3., 2.]], dtype=torch.float64))
    bm, um = basis_matrices()
    torch.testing.assert_close(bm @ um, torch.eye(NC, dtype=torch.float64))  # B U = I
    p = um @ bm
    torch.testing.assert_close(p, p.T)
    torch.testing.assert_close(p @ p, p)
    torch.testing.assert_close(torch.linalg.matrix_rank(p), torch.tensor(NC))
    # 3D, per-axis factor with a 1 (in-plane only) and an int factor that divides nothing
    v = torch.rand(2, 1, 5, 6, 7, dtype=torch.float64)
    torch.testing.assert_close(block_average(v, (1, 2, 2))[:, :, :, 0, 0], v[:, :, :, :2, :2].mean((-1, -2)))
    assert block_average(v, 4).shape == (2, 1, 2, 2, 2)
    torch.testing.assert_close(block_average(v, 4)[0, 0, 1, 1, 1], v[0, 0, 4:, 4:, 4:].mean())
    torch.testing.assert_close(block_average(upsample_nearest(block_average(v, 4), 4, (5, 6, 7)), 4),
                               block_average(v, 4))


def partial_priors(seed: int = 0):
    """Truth, a fine prior wrong at the coarse scale and the exact coarse prior on the 7 x 8 images."""
    g = torch.Generator().manual_seed(seed)
    bm, um = basis_matrices()
    p = um @ bm
    eye = torch.eye(NV, dtype=torch.float64)
    mean_c = torch.rand(NC, generator=g, dtype=torch.float64)
    var_c = 0.05 + torch.rand(NC, generator=g, dtype=torch.float64) * 0.3
    a = torch.randn(NV, NV, generator=g, dtype=torch.float64) / 8
    detail = (eye - p) @ (a @ a.T + 0.01 * eye) @ (eye - p)
    truth = FullGaussian(um @ mean_c, um @ torch.diag(var_c) @ um.T + detail)
    fine = FullGaussian(um @ (mean_c * 0.3 + 0.5), um @ torch.diag(var_c * 5 + 0.2) @ um.T + detail)
    truth.state_shape = fine.state_shape = SHAPE
    coarse = GaussianPrior(mean_c.reshape(1, 1, *COARSE), var_c.reshape(1, 1, *COARSE))
    return truth, fine, coarse


@pytest.mark.parametrize("sigma", [0.05, 0.5])
def test_partial_blocks_are_exact_on_full_blocks_and_with_their_own_noise_level(sigma):
    truth, fine, coarse = partial_priors()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, *SHAPE, generator=g, dtype=torch.float64) \
        + sigma * torch.randn(1, 1, *SHAPE, generator=g, dtype=torch.float64)
    exact = truth.denoise(x, sigma)
    two = TwoScalePrior(fine, coarse, FACTOR)
    assert two.coarse_sigma(sigma, 2) == pytest.approx(sigma / math.sqrt(6))
    d = two.denoise(x, sigma)
    full = torch.zeros(SHAPE, dtype=torch.bool)
    full[:6, :6] = True  # the voxels of full 2 x 3 blocks
    torch.testing.assert_close(d[0, 0][full], exact[0, 0][full], rtol=1e-9, atol=1e-10)
    assert (d - exact)[0, 0][~full].abs().max() > 1e-4  # partial blocks: noisier than σ_c, under-denoised
    # given each block's own noise std σ / sqrt(m), the combination is exact everywhere
    m = block_sizes(SHAPE, FACTOR)
    own = TwoScalePrior(fine, coarse, FACTOR)
    own.coarse_sigma = lambda s, dims: s / m.sqrt()  # type: ignore[method-assign,assignment]
    torch.testing.assert_close(own.denoise(x, sigma), exact, rtol=1e-9, atol=1e-10)


def test_partial_block_vjp_is_the_transpose_of_the_jacobian():
    truth, fine, coarse = partial_priors(seed=2)
    two = TwoScalePrior(fine, coarse, FACTOR)
    sigma = 0.3
    x = torch.rand(1, 1, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    v = torch.randn(1, 1, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    d, grad = two.denoise_vjp(x, sigma, lambda d: v * 1.0)
    _, expect = torch.autograd.functional.vjp(lambda z: two.denoise(z, sigma), x, v)
    torch.testing.assert_close(d, two.denoise(x, sigma))
    torch.testing.assert_close(grad, expect, rtol=1e-9, atol=1e-10)
    # a coarse prior with a full (non-diagonal) Jacobian, where the block-size weights of Uᵀ = m B and
    # Bᵀ = U / m do not cancel: the VJP still matches autograd, and dropping the weights would not
    g = torch.Generator().manual_seed(5)
    a = torch.randn(NC, NC, generator=g, dtype=torch.float64) / 3
    full_coarse = FullGaussian(torch.rand(NC, generator=g, dtype=torch.float64), a @ a.T + 0.05 * torch.eye(NC))
    full_coarse.state_shape = COARSE
    two = TwoScalePrior(fine, full_coarse, FACTOR)
    d, grad = two.denoise_vjp(x, sigma, lambda d: v * 1.0)
    _, expect = torch.autograd.functional.vjp(lambda z: two.denoise(z, sigma), x, v)
    torch.testing.assert_close(grad, expect, rtol=1e-9, atol=1e-10)
    bm, um = basis_matrices()
    gain_c = full_coarse.gain(two.coarse_sigma(sigma, 2))
    unweighted_coarse = um @ gain_c.T @ bm @ v.reshape(-1)  # E U J_cᵀ B C v, the full-block formula
    weighted_coarse = um @ ((gain_c.T @ (block_sizes(SHAPE, FACTOR).reshape(-1) * (bm @ v.reshape(-1))))
                            / block_sizes(SHAPE, FACTOR).reshape(-1))
    assert (unweighted_coarse - weighted_coarse).abs().max() > 1e-3
