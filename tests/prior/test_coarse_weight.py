"""The two-scale prior's coarse weight (equation (2) of padis3d.priors.two_scale,
padis3d.priors.coarse_weight): the mix is linear in ``w`` between the fine prior alone (``w = 0``)
and equation (1) (``w = 1``), its VJP is the transpose of its Jacobian for any ``w``; the
calibration on Gaussian priors (where the exact posterior mean's error is orthogonal to every
function of the observation) picks ``w -> 1`` when the coarse prior is exact and ``w -> 0`` when the
fine prior is; the least-squares weight minimises the coarse error; the weight file belongs to one
pair of checkpoints and refuses a changed one."""

from __future__ import annotations

import json
import math

import pytest
import torch

from padis3d.errors import PadisError
from padis3d.priors.coarse_weight import (CoarseWeight, calibrate, least_squares_weight, load_weight, save_weight,
                                          weight_for, weight_report, weights_path)
from padis3d.priors.gaussian import GaussianPrior
from padis3d.priors.two_scale import TwoScalePrior, block_average, upsample_nearest
from tests.prior.test_two_scale import F, N, FullGaussian, priors


def test_the_weight_table_interpolates_in_log_sigma_and_holds_its_ends():
    w = CoarseWeight((0.1, 1.0, 10.0), (0.2, 0.6, 1.0))
    assert w(0.1) == pytest.approx(0.2) and w(1.0) == pytest.approx(0.6)
    assert w(10 ** -0.5) == pytest.approx(0.4)  # halfway in log σ
    assert w(1e-4) == pytest.approx(0.2) and w(1e3) == pytest.approx(1.0)
    assert weight_report(w) == {"sigmas": [0.1, 1.0, 10.0], "weights": [0.2, 0.6, 1.0]} and weight_report(1) == 1.0
    for sigmas, weights, match in (((1.0, 0.1), (0.5, 0.5), "increasing"), ((0.1,), (1.5,), r"\[0, 1\]"),
                                   ((0.1, 1.0), (0.5,), "as many"), ((0.0, 1.0), (0.5, 0.5), "> 0")):
        with pytest.raises(PadisError, match=match):
            CoarseWeight(sigmas, weights)
    with pytest.raises(PadisError, match=r"\[0, 1\]"):
        TwoScalePrior(*priors()[1:], F, coarse_weight=1.2)


def test_the_least_squares_weight_minimises_the_coarse_error():
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(2, 1, 3, 4, generator=g, dtype=torch.float64)
    fine = truth + 0.1 * torch.randn(truth.shape, generator=g, dtype=torch.float64)
    coarse = truth + 0.2 * torch.randn(truth.shape, generator=g, dtype=torch.float64)
    m = torch.rand(1, 1, 3, 4, generator=g, dtype=torch.float64) + 0.5
    w = least_squares_weight([fine], [coarse], [truth], [m])
    assert 0 < w < 1

    def err(v):
        return float((m * (fine + v * (coarse - fine) - truth) ** 2).sum())
    assert all(err(w) <= err(v) for v in torch.linspace(0, 1, 101).tolist())
    assert least_squares_weight([fine], [fine], [truth], [m]) == 0  # nothing to mix
    assert least_squares_weight([fine], [truth], [truth], [m]) == 1  # the coarse prior is exact
    assert least_squares_weight([truth], [coarse], [truth], [m]) == 0
    assert least_squares_weight([fine], [2 * truth - fine], [truth], [m]) == pytest.approx(0.5)
    # a joint fit over two images is not the mean of the two fits
    w2 = least_squares_weight([fine, fine * 0], [coarse, truth * 0 + 1], [truth, truth], [m, m])
    assert w2 != pytest.approx(w)


