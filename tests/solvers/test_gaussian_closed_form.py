"""Samplers against a Gaussian prior whose denoiser, prior and posterior are known exactly."""

import pytest
import torch

from padis3d.solvers.common import init_state
from padis3d.solvers.ddnm import ve_ddnm
from padis3d.solvers.generation import ddim, edm_heun
from padis3d.solvers.langevin import langevin, predictor_corrector
from padis3d.solvers.padis import padis_dps
from padis3d.solvers.schedules import geometric_sigmas, karras_sigmas
from tests.solvers.gaussian_case import MEAN, VAR, moments, prior, problem

CHAINS = 2000


def start(sigma_max: float, seed: int = 0) -> torch.Tensor:
    return init_state(prior(), (CHAINS, 1), sigma_max, generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64)


def assert_matches(samples, mean, var, mean_z=4.5, var_tol=0.3):
    """Per-voxel sample mean within ``mean_z`` standard errors; variance within ``var_tol``."""
    m, v = moments(samples)
    z = ((m - mean) / (var / CHAINS).sqrt()).abs().max()
    assert z < mean_z, f"sample mean off by {z:.1f} standard errors"
    ratio = v / var
    assert (ratio - 1).abs().max() < var_tol, f"variance ratio in {ratio.min():.3f}..{ratio.max():.3f}"


GENERATORS = {
    "edm_heun": lambda g: edm_heun(prior(), start(80), karras_sigmas(80, 0.002, 40), generator=g),
    "ddim": lambda g: ddim(prior(), start(80), karras_sigmas(80, 0.002, 100), generator=g),
    "langevin": lambda g: langevin(prior(), start(10), geometric_sigmas(10, 0.01, 60), generator=g),
    "predictor_corrector": lambda g: predictor_corrector(prior(), start(10), geometric_sigmas(10, 0.01, 200),
                                                         generator=g),
}


@pytest.mark.parametrize("name", GENERATORS)
def test_generation_samples_the_prior(name):
    samples = GENERATORS[name](torch.Generator().manual_seed(1))
    assert_matches(samples, MEAN, VAR)


def test_a_wrong_denoiser_is_caught():
    """The tolerance is tight enough to see a 30% error in the prior variance."""
    wrong = prior()
    wrong.var = VAR * 1.5
    samples = edm_heun(wrong, start(80), karras_sigmas(80, 0.002, 40))
    with pytest.raises(AssertionError):
        assert_matches(samples, MEAN, VAR)


@pytest.mark.parametrize("sampler", ["langevin", "predictor_corrector"])
def test_posterior_samplers_match_the_closed_form(sampler):
    op, y, post_mean, post_var = problem(noise_std=0.3)
    y = y.expand(CHAINS, 1, -1)
    g = torch.Generator().manual_seed(2)
    if sampler == "langevin":
        samples = langevin(prior(), start(10), geometric_sigmas(10, 0.01, 60), operator=op, y=y, noise_std=0.3,
                           generator=g)
    else:
        samples = predictor_corrector(prior(), start(10), geometric_sigmas(10, 0.01, 200), operator=op, y=y,
                                      noise_std=0.3, generator=g)
    # the annealed likelihood N(y; A x_σ, (s² + σ²) I) is exact only as σ -> 0: allow a small bias
    assert_matches(samples, post_mean, post_var, mean_z=7.0)
    error = (moments(samples)[0] - post_mean).abs().max()
    assert error < 0.08 and error < 0.25 * (MEAN - post_mean).abs().max()


def test_ddnm_is_exactly_consistent_with_noiseless_data():
    op, y, post_mean, _ = problem(noise_std=1e-9)
    out = ve_ddnm(prior(), start(10), geometric_sigmas(10, 0.01, 30), operator=op, y=y.expand(CHAINS, 1, -1),
                  generator=torch.Generator().manual_seed(3))
    assert (op(out) - y).abs().max() < 1e-10
    # DDNM is not an exact posterior sampler, but its mean lands near the posterior mean
    error = (moments(out)[0] - post_mean).abs().max()
    assert error < 0.1 and error < 0.25 * (MEAN - post_mean).abs().max()


class StandInPinv:
    """The problem's operator with a wrong ``pinv`` (the adjoint), flagged as a stand-in the way
    CT's FBP is: DDNM must then solve least squares itself."""

    pinv_is_exact = False

    def __init__(self, op):
        self.op = op

    def __call__(self, x):
        return self.op(x)

    def adjoint(self, y):
        return self.op.adjoint(y)

    pinv = adjoint


