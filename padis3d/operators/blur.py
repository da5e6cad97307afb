"""Deblurring operator: convolution with a uniform (box) or Gaussian kernel.

Boundary handling: ``'circular'`` (default, used by the reference numbers) is periodic
convolution computed with ``torch.fft`` and its exact adjoint (correlation); ``'zero'``
is zero-padded "same" convolution with ``conv_transpose`` as exact adjoint.  Works on
any number of spatial axes (1-3) for circular, 2D for zero padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from padis3d.errors import PadisError
from padis3d.operators.base import LinearOperator, check_tensor


def uniform_kernel(size: int = 9, ndim: int = 2) -> torch.Tensor:
    """``size**ndim`` box kernel summing to 1."""
    if size < 1:
        raise PadisError(f"kernel size must be >= 1, got {size}")
    return torch.full((size,) * ndim, 1.0 / size ** ndim)


def gaussian_kernel(sigma: float, size: int | None = None, ndim: int = 2) -> torch.Tensor:
    """Isotropic Gaussian kernel (std ``sigma`` pixels, odd ``size`` default ``2*ceil(3σ)+1``), sum 1."""
    if not sigma > 0:
        raise PadisError(f"Gaussian sigma must be > 0 pixels, got {sigma}")
    size = size or 2 * int(torch.ceil(torch.tensor(3.0 * sigma))) + 1
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g1 = torch.exp(-0.5 * (r / sigma) ** 2)
    k = g1
    for _ in range(ndim - 1):
        k = k[..., None] * g1
    return (k / k.sum()).float()


class Blur(LinearOperator):
    """``y = k * x`` on images ``(B, C, *image_shape)``; output has the same shape."""

    def __init__(self, image_shape: Sequence[int], kernel: torch.Tensor | None = None,
                 boundary: str = "circular", device: str | torch.device | None = "cpu") -> None:
        shape = tuple(int(s) for s in image_shape)
        super().__init__(shape, shape, device)
        k = uniform_kernel(9, len(shape)) if kernel is None else torch.as_tensor(kernel, dtype=torch.float32)
        if k.ndim != len(shape) or any(ks > s for ks, s in zip(k.shape, shape)):
            raise PadisError(f"kernel of shape {tuple(k.shape)} does not fit images of shape {shape}")
        if not bool(torch.isfinite(k).all()):
            raise PadisError("blur kernel contains NaN or Inf")
        if boundary not in ("circular", "zero"):
            raise PadisError(f"unknown boundary {boundary!r}; use 'circular' or 'zero'")
        if boundary == "zero" and (k.ndim != 2 or any(s % 2 == 0 for s in k.shape)):
            raise PadisError("boundary='zero' needs a 2D kernel with odd sizes")
        self.kernel, self.boundary = k.to(self.device), boundary
        if boundary == "circular":
            # kernel centre moved to index 0 so that the blur does not shift the image
            pad = torch.zeros(shape, device=self.device)
            pad[tuple(slice(0, s) for s in k.shape)] = self.kernel
            pad = torch.roll(pad, [-(s // 2) for s in k.shape], dims=tuple(range(len(shape))))
            self.otf = torch.fft.rfftn(pad)

    def _fft(self, x: torch.Tensor, otf: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(1, x.ndim))
        return torch.fft.irfftn(torch.fft.rfftn(x.float(), dim=dims) * otf, s=self.in_shape, dim=dims).to(x.dtype)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.boundary == "circular":
            return self._fft(x, self.otf)
        w = self.kernel.flip(0, 1)[None, None].to(x.dtype)  # conv2d correlates: flip for convolution
        return F.conv2d(x[:, None], w, padding=tuple(s // 2 for s in w.shape[2:]))[:, 0]

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self.boundary == "circular":
            return self._fft(y, self.otf.conj())
        w = self.kernel.flip(0, 1)[None, None].to(y.dtype)
        return F.conv_transpose2d(y[:, None], w, padding=tuple(s // 2 for s in w.shape[2:]))[:, 0]

    def pinv(self, y: torch.Tensor, rcond: float = 1e-3) -> torch.Tensor:
        """Truncated Fourier pseudo-inverse (circular only): frequencies with
        ``|H| < rcond * max|H|`` are set to zero."""
        if self.boundary != "circular":
            raise PadisError("Blur.pinv exists for boundary='circular' only; use a solver from padis3d.baselines")
        check_tensor(y, self.out_shape, "measurement y")
        mag = self.otf.abs()
        inv = torch.where(mag >= rcond * mag.max(), 1.0 / torch.where(mag > 0, self.otf, 1.0), 0.0)
        b, c = y.shape[:2]
        return self._fft(y.reshape(b * c, *self.out_shape), inv).reshape(y.shape)
