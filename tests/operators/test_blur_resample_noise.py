"""Blur / super-resolution operator semantics and seeded noise."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from padis3d.errors import PadisError
from padis3d.operators import (BlockAverage, Blur, NearestSample, chest_ct_attenuation_scale, gaussian_kernel,
                               gaussian_noise, poisson_photon_noise, uniform_kernel, upsample)

X = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))


def test_kernels_are_normalised():
    assert uniform_kernel().shape == (9, 9) and torch.allclose(uniform_kernel().sum(), torch.tensor(1.0))
    g = gaussian_kernel(2.0)
    assert g.shape == (13, 13) and torch.allclose(g.sum(), torch.tensor(1.0))
    assert torch.equal(g, g.flip(0)) and g[6, 6] == g.max()


@pytest.mark.parametrize("boundary,mode", [("circular", "wrap"), ("zero", "constant")])
def test_blur_matches_scipy_convolution(boundary, mode):
    k = torch.rand(5, 3, generator=torch.Generator().manual_seed(1))  # asymmetric: catches flips/shifts
    out = Blur((32, 32), k, boundary=boundary)(X)
    ref = ndimage.convolve(X[0, 0].double().numpy(), k.double().numpy(), mode=mode, cval=0.0)
    assert np.allclose(out[0, 0].numpy(), ref, atol=1e-5)


def test_circular_blur_pinv_inverts_mild_blur():
    A = Blur((32, 32), gaussian_kernel(0.8))
    assert float((A.pinv(A(X)) - X).abs().max()) < 1e-3
    with pytest.raises(PadisError, match="circular"):
        Blur((32, 32), boundary="zero").pinv(X)


def test_resampling_semantics():
    A, N = BlockAverage((32, 32)), NearestSample((32, 32), offset=1)
    assert torch.allclose(A(X), F.avg_pool2d(X, 4))
    assert torch.equal(N(X), X[:, :, 1::4, 1::4])
    y = torch.rand(2, 1, 8, 8)
    assert torch.allclose(A(A.pinv(y)), y) and torch.equal(N(N.pinv(y)), y)
    up = upsample(A(X), 4)
    assert up.shape == X.shape and 0 <= float(up.min()) and float(up.max()) <= 1


def test_blur_and_resample_errors():
    with pytest.raises(PadisError, match="divisible"):
        BlockAverage((30, 32))
    with pytest.raises(PadisError, match="does not fit"):
        Blur((8, 8), uniform_kernel(9))
    with pytest.raises(PadisError, match="boundary"):
        Blur((16, 16), boundary="reflect")
    with pytest.raises(PadisError, match="offset"):
        NearestSample((16, 16), offset=4)
    with pytest.raises(PadisError, match=r"\(batch, channels, 8, 8\)"):
        BlockAverage((32, 32)).adjoint(torch.zeros(1, 1, 8, 9))


def test_gaussian_noise_is_seeded_and_has_sigma():
    y = torch.zeros(4, 1, 128, 128)
    a = gaussian_noise(y, 0.01, torch.Generator().manual_seed(3))
    b = gaussian_noise(y, 0.01, torch.Generator().manual_seed(3))
    c = gaussian_noise(y, 0.01, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(float(a.std()) - 0.01) < 3e-4 and abs(float(a.mean())) < 3e-4


def test_poisson_photon_noise_statistics():
    sino = torch.full((1, 1, 100, 400), 20.0)
    scale = chest_ct_attenuation_scale(128)
    i0 = 1e4
    noisy = poisson_photon_noise(sino, i0, scale, torch.Generator().manual_seed(0))
    again = poisson_photon_noise(sino, i0, scale, torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again)
    # delta method: var(-log(N/I0)/s) = 1 / (s² I0 exp(-s p))
    expected_std = 1.0 / (scale * (i0 * np.exp(-scale * 20.0)) ** 0.5)
    assert abs(float(noisy.std()) / expected_std - 1) < 0.05
    assert abs(float(noisy.mean()) - 20.0) < 0.05
    fewer = poisson_photon_noise(sino, i0 / 100, scale, torch.Generator().manual_seed(0))
    assert float(fewer.std()) > 5 * float(noisy.std())
    with pytest.raises(PadisError, match="non-negative"):
        poisson_photon_noise(-sino, i0, scale)


@pytest.mark.parametrize("boundary, mode", [("circular", "wrap"), ("zero", "constant")])
def test_blur_is_the_convolution_of_its_definition(boundary, mode):
    """Forward ``y = k * x`` against scipy's convolution with an asymmetric kernel (convolution,
    not correlation: a kernel flipped in forward and adjoint alike passes the adjoint test)."""
    from scipy.ndimage import convolve

    k = torch.rand((5, 3), generator=torch.Generator().manual_seed(3)) + 0.1
    k = k / k.sum()
    x = torch.rand((1, 1, 17, 16), generator=torch.Generator().manual_seed(4))
    expected = convolve(x[0, 0].double().numpy(), k.double().numpy(), mode=mode, cval=0.0)
    got = Blur((17, 16), k, boundary=boundary)(x)[0, 0].double().numpy()
    assert np.abs(got - expected).max() < 1e-5
