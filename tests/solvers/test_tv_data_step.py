"""TV inside DDS's data step (issue 28 §4): ``min ½||Ax - y||² + ρ/2||x - D||² + λ TV(x)``.

λ = 0 is today's DDS bit for bit; with λ > 0 the step lowers that objective below its start and below
the plain CG step (even the exact quadratic minimiser); with A = I it is the ROF (TV-denoising)
solution of ``(y + ρD)/(1 + ρ)`` with weight ``λ/(1 + ρ)`` (skimage's Chambolle solver as the reference);
TV along z keeps its former algorithm; the option reaches the sampler and report.json (``--tv 0`` turns
the defaults table's weight off)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from padis3d.baselines.tasks import make_task
from padis3d.baselines.tv import gradient, gradient_adjoint
from padis3d.errors import PadisError
from padis3d.solvers.common import noise_like
from padis3d.solvers.dds import data_consistency, data_consistency_tv_z, data_step, dds
from padis3d.solvers.reconstruct import SamplerSettings, reconstruct
from padis3d.solvers.schedules import geometric_sigmas
from padis3d.solvers.tv_data_step import data_consistency_tv, shrink, tv_data_objective
from tests.solvers.gaussian_case import prior as gaussian_prior
from tests.solvers.gaussian_case import problem as gaussian_problem


class Identity:
    def __call__(self, x):
        return x

    adjoint = __call__


def smooth_image(n: int = 32, seed: int = 0) -> torch.Tensor:
    """A piecewise-constant disc-and-square phantom plus mild texture ``(1, 1, n, n)`` in [0, 1]."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    img = 0.2 + 0.5 * ((xx ** 2 + yy ** 2) < 0.5).float() + 0.2 * ((xx.abs() < 0.2) & (yy.abs() < 0.3)).float()
    g = torch.Generator().manual_seed(seed)
    return (img + 0.02 * torch.randn(n, n, generator=g)).clamp(0, 1)[None, None].double()


def todays_dds(prior, x, sigmas, op, y, rho, cg_iters, eta, generator):
    """DDS as it was before the TV option (first order): plain CG data step at every level."""
    levels = [float(s) for s in sigmas]
    for i, sigma in enumerate(levels):
        d = prior.denoise(x, sigma, generator=generator)
        image = prior.crop(d)
        fixed = data_consistency(op, y, image, rho, cg_iters)
        den = d + prior.embed(fixed - image)
        if i < len(levels) - 1:
            z = noise_like(x, generator)
            x = den + levels[i + 1] * (eta * z + math.sqrt(1 - eta ** 2) * (x - d) / sigma)
    return fixed


def test_tv_zero_is_bit_identical_to_todays_dds():
    op, y, _, _ = gaussian_problem(noise_std=0.05)
    y = y.expand(2, 1, -1)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    sigmas = geometric_sigmas(2.0, 0.02, 6)
    kw = dict(operator=op, y=y, rho=0.5, cg_iters=3, eta=0.85)
    want = todays_dds(gaussian_prior(), x.clone(), sigmas, op, y, 0.5, 3, 0.85, torch.Generator().manual_seed(4))
    for extra in ({}, {"tv": 0.0}):
        got = dds(gaussian_prior(), x.clone(), sigmas, generator=torch.Generator().manual_seed(4), **kw, **extra)
        assert torch.equal(got, want)
    with_tv = dds(gaussian_prior(), x.clone(), sigmas, generator=torch.Generator().manual_seed(4), **kw, tv=0.01)
    assert (with_tv - want).abs().max() > 1e-4  # the option acts


def test_settings_pass_tv_to_the_sampler():
    op, y, _, _ = gaussian_problem(noise_std=0.05)
    base = dict(sampler="dds", steps=4, sigma_max=1.0, sigma_min=0.05, rho=0.5, cg_iters=3, seed=2)
    plain = reconstruct(gaussian_prior(), op, y, SamplerSettings(**base))
    assert torch.equal(plain, reconstruct(gaussian_prior(), op, y, SamplerSettings(**base, tv=0.0)))
    tv = reconstruct(gaussian_prior(), op, y, SamplerSettings(**base, tv=0.05))
    assert tv.shape == plain.shape and not torch.allclose(tv, plain, atol=1e-4)
    assert SamplerSettings(**base, tv=0.05).to_dict()["tv"] == 0.05
    for bad in (dict(base, tv=-1.0), dict(base, tv=float("nan")), dict(base, sampler="padis", tv=0.1)):
        with pytest.raises(PadisError, match="tv"):
            SamplerSettings(**bad)