def test_ddnm_solves_least_squares_when_pinv_is_a_stand_in():
    op, y, _, _ = problem(noise_std=1e-9)
    kwargs = dict(operator=StandInPinv(op), y=y.expand(CHAINS, 1, -1), generator=torch.Generator().manual_seed(3))
    out = ve_ddnm(prior(), start(10), geometric_sigmas(10, 0.01, 30), cg_iters=8, inner=2, **kwargs)
    assert (op(out) - y).abs().max() < 1e-8  # each 2x4 block is solved in <= 2 CG steps per group
    with pytest.raises(Exception, match="cg_iters must be >= 1"):
        ve_ddnm(prior(), start(10), geometric_sigmas(10, 0.01, 3), cg_iters=0, **kwargs)


def test_padis_dps_step_is_algorithm_1():
    """One level, one inner iteration, checked against the formulas by hand (default rule: the
    squared-misfit gradient through the denoiser with weight 1.5/||A||²)."""
    p = prior()
    op, y, _, _ = problem(noise_std=0.05)
    x = start(1.0)[:3]
    sigma, eps = 0.7, 0.5
    weight = 1.5 / float(torch.linalg.matrix_norm(op.m, 2) ** 2)
    out = padis_dps(p, x, torch.tensor([sigma]), operator=op, y=y.expand(3, 1, -1), inner=1, epsilon=eps)
    d = p.denoise(x, sigma)
    grad_d = weight * op.adjoint(op(d) - y)
    x_new = x - VAR / (VAR + sigma ** 2) * grad_d + eps / 2 * (d - x)  # no noise at the last level
    assert torch.allclose(out, d)  # returns crop(D) of the last evaluation ...
    x_checked = padis_dps(p, x, torch.tensor([sigma, sigma]), operator=op, y=y.expand(3, 1, -1),
                          inner=1, epsilon=eps, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    x_mid = x_new + (eps * sigma ** 2) ** 0.5 * noise
    assert torch.allclose(x_checked, p.denoise(x_mid, sigma), rtol=1e-4)  # ... of the state after the first step


def test_padis_dps_pulls_towards_the_data():
    op, y, post_mean, _ = problem(noise_std=0.05)
    out = padis_dps(prior(), start(10), geometric_sigmas(10, 0.01, 40), operator=op, y=y.expand(CHAINS, 1, -1),
                    inner=3, generator=torch.Generator().manual_seed(4))
    prior_residual = (op(MEAN[None, None]) - y).norm()
    assert (op(out) - y).flatten(1).norm(dim=1).median() < 0.5 * prior_residual
    assert (moments(out)[0] - post_mean).norm() < 0.5 * (MEAN - post_mean).norm()


@pytest.mark.parametrize("name", GENERATORS)
def test_seeded_runs_are_reproducible(name):
    small = {
        "edm_heun": lambda g: edm_heun(prior(), start(80)[:4], karras_sigmas(80, 0.01, 5), generator=g),
        "ddim": lambda g: ddim(prior(), start(80)[:4], karras_sigmas(80, 0.01, 5), eta=0.5, generator=g),
        "langevin": lambda g: langevin(prior(), start(10)[:4], geometric_sigmas(10, 0.01, 5), generator=g),
        "predictor_corrector": lambda g: predictor_corrector(prior(), start(10)[:4], geometric_sigmas(10, 0.01, 5),
                                                             generator=g),
    }[name]
    a = small(torch.Generator().manual_seed(7))
    b = small(torch.Generator().manual_seed(7))
    c = small(torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    if name != "edm_heun":  # Heun is deterministic given x_T
        assert not torch.equal(a, c)


def test_callbacks_report_every_level():
    seen = []
    op, y, _, _ = problem(noise_std=0.05)
    padis_dps(prior(), start(1)[:2], geometric_sigmas(1, 0.1, 4), operator=op, y=y.expand(2, 1, -1), inner=2,
              callback=seen.append)
    assert [s["i"] for s in seen] == [0, 1, 2, 3] and all(s["residual"].shape == (2,) for s in seen)
    assert seen[0]["sigma"] == pytest.approx(1.0) and seen[-1]["sigma"] == pytest.approx(0.1)
