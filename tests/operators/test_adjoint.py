"""Dot-product adjoint test <A x, y> = <x, Aᵀ y> and autograd backward = adjoint, for every
operator and geometry, batched over (batch, channels)."""

import math

import pytest
import torch

from padis3d.baselines.tv import gradient, gradient_adjoint
from padis3d.operators import (BlockAverage, Blur, FanBeam2D, NearestSample, ParallelBeam2D, ParallelBeam3D,
                               gaussian_kernel, uniform_kernel)

def _asymmetric_kernel(shape):
    """A random positive kernel without any symmetry (a user's motion blur), summing to 1."""
    k = torch.rand(shape, generator=torch.Generator().manual_seed(7)) + 0.1
    return k / k.sum()


OPERATORS = {
    "parallel-linear-20": lambda: ParallelBeam2D(32, views=20),
    "parallel-line-8": lambda: ParallelBeam2D(32, views=8, projector="line"),
    "parallel-strip-60": lambda: ParallelBeam2D(32, views=60, projector="strip"),
    "parallel-limited-90": lambda: ParallelBeam2D(32, views=90, span=math.pi / 2),
    "parallel-odd-bins": lambda: ParallelBeam2D(30, views=7, detector_bins=41, detector_spacing=0.8),
    "fan-line": lambda: FanBeam2D(32, views=20),
    "fan-strip": lambda: FanBeam2D(32, views=12, projector="strip_fanflat", source_origin=100, origin_detector=40),
    "parallel3d": lambda: ParallelBeam3D((4, 32, 32), views=10),
    "blur-uniform-circular": lambda: Blur((32, 32)),
    "blur-gauss-circular": lambda: Blur((32, 30), gaussian_kernel(1.5)),
    "blur-uniform-zero": lambda: Blur((32, 32), uniform_kernel(9), boundary="zero"),
    "blur-gauss-zero": lambda: Blur((31, 32), gaussian_kernel(2.0), boundary="zero"),
    "blur-3d-circular": lambda: Blur((8, 16, 16), uniform_kernel(3, ndim=3)),
    # asymmetric kernels: a symmetric kernel hides a missing flip in the adjoint (issue 19)
    "blur-asym-circular": lambda: Blur((32, 30), _asymmetric_kernel((5, 3))),
    "blur-asym-zero": lambda: Blur((31, 32), _asymmetric_kernel((5, 3)), boundary="zero"),
    "blur-asym-3d-circular": lambda: Blur((8, 16, 16), _asymmetric_kernel((3, 5, 2))),
    "block-average-4": lambda: BlockAverage((32, 32)),
    "block-average-3d": lambda: BlockAverage((8, 16, 16), factor=2),
    "nearest-4": lambda: NearestSample((32, 32)),
    "nearest-4-offset": lambda: NearestSample((32, 32), offset=2),
    "nearest-3d": lambda: NearestSample((8, 16, 16), factor=2, offset=1),
}


def _rand(shape, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) - 0.3


def _dot(a, b):
    return float((a.double() * b.double()).sum())


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_dot_product_adjoint(name):
    A = OPERATORS[name]()
    x, y = _rand((2, 3, *A.in_shape), 0), _rand((2, 3, *A.out_shape), 1)
    ax, aty = A(x), A.adjoint(y)
    assert ax.shape == y.shape and aty.shape == x.shape
    lhs, rhs = _dot(ax, y), _dot(x, aty)
    assert abs(lhs - rhs) / abs(lhs) < 1e-5


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_autograd_backward_is_adjoint(name):
    A = OPERATORS[name]()
    x = _rand((2, 1, *A.in_shape), 2).requires_grad_(True)
    y = _rand((2, 1, *A.out_shape), 3)
    loss = (A(x) - y).pow(2).sum()
    (g,) = torch.autograd.grad(loss, x)
    with torch.no_grad():
        expected = 2 * A.adjoint(A(x) - y)
    assert torch.allclose(g, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


@pytest.mark.parametrize("name", ["parallel-linear-20", "fan-line", "blur-uniform-circular", "nearest-4"])
def test_autograd_through_adjoint(name):
    A = OPERATORS[name]()
    y = _rand((1, 2, *A.out_shape), 4).requires_grad_(True)
    w = _rand((1, 2, *A.in_shape), 5)
    (g,) = torch.autograd.grad((A.adjoint(y) * w).sum(), y)
    assert torch.allclose(g, A(w), rtol=1e-5, atol=1e-6 * float(A(w).abs().max()))


@pytest.mark.parametrize("name", ["parallel-linear-20", "fan-strip", "parallel3d", "blur-gauss-zero", "block-average-3d"])
def test_batch_items_are_independent(name):
    A = OPERATORS[name]()
    x = _rand((3, 2, *A.in_shape), 6)
    full = A(x)
    for b in range(3):
        for c in range(2):
            assert torch.allclose(full[b, c], A(x[b:b + 1, c:c + 1])[0, 0])


@pytest.mark.parametrize("shape,weights", [((16, 20), [1.0, 1.0]), ((6, 12, 10), [0.5, 1.0, 2.0])])
def test_tv_gradient_adjoint(shape, weights):
    x = _rand((2, 1, *shape), 7)
    q = _rand((2, 1, len(shape), *shape), 8)
    lhs, rhs = _dot(gradient(x, weights), q), _dot(x, gradient_adjoint(q, weights))
    assert abs(lhs - rhs) / abs(lhs) < 1e-5
