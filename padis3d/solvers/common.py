"""Pieces every sampler shares: the sampler-state protocol, noise, initial states, the
data residual and the progress callback (k-diffusion style: a dict per step)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from padis3d.errors import PadisError

Callback = Callable[[dict[str, Any]], None]
"""Called after each step with ``i``, ``n``, ``sigma``, ``x``, ``denoised`` and, when an
operator is given, ``residual`` (the data misfit ``||A crop(D) - y||`` per batch item)."""


class StatePrior(Protocol):
    """What a sampler needs of a prior (PatchPrior, its whole-image mode, GaussianPrior)."""

    state_shape: tuple[int, ...]

    def embed(self, image: torch.Tensor) -> torch.Tensor: ...
    def crop(self, state: torch.Tensor) -> torch.Tensor: ...
    def denoise(self, x: torch.Tensor, sigma: float, *, generator: torch.Generator | None = None
                ) -> torch.Tensor: ...
    def denoise_vjp(self, x: torch.Tensor, sigma: float, cotangent: Callable[[torch.Tensor], torch.Tensor], *,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]: ...


def noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def init_state(prior: StatePrior, batch_channels: Sequence[int], sigma_max: float, *,
               baseline: torch.Tensor | None = None, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """``x_T``: ``σ_max`` noise on the state, around ``embed(baseline)`` (e.g. an FBP image) if given."""
    shape = (*batch_channels, *prior.state_shape)
    z = torch.randn(shape, generator=generator, dtype=dtype, device=device or "cpu")
    if baseline is None:
        return sigma_max * z
    return prior.embed(baseline.to(z)) + sigma_max * z


def batch_norm(r: torch.Tensor) -> torch.Tensor:
    """Euclidean norm per batch item, shaped to broadcast against ``r``."""
    return r.flatten(1).norm(dim=1).reshape(-1, *[1] * (r.ndim - 1))


def check_problem(operator: Any, y: torch.Tensor | None, sigmas: torch.Tensor, x: torch.Tensor) -> None:
    if (operator is None) != (y is None):
        raise PadisError("give both operator and y (a posterior sampler) or neither (generation)")
    if len(sigmas) < 1:
        raise PadisError("sigmas must hold at least one noise level")
    if not torch.isfinite(x).all() or (y is not None and not torch.isfinite(y).all()):
        raise PadisError("the initial state or the measurements contain NaN or Inf")


def report(callback: Callback | None, i: int, n: int, sigma: float, x: torch.Tensor, denoised: torch.Tensor,
           residual: torch.Tensor | None = None) -> None:
    if callback is not None:
        callback({"i": i, "n": n, "sigma": sigma, "x": x, "denoised": denoised,
                  "residual": None if residual is None else residual.flatten()})


def operator_norm_sq(operator: Any, like: torch.Tensor, iters: int = 50, seed: int = 0) -> float:
    """``||A||₂²`` (largest eigenvalue of ``AᵀA``) by ``iters`` power iterations from a seeded
    random image shaped like one item of ``like`` ``(B, C, *image)``; cached on the operator as
    ``_norm_sq`` (computed once per operator). Power iteration approaches from below, so the
    estimate is at most a few per cent low: stable step rules keep a margin (``c < 2``)."""
    cached = getattr(operator, "_norm_sq", None)
    if cached is not None:
        return cached
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(like[:1].shape, generator=gen, dtype=like.dtype).to(like.device)
    value = 0.0
    with torch.no_grad():
        for _ in range(iters):
            v = v / v.norm()
            v = operator.adjoint(operator(v))
            value = float(v.norm())
    try:
        operator._norm_sq = value
    except AttributeError:  # operators with __slots__: recompute next time
        pass
    return value
