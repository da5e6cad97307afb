"""Samplers that a wrong implementation fails: Algorithm 1's data step must converge (the old
fixed-length step does not), VE-DDNM must be the range-null-space Langevin sampler (not DDS),
Langevin must be the reference's, and the one table of defaults must drive SamplerSettings."""

import math

import pytest
import torch

from padis3d.errors import PadisError
from padis3d.solvers.common import init_state, operator_norm_sq
from padis3d.solvers.ddnm import ve_ddnm
from padis3d.solvers.dds import dds
from padis3d.solvers.defaults import BUDGETS, TASKS, default_fields
from padis3d.solvers.langevin import langevin
from padis3d.solvers.padis import padis_dps
from padis3d.solvers.reconstruct import SamplerSettings
from padis3d.solvers.schedules import geometric_sigmas
from tests.solvers.gaussian_case import MATRIX, MEAN, moments, prior, problem

CHAINS = 200
NOISE = 0.02


def start(sigma_max: float, chains: int = CHAINS, seed: int = 0) -> torch.Tensor:
    return init_state(prior(), (chains, 1), sigma_max, generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64)


def run_algorithm_1(**step) -> tuple[torch.Tensor, list[float]]:
    op, y, _, _ = problem(noise_std=NOISE)
    levels: list[float] = []
    out = padis_dps(prior(), start(1.0), geometric_sigmas(1.0, 0.02, 30), operator=op, y=y.expand(CHAINS, 1, -1),
                    inner=5, generator=torch.Generator().manual_seed(4),
                    callback=lambda info: levels.append(float(info["residual"].median())), **step)
    return out, levels


def assert_converges(out: torch.Tensor, levels: list[float]) -> None:
    """Every chain's final residual is below the noise level ``s sqrt(m)`` (the posterior mean's is
    0.01), the residual fell over the last levels, and the chains' mean is near the posterior mean."""
    op, y, post_mean, _ = problem(noise_std=NOISE)
    noise_level = NOISE * math.sqrt(MATRIX.shape[0])  # 0.113
    final = (op(out) - y).flatten(1).norm(dim=1)
    assert final.max() < 0.5 * noise_level, f"residual {final.max():.3f} vs noise level {noise_level:.3f}"
    assert levels[-1] < levels[-2] < levels[-5], f"residual did not keep falling: {levels[-5:]}"
    error = (moments(out)[0] - post_mean).norm()
    assert error < 0.15 * (MEAN - post_mean).norm(), f"mean off the posterior mean by {error:.3f}"


@pytest.mark.parametrize("step", [{}, {"step_size": 1.0}, {"step_rule": "norm", "zeta": 0.1},
                                  {"step_rule": "paper", "zeta": 1.0}])
def test_algorithm_1_residual_falls_to_the_noise_level(step):
    """The squared-misfit step ``c/||A||²`` and the ζ-rules capped there converge; the posterior
    of this linear-Gaussian problem is known in closed form."""
    assert_converges(*run_algorithm_1(**step))


@pytest.mark.parametrize("zeta", [0.1, 0.2])
def test_the_old_fixed_length_step_fails(zeta):
    """The old data step ``x -= ζ Jᵀ Aᵀ r/||r||`` (rule ``norm`` with the cap lifted) falls into a
    period-2 cycle once ``||r|| < ζ ||A||²/2``: checked by hand, its residual plateaus at 0.13
    (ζ = 0.1) and 0.21 (ζ = 0.2) against 0.006 for the capped step, so it fails the test above."""
    with pytest.raises(AssertionError, match="residual"):
        assert_converges(*run_algorithm_1(step_rule="norm", zeta=zeta, step_size=1e9))


def test_operator_norm_is_estimated_once_and_cached():
    op, _, _, _ = problem(noise_std=NOISE)
    like = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    value = operator_norm_sq(op, like)
    assert value == pytest.approx(float(torch.linalg.matrix_norm(MATRIX, 2) ** 2), rel=1e-3)
    op.m = 10 * op.m  # a stale cache would not see this: the value is computed once per operator
    assert operator_norm_sq(op, like) == value


def test_ve_ddnm_estimate_is_consistent_and_not_dds():
    """With an exact pinv, VE-DDNM's x̂0 satisfies ``A x̂0 = y``; DDS with the same budget only
    approaches the data through ρ and its CG steps, so the two samplers give different images."""
    op, y, post_mean, _ = problem(noise_std=1e-9)
    ys = y.expand(CHAINS, 1, -1)
    sigmas = geometric_sigmas(1.0, 0.01, 20)
    out = ve_ddnm(prior(), start(1.0), sigmas, operator=op, y=ys, inner=3, generator=torch.Generator().manual_seed(3))
    assert (op(out) - y).abs().max() < 1e-10
    error = (moments(out)[0] - post_mean).norm()
    assert error < 0.2 * (MEAN - post_mean).norm()
    other = dds(prior(), start(1.0), sigmas, operator=op, y=ys, rho=1.0, cg_iters=1,
                generator=torch.Generator().manual_seed(3))
    assert (op(other) - y).abs().max() > 1e-3
    assert (other - out).abs().max() > 1e-2


def test_ve_ddnm_step_is_langevin_on_the_projected_estimate():
    """One level, one step (the last: no noise): ``x + ε/2 (x̂0 - x)``, returns ``x̂0``."""
    op, y, _, _ = problem(noise_std=0.05)
    p, x, sigma = prior(), start(1.0, chains=3), 0.5
    out = ve_ddnm(p, x, torch.tensor([sigma]), operator=op, y=y.expand(3, 1, -1), inner=1, epsilon=0.5)
    d = p.denoise(x, sigma)
    assert torch.allclose(out, d - op.pinv(op(d) - y))


def test_langevin_data_step_is_the_reference_one():
    """No prior pull at σ -> large variance: one step moves x by ``ζ min(40, 200σ) Aᵀr/||r||``
    plus the prior step (last level: no noise)."""
    op, y, _, _ = problem(noise_std=0.05)
    p, x, sigma, zeta = prior(), start(1.0, chains=2), 0.1, 0.01
    out_state: list[torch.Tensor] = []
    langevin(p, x, torch.tensor([sigma]), operator=op, y=y.expand(2, 1, -1), inner=1, zeta=zeta,
             callback=lambda info: out_state.append(info["x"]))
    r = y - op(x)
    moved = x + zeta * min(40, 200 * sigma) * op.adjoint(r / r.flatten(1).norm(dim=1).reshape(-1, 1, 1))
    expected = moved + 0.5 * (p.denoise(moved, sigma) - moved)  # α/2 · score with α = σ² (ε = 1)
    assert torch.allclose(out_state[0], expected)


def test_defaults_table_drives_the_settings():
    for task in TASKS:
        for sampler in ("padis", "langevin", "pc", "ddnm", "dds"):
            for budget in BUDGETS:
                s = SamplerSettings.for_task(task, sampler, budget)
                assert s.budget == budget and s.sampler == sampler
    paper = SamplerSettings.for_task("ct20", "padis", "paper")
    assert paper.evaluations == 1000 and SamplerSettings.for_task("ct20", "padis", "cpu").evaluations == 200
    assert SamplerSettings.for_task("ct20", "padis", "cpu", steps=3).steps == 3
    assert default_fields("ct20", "dds")["rho"] == 1.0
    with pytest.raises(PadisError):
        SamplerSettings(step_size=2.0)  # beyond the stable limit 2/||A||²
    with pytest.raises(PadisError):
        default_fields("la90", "padis")  # a task without defaults
