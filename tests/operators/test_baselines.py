"""ADMM-TV, PnP-ADMM, CG and direct baselines on our operators."""

import pytest
import torch
from skimage.restoration import denoise_tv_chambolle

from padis3d.baselines import admm_tv, conjugate_gradient, fbp, pnp_admm, pseudo_inverse, tv_norm
from padis3d.errors import PadisError
from padis3d.metrics import image_metrics
from padis3d.operators import LinearOperator, BlockAverage, Blur, ParallelBeam2D, ParallelBeam3D, gaussian_kernel


def _mean_psnr(rec, ref):
    return float(image_metrics(rec, ref)["psnr"].mean())


@pytest.fixture(scope="module")
def ct20(chest128):
    A = ParallelBeam2D(128, views=20)
    return A, A(chest128)


def test_admm_tv_beats_fbp_on_20_view_ct(ct20, chest128):
    A, y = ct20
    base = _mean_psnr(fbp(A, y), chest128)
    rec = admm_tv(A, y, lam=0.1, max_iter=200)
    assert float(rec.min()) >= 0.0
    assert _mean_psnr(rec, chest128) > base + 4.0


def test_admm_tv_decreases_its_objective(ct20, chest128):
    A, y = ct20
    y = y[:1]
    lam = 0.1

    def objective(x):
        return float(0.5 * (A(x) - y).pow(2).sum() + lam * tv_norm(x).sum())

    a = A.norm()
    short = admm_tv(A, y, lam, max_iter=20, tol=0, op_norm=a)
    long = admm_tv(A, y, lam, max_iter=200, tol=0, op_norm=a)
    assert objective(long) < objective(short) < objective(torch.zeros_like(long))  # zero is the start
    assert objective(long) < objective(fbp(A, y))


def test_admm_tv_stopping_rule_and_nonnegativity():
    A = Blur((32, 32), gaussian_kernel(1.0))
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0)) - 0.5  # negative half
    y = A(x)
    loose = admm_tv(A, y, 1e-3, max_iter=400, tol=1e-2)
    tight = admm_tv(A, y, 1e-3, max_iter=400, tol=0.0)
    assert float(loose.min()) >= 0 and float(tight.min()) >= 0
    assert not torch.allclose(loose, tight, atol=1e-4)  # the loose tolerance stopped early
    capped = admm_tv(A, y, 1e-3, max_iter=50, upper=0.2)
    assert float(capped.max()) <= float(torch.tensor(0.2))


def test_admm_tv_3d_with_zero_axial_weight_is_slicewise_2d():
    vol = torch.rand(1, 1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    A3, A2 = ParallelBeam3D((3, 24, 24), views=8), ParallelBeam2D(24, views=8)
    a = A2.norm()
    rec3 = admm_tv(A3, A3(vol), 0.05, max_iter=40, tol=0, weights=[0.0, 1.0, 1.0], op_norm=a)
    rec2 = admm_tv(A2, A2(vol[0, 0][:, None]), 0.05, max_iter=40, tol=0, op_norm=a)
    assert torch.allclose(rec3[0, 0], rec2[:, 0], atol=1e-5)


def test_admm_tv_3d_uses_the_axial_axis():
    # a volume constant along z with noise that varies along z: z-TV must help
    gen = torch.Generator().manual_seed(2)
    clean = torch.full((1, 1, 8, 16, 16), 0.3)
    clean[..., 4:12, 5:10] = 0.8
    A = BlockAverage((8, 16, 16), factor=1)  # identity: TV denoising
    y = clean + 0.2 * torch.randn(clean.shape, generator=gen)
    flat = admm_tv(A, y, 0.1, max_iter=300, weights=[0.0, 1.0, 1.0], step_ratio=1.0)
    full = admm_tv(A, y, 0.1, max_iter=300, step_ratio=1.0)
    assert (full - clean).norm() < 0.8 * (flat - clean).norm()


def test_pnp_admm_with_a_library_denoiser_beats_fbp(ct20, chest128):
    A, y = ct20

    def denoiser(x):
        out = [denoise_tv_chambolle(v[0].numpy(), weight=0.02) for v in x]
        return torch.from_numpy(__import__("numpy").stack(out))[:, None].float()

    rec = pnp_admm(A, y, denoiser, rho=100.0, iters=15)
    assert _mean_psnr(rec, chest128) > _mean_psnr(fbp(A, y), chest128) + 2.5
    with pytest.raises(PadisError, match="denoiser must return"):
        pnp_admm(A, y, lambda x: x[..., :-1], iters=1)


def test_conjugate_gradient_solves_batched_normal_equations():
    A, rho = Blur((32, 32), gaussian_kernel(1.5)), 0.05
    b = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    b[1] *= 100.0  # independent per item: scale must not matter
    x = conjugate_gradient(lambda v: A.normal(v) + rho * v, b, iters=200, tol=1e-7)
    exact = torch.fft.irfft2(torch.fft.rfft2(b) / (A.otf.abs() ** 2 + rho), s=(32, 32))
    assert float(((x - exact).flatten(1).norm(dim=1) / exact.flatten(1).norm(dim=1)).max()) < 1e-4


def test_direct_baselines():
    A = BlockAverage((32, 32))
    x = torch.rand(1, 1, 32, 32)
    assert torch.allclose(A(pseudo_inverse(A, A(x))), A(x), atol=1e-6)
    with pytest.raises(PadisError, match="no pseudo-inverse"):
        pseudo_inverse(LinearOperator((4, 4), (4, 4)), torch.zeros(1, 1, 4, 4))


def test_tasks_noise_options(chest128):
    from padis3d.baselines.tasks import make_task
    x = chest128[:1]
    clean = make_task("ct20", 128).measure(x)
    assert torch.equal(clean, ParallelBeam2D(128, views=20)(x))  # reference setting: noiseless CT
    photons = make_task("ct20", 128, incident_count=1e4)
    a, b = photons.measure(x, seed=1), photons.measure(x, seed=1)
    assert torch.equal(a, b) and 0 < float((a - clean).std()) < 0.1 * float(clean.std())
    sr = make_task("sr4", 128)
    assert abs(float((sr.measure(x) - sr.op(x)).std()) - 0.01) < 1e-3
