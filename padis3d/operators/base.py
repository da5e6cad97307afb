"""Linear-operator interface on torch tensors (DeepInverse-like).

An operator maps images ``(batch, channels, *in_shape)`` to measurements
``(batch, channels, *out_shape)``; subclasses implement ``_forward``/``_adjoint`` on
``(n, *in_shape)``/``(n, *out_shape)`` stacks (``n = batch * channels``).  ``A(x)`` and
``A.adjoint(y)`` go through a ``torch.autograd.Function`` whose backward is the other
map, so operators backed by non-torch code (astra) are differentiable too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from padis3d.device import resolve_device
from padis3d.errors import PadisError


def check_tensor(t: torch.Tensor, spatial: tuple[int, ...], what: str) -> None:
    """PadisError unless ``t`` is a finite floating tensor ``(batch, channels, *spatial)``."""
    if not isinstance(t, torch.Tensor):
        raise PadisError(f"{what} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise PadisError(f"{what} must be a floating-point tensor, got {t.dtype}; convert with .float()")
    if t.ndim != 2 + len(spatial) or tuple(t.shape[2:]) != spatial:
        want = "(batch, channels, " + ", ".join(map(str, spatial)) + ")"
        raise PadisError(f"{what} has shape {tuple(t.shape)} but this operator needs {want}; "
                         "add batch/channel axes with x[None, None] or fix the geometry")
    if not bool(torch.isfinite(t).all()):
        raise PadisError(f"{what} contains NaN or Inf values; clean the input (e.g. torch.nan_to_num)")


class _Apply(torch.autograd.Function):
    """``out = op._forward(x)`` (or ``_adjoint``); backward applies the other map."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, op: "LinearOperator", adjoint: bool) -> torch.Tensor:
        ctx.op, ctx.adjoint = op, adjoint
        return op._adjoint(x) if adjoint else op._forward(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        op = ctx.op
        grad = grad.contiguous()
        return (op._forward(grad) if ctx.adjoint else op._adjoint(grad)), None, None


class LinearOperator:
    """``y = A x`` with exact adjoint; ``in_shape``/``out_shape`` are spatial shapes."""

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int],
                 device: str | torch.device | None = "cpu") -> None:
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)
        self.device = resolve_device(device)

    # subclasses implement these on stacks (n, *in_shape) / (n, *out_shape)
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _apply(self, t: torch.Tensor, adjoint: bool) -> torch.Tensor:
        src, dst = (self.out_shape, self.in_shape) if adjoint else (self.in_shape, self.out_shape)
        check_tensor(t, src, "measurement y" if adjoint else "image x")
        if t.device.type != self.device.type:
            raise PadisError(f"input is on {t.device} but the operator was built for {self.device}; "
                             f"move it with .to({str(self.device)!r}) or build the operator with device={str(t.device)!r}")
        b, c = t.shape[:2]
        flat = t.reshape(b * c, *src)
        out = _Apply.apply(flat, self, adjoint)
        return out.reshape(b, c, *dst)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A x``: ``(B, C, *in_shape) -> (B, C, *out_shape)``."""
        return self._apply(x, adjoint=False)

    __call__ = forward

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """Alias of ``forward`` (DeepInverse naming)."""
        return self.forward(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``Aᵀ y``: ``(B, C, *out_shape) -> (B, C, *in_shape)``, exact adjoint of ``forward``."""
        return self._apply(y, adjoint=True)

    A_adjoint = adjoint

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``Aᵀ A x``."""
        return self.adjoint(self.forward(x))

    pinv_is_exact = True  # False where pinv is a stand-in (CT: FBP); VE-DDNM then solves least squares

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """Pseudo-inverse (or FBP) where the operator has one."""
        raise PadisError(f"{type(self).__name__} has no pseudo-inverse; use a solver from padis3d.baselines")

    def norm(self, iters: int = 30, seed: int = 0) -> float:
        """Spectral norm ``||A||₂`` estimated by power iteration on ``AᵀA``."""
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn((1, 1, *self.in_shape), generator=gen).to(self.device)
        s = 0.0
        with torch.no_grad():
            for _ in range(iters):
                x = x / x.norm()
                x = self.normal(x)
                s = float(x.norm())
        return s ** 0.5

    def __repr__(self) -> str:
        return f"{type(self).__name__}(in_shape={self.in_shape}, out_shape={self.out_shape}, device={self.device})"