@pytest.mark.parametrize("task_name, factor", [("ct20", 0.3), ("deblur", 0.3), ("sr4", 1.0)])
def test_tv_step_lowers_the_objective_below_start_and_plain_cg(task_name, factor):
    from padis3d.baselines.tv_weights import tv_weight
    from padis3d.solvers.defaults import DDS_RHO

    task = make_task(task_name, 32)
    truth = smooth_image(32).float()
    y = task.measure(truth)
    x0 = truth + 0.05 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(1))  # a noisy estimate D
    rho, lam = DDS_RHO[task_name], factor * tv_weight(task_name, 128)

    def f(x):
        return float(tv_data_objective(task.op, y, x, x0, rho, lam, [1, 1]))

    out = data_step(task.op, y, x0, rho, 5, tv=lam)
    cg = data_consistency(task.op, y, x0, rho, 5)
    exact_quadratic = data_consistency(task.op, y, x0, rho, 200)
    assert f(out) < f(x0) and f(out) < f(cg) and f(out) < f(exact_quadratic)
    converged = data_consistency_tv(task.op, y, x0, rho, 20, lam, [1, 1], admm_iters=200)
    assert f(converged) <= f(out) + 1e-6 * abs(f(out))  # the few rounds approach the minimum from above
    assert (f(out) - f(converged)) < 0.25 * (f(cg) - f(converged))


@pytest.mark.parametrize("rho, lam", [(1.0, 0.1), (0.1, 0.02)])
def test_identity_operator_gives_the_rof_solution(rho, lam):
    from skimage.restoration import denoise_tv_chambolle

    truth = smooth_image(32, seed=3)
    g = torch.Generator().manual_seed(7)
    y = truth + 0.1 * torch.randn(truth.shape, generator=g, dtype=torch.float64)
    d = truth + 0.1 * torch.randn(truth.shape, generator=g, dtype=torch.float64)
    w = ((y + rho * d) / (1 + rho))[0, 0].numpy()
    # skimage: argmin_u ½||u - w||² + weight TV(u) (isotropic, forward differences, Neumann boundary)
    rof = denoise_tv_chambolle(w, weight=lam / (1 + rho), eps=1e-9, max_num_iter=20000)
    out = data_consistency_tv(Identity(), y, d, rho, 10, lam, [1, 1], admm_iters=1500)[0, 0].numpy()
    assert np.abs(out - rof).max() < 2e-3
    assert np.abs(w - rof).max() > 0.02  # TV moved the solution: the comparison is not vacuous
    wrong = denoise_tv_chambolle(w, weight=lam, eps=1e-9, max_num_iter=20000)  # the scaling that is wrong
    assert np.abs(out - wrong).max() > 5 * np.abs(out - rof).max()


def test_shrink_is_the_isotropic_proximal_map():
    g = torch.tensor([[3.0, 0.0], [4.0, 0.1]]).reshape(1, 1, 2, 2)  # voxel 0: (3, 4), |5|; voxel 1: (0, 0.1)
    out = shrink(g, 1.0)
    assert torch.allclose(out[0, 0, :, 0], torch.tensor([2.4, 3.2]))  # length 5 -> 4, same direction
    assert torch.equal(out[0, 0, :, 1], torch.zeros(2))


def old_tv_z(operator, y, x0, rho, iters, tv_z, admm_iters=3):
    """The TV-along-z data step as it was (penalty ρ, ``v = ∂_z x0``, scalar soft threshold)."""
    from padis3d.baselines.cg import conjugate_gradient

    def dz(v):
        return gradient(v, [1.0])[:, :, 0]

    def dzt(q):
        return gradient_adjoint(q[:, :, None], [1.0])

    rhs0 = operator.adjoint(y) + rho * x0
    x, u = x0, torch.zeros_like(x0)
    v = dz(x)
    for _ in range(admm_iters):
        x = conjugate_gradient(lambda t: operator.adjoint(operator(t)) + rho * (t + dzt(dz(t))),
                               rhs0 + rho * dzt(v - u), x0=x, iters=iters)
        g = dz(x) + u
        v = g.sign() * (g.abs() - tv_z / rho).clamp_min(0)
        u = g - v
    return x


