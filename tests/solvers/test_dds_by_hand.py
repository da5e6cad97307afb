"""The DDS data step and two DDS levels computed by hand (issue 19): CG at small step counts
against the textbook recursion, and the DDIM re-noising with seeded noise, so one CG step too
few or a flipped re-noising direction fails here, not only in end-to-end numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from padis3d.baselines.cg import conjugate_gradient
from padis3d.solvers.dds import data_consistency, dds


class Matrix:
    """``y = M x`` on vectors ``(B, C, n)``: a small dense operator with a known adjoint."""

    def __init__(self, m: np.ndarray):
        self.m = torch.as_tensor(m, dtype=torch.float64)
        self.in_shape, self.out_shape = (m.shape[1],), (m.shape[0],)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.m.T

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y @ self.m


class ScaledPrior:
    """A state prior whose denoiser is ``D(x; σ) = x / (1 + σ²)`` (a unit Gaussian), no padding."""

    def __init__(self, n: int):
        self.state_shape = (n,)

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        return image

    def crop(self, state: torch.Tensor) -> torch.Tensor:
        return state

    def denoise(self, x: torch.Tensor, sigma: float, *, generator=None) -> torch.Tensor:
        return x / (1 + sigma ** 2)


def textbook_cg(a: np.ndarray, b: np.ndarray, x0: np.ndarray, steps: int) -> np.ndarray:
    """Hestenes-Stiefel CG for ``a x = b`` from ``x0``, exactly ``steps`` steps."""
    x, r = x0.copy(), b - a @ x0
    p = r.copy()
    for _ in range(steps):
        ap = a @ p
        alpha = (r @ r) / (p @ ap)
        x, r_new = x + alpha * p, r - alpha * ap
        p, r = r_new + (r_new @ r_new) / (r @ r) * p, r_new
    return x


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((9, 12))
    return Matrix(m), m, rng.standard_normal(9), rng.standard_normal(12)


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_data_step_is_exactly_k_cg_steps(problem, steps):
    op, m, y, x0 = problem
    rho = 0.7
    got = data_consistency(op, torch.tensor(y)[None, None], torch.tensor(x0)[None, None], rho, steps)[0, 0].numpy()
    want = textbook_cg(m.T @ m + rho * np.eye(12), m.T @ y + rho * x0, x0, steps)
    assert np.allclose(got, want, rtol=1e-10, atol=1e-10)
    if steps > 1:  # the count matters: one step fewer is measurably different
        fewer = textbook_cg(m.T @ m + rho * np.eye(12), m.T @ y + rho * x0, x0, steps - 1)
        assert np.abs(got - fewer).max() > 1e-3


def test_cg_solves_the_normal_equations_from_zero():
    rng = np.random.default_rng(1)
    q = rng.standard_normal((6, 6))
    a, b = q @ q.T + np.eye(6), rng.standard_normal(6)
    x = conjugate_gradient(lambda v: v @ torch.tensor(a).T, torch.tensor(b)[None], iters=6, tol=0.0)[0].numpy()
    assert np.allclose(x, np.linalg.solve(a, b), rtol=1e-9)


def test_two_dds_levels_by_hand(problem):
    op, m, y, _ = problem
    prior, sigmas, rho, cg, eta = ScaledPrior(12), torch.tensor([2.0, 0.5]), 0.9, 2, 0.85
    x_start = torch.randn((1, 1, 12), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    got = dds(prior, x_start.clone(), sigmas, operator=op, y=torch.tensor(y)[None, None], rho=rho, cg_iters=cg,
              eta=eta, generator=torch.Generator().manual_seed(9))[0, 0].numpy()

    z = torch.randn((1, 1, 12), generator=torch.Generator().manual_seed(9), dtype=torch.float64)[0, 0].numpy()
    a, x = m.T @ m + rho * np.eye(12), x_start[0, 0].numpy()
    d = x / (1 + 2.0 ** 2)                                    # level 0: Tweedie estimate
    est = textbook_cg(a, m.T @ y + rho * d, d, cg)             # data step from the estimate
    x = est + 0.5 * (eta * z + math.sqrt(1 - eta ** 2) * (x - d) / 2.0)  # DDIM move to σ = 0.5
    d = x / (1 + 0.5 ** 2)                                    # level 1 (the last): no re-noising
    want = textbook_cg(a, m.T @ y + rho * d, d, cg)
    assert np.allclose(got, want, rtol=1e-9, atol=1e-9)


def test_algorithm_1_adds_no_noise_at_the_last_level():
    """With one level (the last) and a deterministic prior, Algorithm 1 draws no noise: two
    generators give the same result (the paper's "no noise at the last level")."""
    from padis3d.solvers.padis import padis_dps
    from tests.solvers.gaussian_case import prior as gaussian_prior
    from tests.solvers.gaussian_case import problem as gaussian_problem

    op, y, _, _ = gaussian_problem(0.01)
    x = torch.zeros((1, 1, 8, 8), dtype=torch.float64)
    runs = [padis_dps(gaussian_prior(), x, torch.tensor([0.05]), operator=op, y=y, inner=3,
                      generator=torch.Generator().manual_seed(seed)) for seed in (0, 1)]
    assert torch.equal(runs[0], runs[1])
    two_levels = [padis_dps(gaussian_prior(), x, torch.tensor([0.2, 0.05]), operator=op, y=y, inner=3,
                            generator=torch.Generator().manual_seed(seed)) for seed in (0, 1)]
    assert not torch.equal(*two_levels)  # the earlier level does draw noise


def _ode_end_error(order: int, levels: int) -> float:
    """|DDS(η = 0, no data step) - exact| for the unit Gaussian, whose probability-flow ODE
    ``dx/dσ = (x - D)/σ = x σ / (1 + σ²)`` solves to ``x(σ) = x(σ₀) sqrt((1 + σ²) / (1 + σ₀²))``."""
    sigmas = torch.logspace(math.log10(2.0), math.log10(0.1), levels, dtype=torch.float64)
    x0 = torch.linspace(-1, 1, 6, dtype=torch.float64).reshape(1, 1, 6)
    op = Matrix(np.eye(6))
    out = dds(ScaledPrior(6), x0, sigmas, operator=op, y=op(x0), cg_iters=0, eta=0.0, order=order)
    s0, s1 = float(sigmas[0]), float(sigmas[-1])
    exact = x0 * math.sqrt((1 + s1 ** 2) / (1 + s0 ** 2)) / (1 + s1 ** 2)  # the last level's D of the exact state
    return float((out - exact).abs().max())


def test_heun_step_is_second_order_and_euler_first():
    """Doubling the levels halves DDIM's error (first order) and quarters the Heun-style step's."""
    e1 = [_ode_end_error(1, n) for n in (9, 17, 33)]
    e2 = [_ode_end_error(2, n) for n in (9, 17, 33)]
    for a, b in zip(e1, e1[1:]):
        assert 0.4 < b / a < 0.6
    for a, b in zip(e2, e2[1:]):
        assert 0.15 < b / a < 0.35
    assert e2[0] < e1[0] / 4


def test_second_order_costs_two_evaluations_per_level_but_the_last():
    calls = []

    class Counting(ScaledPrior):
        def denoise(self, x, sigma, *, generator=None):
            calls.append(sigma)
            return super().denoise(x, sigma)

    op = Matrix(np.eye(4))
    x = torch.ones(1, 1, 4, dtype=torch.float64)
    dds(Counting(4), x, torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64), operator=op, y=op(x), order=2)
    assert calls == [1.0, 0.5, 0.5, 0.25, 0.25]
    from padis3d.solvers.reconstruct import SamplerSettings
    assert SamplerSettings(sampler="dds", steps=3, order=2).evaluations == 5
    with pytest.raises(Exception, match="order"):
        SamplerSettings(sampler="padis", order=2)
