"""Super-resolution operators (factor 4 default) on any number of spatial axes:
block averaging (``f×f`` average pooling) and nearest-neighbour sampling (keep one pixel
per block, at ``offset``), both with exact adjoints written as reshapes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from padis3d.errors import PadisError
from padis3d.operators.base import LinearOperator, check_tensor


def _blocks(x: torch.Tensor, f: int) -> torch.Tensor:
    """``(n, f*a, f*b, ...) -> (n, a, f, b, f, ...)``."""
    shape = [x.shape[0]]
    for s in x.shape[1:]:
        shape += [s // f, f]
    return x.reshape(shape)


class _Resample(LinearOperator):
    def __init__(self, image_shape: Sequence[int], factor: int, device) -> None:
        shape = tuple(int(s) for s in image_shape)
        if int(factor) != factor or factor < 1:
            raise PadisError(f"the resampling factor must be an integer >= 1, got {factor}")
        if any(s % factor for s in shape):
            raise PadisError(f"image shape {shape} must be divisible by the factor {factor}; crop or pad the image")
        self.factor = int(factor)
        super().__init__(shape, tuple(s // factor for s in shape), device)

    def _lift(self, y: torch.Tensor) -> torch.Tensor:
        """Zeros ``(n, a, f, b, f, ...)`` with the block grid of ``y``."""
        return _blocks(y.new_zeros(y.shape[0], *self.in_shape), self.factor)


class BlockAverage(_Resample):
    """``(B, C, *shape) -> (B, C, *shape/f)`` by averaging ``f**d`` blocks (the SR x4 task)."""

    def __init__(self, image_shape: Sequence[int], factor: int = 4, device: str | torch.device | None = "cpu") -> None:
        super().__init__(image_shape, factor, device)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return _blocks(x, self.factor).mean(dim=tuple(range(2, 2 * len(self.in_shape) + 1, 2)))

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        d = len(self.in_shape)
        idx = (slice(None),) + (slice(None), None) * d
        lifted = self._lift(y) + y[idx] / self.factor ** d
        return lifted.reshape(y.shape[0], *self.in_shape)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """Pixel replication (``A A^T = f^-d I`` so ``A^+ = f^d A^T``)."""
        return self.adjoint(y) * self.factor ** len(self.in_shape)


class NearestSample(_Resample):
    """``(B, C, *shape) -> (B, C, *shape/f)`` keeping pixel ``offset`` of every block."""

    def __init__(self, image_shape: Sequence[int], factor: int = 4, offset: int = 0,
                 device: str | torch.device | None = "cpu") -> None:
        super().__init__(image_shape, factor, device)
        if not 0 <= offset < factor:
            raise PadisError(f"offset must be in [0, {factor}), got {offset}")
        self.offset = int(offset)

    def _index(self) -> tuple:
        return (slice(None),) + (slice(None), self.offset) * len(self.in_shape)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return _blocks(x, self.factor)[self._index()]

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        lifted = self._lift(y)
        lifted[self._index()] = y
        return lifted.reshape(y.shape[0], *self.in_shape)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """Zero filling (``A A^T = I`` so ``A^+ = A^T``)."""
        return self.adjoint(y)


def upsample(y: torch.Tensor, factor: int = 4, mode: str = "bicubic") -> torch.Tensor:
    """Interpolating upsampling baseline ``(B, C, h, w) -> (B, C, f h, f w)`` (torch
    ``interpolate``, pixel-centre aligned as block averaging is), clipped to [0, 1]."""
    check_tensor(y, tuple(y.shape[2:]), "low-resolution image")
    modes = {2: ("nearest", "bilinear", "bicubic"), 3: ("nearest", "trilinear")}
    if mode not in modes.get(y.ndim - 2, ()):
        raise PadisError(f"mode {mode!r} is not available for {y.ndim - 2}D images; choose from {modes.get(y.ndim - 2)}")
    kw = {} if mode == "nearest" else {"align_corners": False}
    return torch.nn.functional.interpolate(y, scale_factor=factor, mode=mode, **kw).clamp(0, 1)