def test_tv_z_keeps_its_algorithm():
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 1, 6, 5, 4, generator=g, dtype=torch.float64)
    y = x0 + 0.1 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    for admm in (1, 3):
        new = data_consistency_tv_z(Identity(), y, x0, 0.7, 4, 0.05, admm)
        assert torch.allclose(new, old_tv_z(Identity(), y, x0, 0.7, 4, 0.05, admm), atol=1e-12)
        assert torch.equal(data_step(Identity(), y, x0, 0.7, 4, tv_z=0.05, admm_iters=admm), new)


def test_volume_in_plane_tv_and_shape_errors():
    g = torch.Generator().manual_seed(1)
    vol = torch.rand(1, 1, 3, 8, 8, generator=g, dtype=torch.float64)
    out = data_step(Identity(), vol, vol, 1.0, 10, tv=0.05, admm_iters=50)
    # slice by slice: each slice equals the 2D step on that slice alone
    for k in range(3):
        alone = data_step(Identity(), vol[:, :, k], vol[:, :, k], 1.0, 10, tv=0.05, admm_iters=50)
        assert torch.allclose(out[:, :, k], alone, atol=1e-10)
    both = data_step(Identity(), vol, vol, 1.0, 10, tv=0.05, tv_z=0.05, admm_iters=50)
    assert (both - out).abs().max() > 1e-3  # the z term couples the slices
    with pytest.raises(PadisError, match="volumes"):
        data_step(Identity(), vol[:, :, 0], vol[:, :, 0], 1.0, 5, tv_z=0.1)
    with pytest.raises(PadisError, match="images"):
        data_step(Identity(), vol[:, :, 0, 0], vol[:, :, 0, 0], 1.0, 5, tv=0.1)
    op, y, _, _ = gaussian_problem(noise_std=0.05)
    with pytest.raises(PadisError, match="tv >= 0"):
        dds(gaussian_prior(), torch.zeros(1, 1, 8, 8, dtype=torch.float64), torch.tensor([1.0]), operator=op, y=y,
            tv=-0.1)


def test_cli_records_tv_in_report(tmp_path):
    from padis3d import cli
    from padis3d.priors.checkpoint import FORMAT_PRIOR, atomic_save
    from padis3d.priors.network import EDMDenoiser
    from tests.prior.prior_helpers import blob_images, perturbed, tiny_config

    model = perturbed(EDMDenoiser(tiny_config()))
    atomic_save({"format": FORMAT_PRIOR, "format_version": 1, "config": tiny_config().to_dict(),
                 "ema": model.state_dict(), "meta": {"image_shape": [32, 32], "patch_sizes": [16, 8]}},
                tmp_path / "tiny.pt")
    np.save(tmp_path / "image.npy", blob_images(1, 32)[0, 0].numpy())
    common = ["reconstruct", "--checkpoint", str(tmp_path / "tiny.pt"), "--input", str(tmp_path / "image.npy"),
              "--size", "32", "--steps", "3", "--no-progress", "--task", "deblur", "--sampler", "dds"]
    runs = {"tv": ["--tv", "0.002"], "table": [], "off": ["--tv", "0"]}
    for name, extra in runs.items():
        assert cli.main([*common, *extra, "--out", str(tmp_path / name)]) == 0
    reports = {k: json.loads((tmp_path / k / "report.json").read_text()) for k in runs}
    table = SamplerSettings.for_task("deblur", "dds").tv  # --budget cpu: the defaults table's weight
    assert table > 0 and [reports[k]["settings"]["tv"] for k in runs] == [0.002, table, 0.0]
    assert len({json.dumps(reports[k]["identity"], sort_keys=True) for k in runs}) == 3
    a, b = (np.load(tmp_path / k / "reconstruction.npy") for k in ("tv", "off"))
    assert not np.allclose(a, b, atol=1e-5)
    assert cli.main([*common[:-2], "--sampler", "padis", "--tv", "0.1", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