@pytest.mark.parametrize("sigma", [0.1, 0.8])
def test_the_mix_is_linear_in_the_weight_and_its_vjp_the_jacobian_transpose(sigma):
    truth, fine, coarse = priors(seed=4)
    x = torch.rand(1, 1, N, N, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    one = TwoScalePrior(fine, coarse, F).denoise(x, sigma)
    torch.testing.assert_close(TwoScalePrior(fine, coarse, F, coarse_weight=0).denoise(x, sigma),
                               fine.denoise(x, sigma), rtol=0, atol=0)
    two = TwoScalePrior(fine, coarse, F, coarse_weight=CoarseWeight((sigma / 2, sigma * 2), (0.1, 0.5)))
    assert two.weight(sigma) == pytest.approx(0.3)
    d = two.denoise(x, sigma)
    torch.testing.assert_close(d, fine.denoise(x, sigma) + 0.3 * (one - fine.denoise(x, sigma)), rtol=1e-12, atol=1e-12)
    # the denoiser is affine here: its Jacobian column i is D(x + e_i) - D(x)
    eye = torch.eye(N * N, dtype=torch.float64).reshape(N * N, 1, N, N)
    jac = torch.stack([(two.denoise(x + e[None], sigma) - d).reshape(-1) for e in eye], 1)
    v = torch.randn(1, 1, N, N, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    d2, grad = two.denoise_vjp(x, sigma, lambda _: v * 1.0)
    torch.testing.assert_close(d2, d, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad.reshape(-1), jac.T @ v.reshape(-1), rtol=1e-8, atol=1e-9)
    _, grad0 = TwoScalePrior(fine, coarse, F, coarse_weight=0).denoise_vjp(x, sigma, lambda _: v * 1.0)
    torch.testing.assert_close(grad0.reshape(-1), fine.gain(sigma).T @ v.reshape(-1), rtol=1e-9, atol=1e-10)


def samples(prior: FullGaussian, n: int, seed: int) -> list[torch.Tensor]:
    """``n`` images drawn from a Gaussian prior, ``(1, 1, N, N)`` each."""
    chol = torch.linalg.cholesky(prior.cov)
    z = torch.randn(n, N * N, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return [(prior.mean + chol @ zi).reshape(1, 1, N, N) for zi in z]


@pytest.mark.parametrize("sigma", [0.2, 1.0])
def test_calibration_trusts_the_exact_prior_of_the_two(sigma):
    truth, wrong_fine, exact_coarse = priors(seed=7)
    clean = samples(truth, 400, seed=8)
    w, rows = calibrate(TwoScalePrior(wrong_fine, exact_coarse, F), clean, [sigma])
    assert w.weights[0] == pytest.approx(1.0, abs=0.06)  # the coarse prior is the exact posterior of B x
    assert rows[0]["coarse"] > rows[0]["fine"] and rows[0]["mix"] >= rows[0]["coarse"] - 0.05
    # the other way round: an exact fine prior and a coarse prior of the wrong variance
    mean_c = block_average(truth.mean.reshape(1, 1, N, N), F)
    wrong_coarse = GaussianPrior(mean_c, torch.full_like(mean_c, 0.02))
    w, rows = calibrate(TwoScalePrior(truth, wrong_coarse, F), clean, [sigma])
    assert w.weights[0] == pytest.approx(0.0, abs=0.06)
    assert rows[0]["fine"] > rows[0]["coarse"]


def test_the_weight_file_belongs_to_one_pair_of_checkpoints(tmp_path):
    fine, other, coarse = tmp_path / "fine.pt", tmp_path / "other.pt", tmp_path / "low.pt"
    for p, text in ((fine, b"fine"), (other, b"other"), (coarse, b"coarse")):
        p.write_bytes(text)
    with pytest.raises(PadisError, match="does not exist"):
        load_weight(fine, coarse)
    w = CoarseWeight((0.1, 1.0), (0.3, 0.6))
    path = save_weight(w, fine, coarse, extra={"command": "x"})
    assert path == weights_path(coarse) == tmp_path / "low.weights.json"
    assert load_weight(fine, coarse) == w
    with pytest.raises(PadisError, match="no coarse weight for the fine prior other.pt"):
        load_weight(other, coarse)
    save_weight(CoarseWeight((1.0,), (0.9,)), other, coarse)  # a second entry keeps the first
    assert load_weight(fine, coarse) == w and load_weight(other, coarse).weights == (0.9,)
    assert json.loads(path.read_text())["fine.pt"]["command"] == "x"
    assert weight_for("measured", fine, coarse) == w and weight_for("0.25", other, coarse) == 0.25
    with pytest.raises(PadisError, match=r"number in \[0, 1\]"):
        weight_for(1.5, fine, coarse)
    fine.write_bytes(b"fine, trained further")
    with pytest.raises(PadisError, match="measured for another fine.pt"):
        load_weight(fine, coarse)
    with pytest.raises(PadisError, match="measured for another fine.pt"):
        weight_for("measured", fine, coarse)


def test_upsampled_weighted_correction_only_moves_the_coarse_scale():
    truth, fine, coarse = priors(seed=9)
    x = torch.rand(1, 1, N, N, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    d0 = fine.denoise(x, 0.5)
    d = TwoScalePrior(fine, coarse, F, coarse_weight=0.4).denoise(x, 0.5)
    detail = d - upsample_nearest(block_average(d, F), F)
    torch.testing.assert_close(detail, d0 - upsample_nearest(block_average(d0, F), F), rtol=1e-12, atol=1e-12)


def test_the_full_resolution_psnr_of_the_calibration_is_that_of_the_two_scale_denoiser():
    truth, fine, coarse = priors(seed=11)
    clean = samples(truth, 3, seed=12)
    sigma = 0.5
    w, rows = calibrate(TwoScalePrior(fine, coarse, F), clean, [sigma], seed=3)
    mixed = TwoScalePrior(fine, coarse, F, coarse_weight=w)
    se_mix = se_fine = 0.0
    for j, x in enumerate(clean):  # the calibration's own noise: seed * 1_000_003 + 1000 j + i
        g = torch.Generator().manual_seed(3 * 1_000_003 + 1000 * j)
        noisy = x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)
        se_mix += float(((mixed.denoise(noisy, sigma) - x) ** 2).sum())
        se_fine += float(((fine.denoise(noisy, sigma) - x) ** 2).sum())
    n = 3 * N * N
    assert rows[0]["mix_full"] == pytest.approx(10 * math.log10(n / se_mix), abs=1e-9)
    assert rows[0]["fine_full"] == pytest.approx(10 * math.log10(n / se_fine), abs=1e-9)
    assert rows[0]["mix_full"] >= rows[0]["fine_full"]  # the least-squares weight cannot lose to w = 0
