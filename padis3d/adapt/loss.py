"""The self-supervised test-time loss and its gradient w.r.t. the adapter, streamed over tiles.

Loss (talk, Hu et al. 2025): ``L(θ) = || y − A x̂ ||² + λ TV(x̂)`` with
``x̂ = crop(D_θ(x_t; σ))`` for one random grid shift (``Σ_c G_cᵀ D_θ(G_c x_t, c)``), or, with
``cg_iters > 0``, the whole-image variant's data step (DDIP / SCD)
``x̂ = CG(crop D) ≈ argmin_x ½||y − A x||² + ½ρ ||x − crop D||²`` (``cg_iters`` steps from
``crop D``; ``ρ = 1/γ`` of the talk's formula). ``TV`` is the smoothed isotropic total
variation ``Σ sqrt(|∇x̂|² + ε²) − ε`` (SCD's optional term). Units: ``y`` in measurement units,
images in [0, 1]; ``L`` is a sum over the whole batch (not a mean).

Bounded memory (:func:`streamed_loss_grad`): (1) assemble ``D`` without a graph (the
tiling engine, in bounded tile batches); (2) the cotangent ``v = ∂L/∂D`` by autograd through
the image-sized part only (crop, CG, A, TV: no network in that graph); (3) re-run each tile
batch of the same shift with a graph and back-propagate its slice of ``v`` into the adapter
(:func:`parameter_vjp`), accumulating. Peak memory: one tile batch of activations plus the
adapter, its gradient and the image-sized loss graph, at any image size. Because ``D`` is
a sum of independent tiles, ``∂L/∂θ = Σ_tiles (∂D_tile/∂θ)ᵀ v_tile`` exactly: the result
equals the full-graph gradient up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from padis3d.errors import PadisError
from padis3d.priors.patch import PatchPrior
from tiling import map_tiles

LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``loss_fn(image (B, C, *N)) -> (L scalar, residual A x̂ − y)``; differentiable in ``image``."""


