"""CT geometry, FBP accuracy, slice-by-slice 3D, and the CUDA / cone-beam guards."""

import math
import subprocess
import sys
import textwrap

import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from padis3d.errors import PadisError
from padis3d.metrics import psnr
from padis3d.operators import FanBeam2D, ParallelBeam2D, ParallelBeam3D, astra_cuda_available


@pytest.fixture(scope="module")
def phantom():
    img = resize(shepp_logan_phantom(), (128, 128), anti_aliasing=True).astype("float32")
    return torch.from_numpy(img)[None, None]


def test_paper_geometry_defaults():
    A = ParallelBeam2D(256)
    assert A.in_shape == (256, 256) and A.out_shape == (20, 512)
    assert A.angles[0] == 0 and math.isclose(A.angles[1], math.pi / 20) and A.angles[-1] < math.pi
    la = ParallelBeam2D(64, views=90, span=math.pi / 2)
    assert math.isclose(math.degrees(la.angles[-1]), 89.0)


def test_line_integrals_in_pixel_units():
    # a constant unit image: the central ray of a 0-degree view crosses 32 pixels
    A = ParallelBeam2D(32, views=4)
    sino = A(torch.ones(1, 1, 32, 32))
    assert abs(float(sino[0, 0, 0, 32]) - 32.0) < 0.5
    assert float(sino[0, 0, 0, :8].abs().max()) == 0.0  # bins outside the image see nothing


@pytest.mark.parametrize("filt,floor", [("ram-lak", 27.0), ("hann", 23.5)])
def test_fbp_60_views_psnr_floor(phantom, filt, floor):
    A = ParallelBeam2D(128, views=60)
    assert psnr(A.fbp(A(phantom), filt), phantom) > floor


def test_fbp_is_scaled_to_invert(chest128):
    A = ParallelBeam2D(128, views=60)
    rec = A.fbp(A(chest128), "ram-lak")
    scale = float((rec * chest128).sum() / (chest128 * chest128).sum())
    assert abs(scale - 1.0) < 0.03
    assert psnr(rec, chest128) > 30.0
    assert torch.equal(A.pinv(A(chest128)), A.fbp(A(chest128), "hann"))


def test_parallel3d_equals_slicewise_2d():
    vol = torch.rand(2, 1, 5, 24, 24, generator=torch.Generator().manual_seed(0))
    A3, A2 = ParallelBeam3D((5, 24, 24), views=9), ParallelBeam2D(24, views=9)
    sino = A3(vol)
    assert sino.shape == (2, 1, 5, 9, 48)
    assert torch.allclose(sino[:, :, 3], A2(vol[:, :, 3]))
    assert torch.allclose(A3.fbp(sino)[:, :, 1], A2.fbp(sino[:, :, 1]))


def test_fan_beam_least_squares_pinv(chest128):
    A = FanBeam2D(128, views=60)
    x = chest128[:1]
    y = A(x)
    rec = A.pinv(y, iters=30)
    assert float((A(rec) - y).norm() / y.norm()) < 0.05
    with pytest.raises(PadisError, match="CUDA"):
        A.fbp(y)


@pytest.mark.parametrize("make,bad_shape", [
    (lambda: ParallelBeam2D(32, views=20), (1, 1, 32, 33)),
    (lambda: ParallelBeam2D(32, views=20), (32, 32)),
    (lambda: ParallelBeam3D((4, 32, 32), views=5), (1, 1, 32, 32)),
])
def test_wrong_image_shape_is_a_clear_error(make, bad_shape):
    with pytest.raises(PadisError, match=r"needs \(batch, channels"):
        make()(torch.zeros(bad_shape))


def test_sinogram_from_another_geometry_is_rejected():
    y = ParallelBeam2D(32, views=8)(torch.rand(1, 1, 32, 32))
    A = ParallelBeam2D(32, views=20)
    with pytest.raises(PadisError, match="20, 64"):
        A.adjoint(y)
    with pytest.raises(PadisError, match="20, 64"):
        A.fbp(y)


def test_non_finite_and_bad_arguments():
    A = ParallelBeam2D(16, views=4)
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 3, 3] = float("nan")
    with pytest.raises(PadisError, match="NaN or Inf"):
        A(x)
    with pytest.raises(PadisError, match="floating-point"):
        A(torch.zeros(1, 1, 16, 16, dtype=torch.int64))
    with pytest.raises(PadisError, match="unknown FBP filter"):
        A.fbp(torch.zeros(1, 1, *A.out_shape), "shepp")
    with pytest.raises(PadisError, match="projector"):
        ParallelBeam2D(16, projector="no-such-projector")
    with pytest.raises(PadisError, match="source_origin"):
        FanBeam2D(64, source_origin=10)
    with pytest.raises(PadisError, match="square"):
        ParallelBeam3D((4, 16, 20))


def _run_isolated(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(astra_cuda_available(), reason="checks the no-CUDA guard")
def test_cone_beam_without_cuda_fails_cleanly_and_process_survives():
    proc = _run_isolated("""
        from padis3d.errors import PadisError
        from padis3d.operators import ConeBeam3D, ParallelBeam2D
        try:
            ConeBeam3D((16, 16, 16))
        except PadisError as exc:
            print("CONE:", exc)
        try:
            ParallelBeam2D(16, use_cuda=True)
        except PadisError as exc:
            print("CUDA2D:", exc)
        print("ALIVE")
    """)
    assert proc.returncode == 0, proc.stderr  # SIGFPE would give -8
    assert "CONE: 3D cone-beam CT needs astra with CUDA" in proc.stdout
    assert "CUDA2D: astra CUDA was requested" in proc.stdout
    assert proc.stdout.strip().endswith("ALIVE")


def test_one_operator_is_safe_to_share_between_threads():
    """astra data objects are shared per operator: concurrent calls must not mix results."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from padis3d.operators import ParallelBeam2D

    op = ParallelBeam2D(32, views=10)
    images = [torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(16)]
    expected = [op(x) for x in images]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda x: op.adjoint(op(x)), images * 3))
    assert all(torch.equal(r, op.adjoint(e)) for r, e in zip(results, expected * 3))


def test_operators_pickle_by_geometry():
    """dask.distributed ships operators to workers: a pickled copy rebuilds its astra objects."""
    import pickle

    import torch

    from padis3d.operators import ParallelBeam2D

    op = ParallelBeam2D(24, views=7)
    x = torch.rand(2, 1, 24, 24)
    copy = pickle.loads(pickle.dumps(op))
    assert torch.equal(copy(x), op(x)) and torch.equal(copy.adjoint(op(x)), op.adjoint(op(x)))
