"""DDS data consistency in closed form, and the slab prior over a volume (2D network, slabs of
k slices folded into channels) through the same PatchPrior and solver code."""

import torch

from padis3d.priors.patch import PatchPrior
from padis3d.solvers.common import init_state
import pytest

from padis3d.errors import PadisError
from padis3d.solvers.dds import data_consistency, data_consistency_tv_z, dds
from padis3d.solvers.schedules import geometric_sigmas
from tests.solvers.gaussian_case import MATRIX, MEAN, moments, prior, problem
from tests.solvers.test_patch_prior import TinyDenoiser


def test_data_consistency_solves_the_regularised_least_squares():
    op, y, _, _ = problem(noise_std=0.05)
    x0 = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    rho = 0.7
    out = data_consistency(op, y.expand(3, 1, -1), x0, rho, iters=64)
    lhs = MATRIX.T @ MATRIX + rho * torch.eye(64, dtype=torch.float64)
    expected = torch.linalg.solve(lhs, (MATRIX.T @ y.flatten())[:, None] + rho * x0.flatten(1).T).T
    assert torch.allclose(out.flatten(1), expected, atol=1e-8)


class Identity:
    def __call__(self, x):
        return x

    adjoint = __call__


@pytest.mark.parametrize("gap", [0.2, 3.0])
def test_tv_z_data_step_matches_the_two_slice_closed_form(gap):
    # A = I on a 2-slice, 1x1 volume: min (1+ρ)/2 ||x - w||² + λ|x1 - x0| with w = (y + ρ x0)/(1+ρ)
    # moves both slices towards each other by λ/(1+ρ), or merges them at their mean.
    rho, lam = 0.5, 0.6
    y = torch.tensor([0.0, gap], dtype=torch.float64).view(1, 1, 2, 1, 1)
    x0 = torch.tensor([0.3, gap + 0.3], dtype=torch.float64).view(1, 1, 2, 1, 1)
    w = ((y + rho * x0) / (1 + rho)).flatten()
    step = lam / (1 + rho)
    expected = (w + torch.tensor([step, -step], dtype=torch.float64) if w[1] - w[0] > 2 * step
                else w.mean().expand(2))
    out = data_consistency_tv_z(Identity(), y, x0, rho, iters=10, tv_z=lam, admm_iters=400)
    assert torch.allclose(out.flatten(), expected, atol=1e-6)


def test_tv_z_data_step_only_couples_slices_along_z_and_refuses_images():
    x0 = torch.rand(2, 1, 5, 4, 4, dtype=torch.float64)
    x0[:, :, :, :, 2:] = 0.5  # the right half is constant along z: TV along z keeps it
    out = data_consistency_tv_z(Identity(), x0, x0, 1.0, iters=10, tv_z=0.05, admm_iters=50)
    assert torch.allclose(out[..., 2:], x0[..., 2:], atol=1e-6)
    assert out.diff(dim=2).abs().sum() < x0.diff(dim=2).abs().sum() - 0.1
    with pytest.raises(PadisError, match="volumes"):
        data_consistency_tv_z(Identity(), x0[:, :, 0], x0[:, :, 0], 1.0, iters=5, tv_z=0.1)


def test_dds_fits_the_data_and_lands_near_the_posterior():
    op, y, post_mean, _ = problem(noise_std=0.01)
    x = init_state(prior(), (500, 1), 10.0, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = dds(prior(), x, geometric_sigmas(10, 0.01, 30), operator=op, y=y.expand(500, 1, -1), rho=0.1,
              cg_iters=10, generator=torch.Generator().manual_seed(1))
    assert (op(out) - y).flatten(1).norm(dim=1).max() < 0.05 * (op(MEAN[None, None]) - y).norm()
    assert (moments(out)[0] - post_mean).norm() < 0.3 * (MEAN - post_mean).norm()


def test_slab_prior_denoises_each_slab_with_the_2d_network():
    """A (3, 8, 8) tile folded along z: the 2D network sees 3 slices as channels and the
    in-plane positions, and its output goes back to the slab's slices."""
    torch.manual_seed(0)
    net = TinyDenoiser(channels=3).double()

    def denoiser2d(x, sigma, positions):  # keep y, x of the folded positions (z, y, x)
        return net(x, sigma, positions[:, 1:])
    volume = PatchPrior(denoiser2d, (7, 12, 10), (3, 8, 8), fold_axes=(0,))
    x = torch.randn(1, 1, *volume.state_shape, dtype=torch.float64)
    shift = (1, 3, 2)
    out = volume.denoise(x, 0.4, shift=shift)
    g = volume.grid
    pos = g.positions(shift, dtype=torch.float64)
    tiles = g.extract(x, shift)                               # (n, 1, 3, 8, 8)
    expected = net(tiles[:, 0], torch.full((g.num_tiles,), 0.4, dtype=torch.float64), pos[:, 1:, 0])
    assert torch.allclose(out, g.scatter(expected[:, None], shift), atol=1e-12)


def test_dds_runs_on_a_volume_with_the_slab_prior():
    from padis3d.operators import ParallelBeam3D

    torch.manual_seed(0)
    net = TinyDenoiser(channels=3).double()
    volume = PatchPrior(lambda x, s, p: net(x, s, p[:, 1:]), (6, 16, 16), (3, 8, 8), fold_axes=(0,))
    truth = torch.zeros(1, 1, 6, 16, 16, dtype=torch.float64)
    truth[..., 4:12, 5:11] = 0.8
    op = ParallelBeam3D((6, 16, 16), views=12)
    y = op(truth.float()).double()
    x = init_state(volume, (1, 1), 1.0, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = dds(volume, x, geometric_sigmas(1.0, 0.05, 4), operator=_as_float64(op), y=y, rho=0.05, cg_iters=20,
              generator=torch.Generator().manual_seed(3))
    assert out.shape == truth.shape
    # an untrained network's estimate is junk; the CG data step still makes it fit the data
    junk = volume.crop(volume.denoise(x, 0.05, shift=(0, 0, 0)))
    assert (op(out.float()) - y.float()).norm() < 0.05 * (op(junk.float()) - y.float()).norm()


def _as_float64(op):
    """The astra operators compute in float32: wrap them for a float64 state."""
    class Wrapped:
        def __call__(self, x):
            return op(x.float()).double()

        def adjoint(self, y):
            return op.adjoint(y.float()).double()
    return Wrapped()