def smoothed_tv(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``Σ sqrt(Σ_axes (forward difference)² + ε²) − ε`` over ``(B, C, *S)`` (a scalar)."""
    sq = 0.0
    for ax in range(2, x.ndim):
        d = torch.diff(x, dim=ax)
        pad = [0, 0] * (x.ndim - 1 - ax) + [0, 1]  # zero difference at the last index
        sq = sq + torch.nn.functional.pad(d, pad) ** 2
    return ((sq + eps ** 2).sqrt() - eps).sum()


@dataclass(frozen=True)
class SelfSupervisedLoss:
    """``image -> (L, residual)`` for measurements ``y`` of ``operator`` (see the module docstring).

    cg_iters: CG data-step iterations (0: the talk's patch loss, no CG); rho: its weight ``ρ``;
    tv: weight ``λ`` of the smoothed TV term (0: none).
    """

    operator: Any
    y: torch.Tensor
    cg_iters: int = 0
    rho: float = 1.0
    tv: float = 0.0

    def __post_init__(self) -> None:
        if self.cg_iters < 0 or self.rho <= 0 or self.tv < 0:
            raise PadisError(f"need cg_iters >= 0, rho > 0, tv >= 0; got {self.cg_iters}, {self.rho}, {self.tv}")

    def estimate(self, image: torch.Tensor) -> torch.Tensor:
        """``x̂``: ``image`` itself, or after the CG data step."""
        if self.cg_iters == 0:
            return image
        from padis3d.solvers.dds import data_consistency
        return data_consistency(self.operator, self.y, image, self.rho, self.cg_iters)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        est = self.estimate(image)
        residual = self.operator(est) - self.y
        loss = (residual ** 2).sum()
        if self.tv > 0:
            loss = loss + self.tv * smoothed_tv(est)
        return loss, residual


def check_adaptable(prior: object) -> None:
    """PadisError unless ``prior`` is a :class:`PatchPrior` whose ``denoise`` is the plain tiled map
    (a slice-jump prior permutes slices around it, which this gradient does not follow)."""
    if not isinstance(prior, PatchPrior) or type(prior).denoise is not PatchPrior.denoise:
        raise PadisError(f"test-time adaptation needs a PatchPrior (2D, 3D cubes or slabs without slice jumps), "
                         f"got {type(prior).__name__}")


def parameter_vjp(prior: PatchPrior, x: torch.Tensor, sigma: float, shift: Sequence[int], cotangent: torch.Tensor,
                  params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``Σ_tiles (∂D_tile/∂θ)ᵀ v_tile`` for the canvas map ``x -> D_θ(x; σ)`` at ``shift``.

    x, cotangent: ``(B, C, *prior.state_shape)``; params: the tensors ``θ`` (``requires_grad``)
    the prior's denoiser depends on. Each tile batch (the prior's limits) is recomputed under
    autograd with its slice of ``cotangent`` and released before the next. Returns one
    gradient per parameter (zeros where a parameter is unused).
    """
    if cotangent.shape != x.shape:
        raise PadisError(f"cotangent shape {tuple(cotangent.shape)} must equal the state's {tuple(x.shape)}")
    check_adaptable(prior)
    params = list(params)
    grads = [torch.zeros_like(p) for p in params]
    fn = prior.tile_fn(sigma)

    def tile_backward(stacked: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        # stacked: the state's tiles and the cotangent's tiles as channels (folded channel-major,
        # so the first half of the channels is always the state's).
        half = stacked.shape[1] // 2
        tiles, v = stacked[:, :half].detach(), stacked[:, half:]
        with torch.enable_grad():
            out = fn(tiles, positions)
            got = torch.autograd.grad(out, params, v.to(out.dtype), allow_unused=True)
        for acc, g in zip(grads, got):
            if g is not None:
                acc += g
        return out.detach()

    stacked = torch.cat([x.detach(), cotangent.to(x.dtype)], dim=1)
    limits = prior._engine_limits()  # the prior's batch / memory limits (network bytes per tile included)
    with torch.no_grad():
        map_tiles(tile_backward, stacked, prior.grid, shift, **limits)
    return grads


@dataclass
class LossGrad:
    """One evaluation: ``loss`` (float), ``residual_norm`` ``||A x̂ − y||`` (float), ``denoised``
    canvas ``D`` ``(B, C, *canvas)``, ``grads`` (one per parameter), the ``shift`` used."""

    loss: float
    residual_norm: float
    denoised: torch.Tensor
    grads: list[torch.Tensor]
    shift: tuple[int, ...]


def streamed_loss_grad(prior: PatchPrior, x: torch.Tensor, sigma: float, loss_fn: LossFn,
                       params: Sequence[torch.Tensor], shift: Sequence[int]) -> LossGrad:
    """``L`` and ``∂L/∂θ`` with bounded memory (module docstring): ``D`` without a graph, the
    cotangent at ``D``, then :func:`parameter_vjp`."""
    shift = prior.grid.check_shift(shift)
    d = prior.denoise(x, sigma, shift=shift)
    leaf = d.detach().requires_grad_(True)
    with torch.enable_grad():
        loss, residual = loss_fn(prior.crop(leaf))
        (cot,) = torch.autograd.grad(loss, leaf)
    grads = parameter_vjp(prior, x, sigma, shift, cot, params)
    return LossGrad(float(loss.detach()), float(residual.detach().norm()), d, grads, shift)


def full_graph_loss_grad(prior: PatchPrior, x: torch.Tensor, sigma: float, loss_fn: LossFn,
                         params: Sequence[torch.Tensor], shift: Sequence[int]) -> LossGrad:
    """The same as :func:`streamed_loss_grad` through one autograd graph over all tiles (memory
    grows with the image): the reference the streamed gradient is tested against."""
    shift = prior.grid.check_shift(shift)
    with torch.enable_grad():
        d = map_tiles(prior.tile_fn(sigma), x.detach(), prior.grid, shift, **prior._engine_limits())
        loss, residual = loss_fn(prior.crop(d))
        grads = torch.autograd.grad(loss, list(params), allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
    return LossGrad(float(loss.detach()), float(residual.detach().norm()), d.detach(), grads, shift)
