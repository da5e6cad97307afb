"""Noise-level grids σ_T > ... > σ_1 for the samplers (float64 tensors, decreasing)."""

from __future__ import annotations

import torch

from padis3d.errors import PadisError


def _check(sigma_max: float, sigma_min: float, steps: int) -> None:
    if not (0 < sigma_min < sigma_max) or steps < 1:
        raise PadisError(f"need 0 < sigma_min < sigma_max and steps >= 1, got sigma_min={sigma_min}, "
                         f"sigma_max={sigma_max}, steps={steps}")


def geometric_sigmas(sigma_max: float, sigma_min: float, steps: int) -> torch.Tensor:
    """``steps`` levels spaced uniformly in log σ from ``sigma_max`` down to ``sigma_min``."""
    _check(sigma_max, sigma_min, steps)
    if steps == 1:
        return torch.tensor([sigma_max], dtype=torch.float64)
    return torch.logspace(torch.log10(torch.tensor(sigma_max)), torch.log10(torch.tensor(sigma_min)), steps,
                          dtype=torch.float64)


def karras_sigmas(sigma_max: float, sigma_min: float, steps: int, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022) eq. 5: ``(σ_max^(1/ρ) + i/(n-1) (σ_min^(1/ρ) - σ_max^(1/ρ)))^ρ``."""
    _check(sigma_max, sigma_min, steps)
    if steps == 1:
        return torch.tensor([sigma_max], dtype=torch.float64)
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho
