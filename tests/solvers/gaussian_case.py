"""A Gaussian problem with a closed-form posterior: an 8x8 image whose row-major pixels come in
groups of four with the means/variances below, and a block-diagonal operator applying the
same 2x4 matrix to each group (16 independent copies of a 4-voxel problem; high enough in
dimension for the samplers' per-image step-size rules)."""

import torch

from padis3d.priors.gaussian import GaussianPrior, gaussian_posterior

SHAPE = (8, 8)
MEAN = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=torch.float64).repeat(16).reshape(SHAPE)
VAR = torch.tensor([0.04, 0.09, 0.01, 0.16], dtype=torch.float64).repeat(16).reshape(SHAPE)
BLOCK = torch.tensor([[1.0, 0.5, 0.0, -0.3], [0.2, -1.0, 0.7, 0.4]], dtype=torch.float64)
MATRIX = torch.block_diag(*[BLOCK] * 16)  # (32, 64)


class MatrixOperator:
    """``y = M vec(x)`` per batch item, with exact adjoint and pseudo-inverse."""

    def __init__(self, matrix: torch.Tensor, image_shape: tuple[int, ...]):
        self.m, self.shape = matrix, image_shape
        self.m_pinv = torch.linalg.pinv(matrix)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2) @ self.m.T

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (y @ self.m).reshape(*y.shape[:2], *self.shape)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        return (y @ self.m_pinv.T).reshape(*y.shape[:2], *self.shape)


def prior() -> GaussianPrior:
    return GaussianPrior(MEAN[None, None], VAR[None, None])


def problem(noise_std: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    truth = MEAN + VAR.sqrt() * torch.randn(MEAN.shape, generator=g, dtype=torch.float64)
    op = MatrixOperator(MATRIX, SHAPE)
    y = op(truth[None, None]) + noise_std * torch.randn(1, 1, MATRIX.shape[0], generator=g, dtype=torch.float64)
    mean, cov = gaussian_posterior(MEAN.flatten(), VAR.flatten(), MATRIX, y.flatten(), noise_std)
    return op, y, mean.reshape(SHAPE), cov.diagonal().reshape(SHAPE)


def moments(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return samples.mean(dim=(0, 1)), samples.var(dim=(0, 1))
