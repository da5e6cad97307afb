"""The two-scale prior (padis3d.priors.two_scale) in closed form: on a Gaussian prior whose coarse
part ``P x`` and detail ``(I - P) x`` are independent, a fine prior that is WRONG at the coarse
scale combined with the exact prior of the block averages gives the exact posterior mean
(equation (1)); the fine prior alone does not. Its VJP is the exact Jacobian's transpose, and
B / U satisfy ``B U = I``, ``P = U B`` symmetric."""

from __future__ import annotations

import math

import pytest
import torch

from padis3d.errors import PadisError
from padis3d.priors.gaussian import GaussianPrior
from padis3d.priors.two_scale import TwoScalePrior, block_average, upsample_nearest

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
    with pytest.raises(PadisError, match="divisible"):
        block_average(torch.zeros(1, 1, 7, 8), 2)


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
